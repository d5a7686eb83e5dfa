/**
 * `run` starts a pull and its host checks at the same time; when a check
 * fails, the pull must stop with it, not keep the command alive until the
 * registry answers. The registry here accepts connections and never answers.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const sockets = new Set<Socket>();
const silent = createServer((s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

beforeAll(() => new Promise<void>((res) => silent.listen(0, '127.0.0.1', res)));
afterAll(() => {
  for (const s of sockets) s.destroy();
  return new Promise<void>((res) => silent.close(() => res()));
});

describe('run with a pull under way', () => {
  it('a missing runtime ends the run at once (125), pull and all', async () => {
    const port = (silent.address() as { port: number }).port;
    // The registry never answers, so without the abort the command is still waiting when runCli kills it.
    const r = await runCli(['run', '--runtime', '/nonexistent/runc', `127.0.0.1:${port}/silent/image:1`, 'true'], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(125);
    expect(r.stderr).toMatch(/\/nonexistent\/runc/);
  });
});
