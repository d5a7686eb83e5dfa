import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, tempDir } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const USER = 's2n-test';

function uidOf(user: string): number | undefined {
  try {
    return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  } catch {
    return undefined;
  }
}

const uid = uidOf(USER);
const isRoot = process.geteuid?.() === 0;

// The rootless path needs an unprivileged user; `scripts/setup-host.sh --test` (run by
// `npm run test:all` and CI) creates it. Without root we cannot switch to it.
describe.skipIf(!isRoot || uid === undefined)(`pull as the unprivileged user ${USER}`, () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic', users: { tester: 'secret' } });
  });
  afterAll(async () => reg?.stop());

  /** Runs the CLI as USER with only HOME (and PATH) set, like a fresh login session without XDG vars. */
  async function asUser(home: string, args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const argv = ['--reuid', USER, '--regid', USER, '--init-groups', '--', 'env', '-i', `HOME=${home}`, `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, process.execPath, CLI_PATH, ...args];
    const child = spawn('setpriv', argv, { cwd: home, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { code, stdout, stderr };
  }

  it('stores under ~/.local/share/s2n-oci, owned by the user; credentials in ~/.docker/config.json', async () => {
    const img = await smallImage({ marker: 'rootless' });
    await pushImage(reg, 'team/app', img, { auth: { username: 'tester', password: 'secret' }, tags: ['1'] });
    const home = tempDir('s2n-home-');
    chownSync(home, uid ?? -1, uid ?? -1);

    const login = await asUser(home, ['login', '-u', 'tester', '--password-stdin', reg.host], 'secret\n');
    expect(login.stderr).not.toContain('Error');
    expect(login.code).toBe(0);
    expect(statSync(join(home, '.docker', 'config.json')).uid).toBe(uid);

    const r = await asUser(home, ['pull', `${reg.host}/team/app:1`]);
    expect(r.stderr).not.toContain('Error');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(img.manifestDigest);
    const root = join(home, '.local', 'share', 's2n-oci');
    expect(existsSync(join(root, 'oci-layout'))).toBe(true);
    const blobs = readdirSync(join(root, 'blobs', 'sha256'));
    expect(blobs).toContain(img.manifestDigest.slice(7));
    for (const b of blobs) expect(statSync(join(root, 'blobs', 'sha256', b)).uid).toBe(uid);

    const ls = await asUser(home, ['images', '--json']);
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ digest: img.manifestDigest })]);
  });

  it('says clearly when the store is not writable for the user', async () => {
    const home = tempDir('s2n-home-');
    chownSync(home, uid ?? -1, uid ?? -1);
    // A root-owned store the user cannot write to.
    const r = await asUser(home, ['--root', tempDir('s2n-rootowned-'), 'pull', `${reg.host}/team/app:1`]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^Error: .*(permission|EACCES)/im);
    expect(r.stderr).toMatch(/^hint: /m);
  });
});
