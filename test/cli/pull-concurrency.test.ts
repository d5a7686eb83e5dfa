/**
 * Several `s2n-oci` processes on one store, and pulls that die: two pulls of
 * the same image at once, a pull killed with SIGKILL mid-layer, one stopped
 * with Ctrl-C, and `rmi`/`prune` around shared layers. Each case checks the
 * store afterwards (index, blobs, ingest/, leases/) and that nothing left
 * behind blocks the next command.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSandbox, runCli, spawnCli } from '../helpers/cli.js';
import { buildImage, dir, file, type TestImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { registryBehindProxy } from '../helpers/fixtures.js';
import { blobFiles, hex, storeFiles as list } from '../helpers/store-files.js';

const env = registryBehindProxy();


/** `layers` layers of `layerBytes` random (incompressible) bytes each, unique to this call. */
async function randomImage(layers: number, layerBytes: number): Promise<TestImage> {
  return buildImage({
    layers: Array.from({ length: layers }, (_, i) => [dir(`l${i}/`), file(`l${i}/data.bin`, randomBytes(layerBytes))]),
  });
}

function allDigests(img: TestImage): string[] {
  return [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)];
}

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Collects a spawned CLI's output; resolves on 'close' (all output read). */
function finished(child: ChildProcess): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The store is whole: every blob of `img` present, nothing partial, no writer registered. */
function expectConsistent(root: string, img: TestImage): void {
  const stored = blobFiles(root);
  for (const d of allDigests(img)) expect(stored).toContain(hex(d));
  expect(list(root, 'ingest')).toEqual([]);
  expect(list(root, 'leases')).toEqual([]);
}

/**
 * Starts a pull whose layer `layer` stalls after `afterBytes` at the env.proxy, and
 * resolves once the process is provably mid-blob: the env.proxy has sent those
 * bytes and the pull has an ingest file for them with data in it.
 */
async function startStalledPull(ref: string, layerPath: string, afterBytes: number): Promise<{ child: ChildProcess; done: Promise<Finished>; ingest: string }> {
  const root = cliSandbox().root;
  env.proxy.addRule({ kind: 'stall', method: 'GET', path: layerPath, afterBytes, times: 1 });
  const from = env.proxy.log.length;
  const child = spawnCli(['pull', ref]);
  const done = finished(child);
  let ingest = '';
  await until('the pull to stall mid-layer', () => {
    if (child.exitCode !== null) throw new Error(`pull exited early (${child.exitCode})`);
    const stalled = env.proxy.log.slice(from).some((e) => e.path === layerPath && e.fault === 'stall' && e.bytesSent === afterBytes);
    if (!stalled) return false;
    // Files of this process only, with some of the layer already written.
    const mine = list(root, 'ingest').filter((n) => n.startsWith(`${child.pid}-`));
    const written = mine.filter((n) => {
      try {
        return statSync(join(root, 'ingest', n)).size > 0;
      } catch {
        return false;
      }
    });
    ingest = written[0] ?? '';
    return ingest !== '';
  });
  return { child, done, ingest };
}

describe('s2n-oci pull: concurrent and interrupted pulls on one store', () => {
  it('two pulls of the same image at once both succeed and leave one consistent copy', async () => {
    const img = await randomImage(3, 3 * 1024 * 1024);
    await pushImage(env.reg, 'conc/same', img, { tags: ['1'] });
    const ref = `${env.reg.host}/conc/same:1`;
    const root = cliSandbox().root;

    const a = finished(spawnCli(['pull', ref]));
    const b = finished(spawnCli(['pull', ref]));
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    expect(ra.stdout.trim()).toBe(img.manifestDigest);
    expect(rb.stdout.trim()).toBe(img.manifestDigest);

    const ls = await runCli(['images', '--json']);
    expect(ls.code).toBe(0);
    const rows = JSON.parse(ls.stdout) as Array<{ name: string; digest: string }>;
    expect(rows).toEqual([expect.objectContaining({ name: ref, digest: img.manifestDigest })]);
    expectConsistent(root, img);
    // Exactly the image's blobs: no stray copies from the race.
    expect(blobFiles(root).sort()).toEqual(allDigests(img).map(hex).sort());

    const dry = await runCli(['prune', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ removedBlobs: [], missing: [], unreadable: [], removedIngest: 0 });

    const insp = await runCli(['inspect', ref]);
    expect(insp.code).toBe(0);
    expect((JSON.parse(insp.stdout) as Array<{ Digest: string }>)[0]?.Digest).toBe(img.manifestDigest);
  });

  it('recovers from a pull killed with SIGKILL mid-layer: the next pull, images and prune work and clean up', async () => {
    const img = await randomImage(3, 2 * 1024 * 1024);
    const repo = 'conc/killed';
    await pushImage(env.reg, repo, img, { tags: ['1'] });
    const ref = `${env.proxy.host}/${repo}:1`;
    const root = cliSandbox().root;
    const layer = img.layers[1]!;
    env.proxy.clearRules();

    const { child, done, ingest } = await startStalledPull(ref, `/v2/${repo}/blobs/${layer.digest}`, 1024 * 1024);
    const pid = child.pid!;
    expect(list(root, 'leases').some((n) => n.startsWith(`${pid}-`))).toBe(true);
    child.kill('SIGKILL');
    const killed = await done;
    expect(killed.signal).toBe('SIGKILL');
    // The dead pull's leftovers: its partial layer and its lease.
    expect(list(root, 'ingest')).toContain(ingest);
    const deadIngest = list(root, 'ingest').filter((n) => n.startsWith(`${pid}-`));
    expect(list(root, 'leases').some((n) => n.startsWith(`${pid}-`))).toBe(true);
    expect(blobFiles(root)).not.toContain(hex(layer.digest));
    expect(blobFiles(root)).not.toContain(hex(img.manifestDigest));

    env.proxy.clearRules();
    const again = await runCli(['pull', ref], { timeoutMs: 20_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(img.manifestDigest);
    expect(again.durationMs).toBeLessThan(10_000);
    for (const d of allDigests(img)) expect(blobFiles(root)).toContain(hex(d));

    const ls = await runCli(['images', '--json'], { timeoutMs: 10_000 });
    expect(ls.code).toBe(0);
    expect(ls.durationMs).toBeLessThan(5_000);
    expect((JSON.parse(ls.stdout) as Array<{ digest: string }>).map((r) => r.digest)).toEqual([img.manifestDigest]);

    // The dead pid's lease does not make prune wait, and prune removes the dead pull's files.
    const pr = await runCli(['prune', '--json'], { timeoutMs: 10_000 });
    expect(pr.code, pr.stderr).toBe(0);
    expect(pr.durationMs).toBeLessThan(5_000);
    expect(JSON.parse(pr.stdout)).toMatchObject({ removedBlobs: [], removedIngest: deadIngest.length, removedLeases: 1 });
    expectConsistent(root, img);

    const insp = await runCli(['inspect', ref], { timeoutMs: 10_000 });
    expect(insp.code).toBe(0);
  });

  it('rmi removes an image and its own blobs, keeps the shared base layer; prune then has nothing to do', async () => {
    const base = [dir('etc/'), file('etc/os-release', 'ID=s2n-shared-base\n'), file('base.bin', randomBytes(64 * 1024))];
    const a = await buildImage({ layers: [base, [file('a.txt', `only in a ${randomBytes(8).toString('hex')}\n`)]] });
    const b = await buildImage({ layers: [base, [file('b.txt', `only in b ${randomBytes(8).toString('hex')}\n`)]] });
    expect(a.layers[0]!.digest).toBe(b.layers[0]!.digest);
    await pushImage(env.reg, 'conc/shared-a', a, { tags: ['1'] });
    await pushImage(env.reg, 'conc/shared-b', b, { tags: ['1'] });
    const refA = `${env.reg.host}/conc/shared-a:1`;
    const refB = `${env.reg.host}/conc/shared-b:1`;
    const root = cliSandbox().root;
    for (const ref of [refA, refB]) expect((await runCli(['pull', ref])).code).toBe(0);

    const rm = await runCli(['rmi', refA]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stderr).toContain(`Untagged: ${refA}`);
    const uniqueA = [a.manifestDigest, a.configDigest, a.layers[1]!.digest];
    for (const d of uniqueA) expect(rm.stdout).toContain(`Deleted: ${d}`);
    expect(rm.stdout).not.toContain(a.layers[0]!.digest);

    const stored = blobFiles(root);
    for (const d of uniqueA) expect(stored).not.toContain(hex(d));
    for (const d of allDigests(b)) expect(stored).toContain(hex(d));
    expect(stored.sort()).toEqual(allDigests(b).map(hex).sort());

    const ls = await runCli(['images', '--json']);
    expect((JSON.parse(ls.stdout) as Array<{ name: string }>).map((r) => r.name)).toEqual([refB]);
    const insp = await runCli(['inspect', refB]);
    expect(insp.code, insp.stderr).toBe(0);
    expect((JSON.parse(insp.stdout) as Array<{ Digest: string; DiffIds: string[] }>)[0]).toMatchObject({
      Digest: b.manifestDigest,
      DiffIds: b.layers.map((l) => l.diffId),
    });

    const pr = await runCli(['prune', '--json']);
    expect(pr.code, pr.stderr).toBe(0);
    expect(JSON.parse(pr.stdout)).toMatchObject({ removedBlobs: [], missing: [] });
    expect(blobFiles(root).sort()).toEqual(allDigests(b).map(hex).sort());

    const gone = await runCli(['rmi', refA]);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toMatch(/^Error: .*not in the store/m);
    expect(gone.stderr).toMatch(/^hint: /m);
    const unknown = await runCli(['rmi', 'no-such/image:never']);
    expect(unknown.code).toBe(125);
    expect(unknown.stderr).toMatch(/^Error: find image no-such\/image:never: not in the store$/m);
    expect(unknown.stderr).toMatch(/^hint: .*s2n-oci images/m);
    // The failed rmi changed nothing.
    expect(blobFiles(root).sort()).toEqual(allDigests(b).map(hex).sort());
  });

  it('Ctrl-C stops a stalled pull at once with status 130, cleans up, and the next pull succeeds; SIGTERM gives 143', async () => {
    const img = await randomImage(2, 2 * 1024 * 1024);
    const repo = 'conc/interrupted';
    await pushImage(env.reg, repo, img, { tags: ['1'] });
    const ref = `${env.proxy.host}/${repo}:1`;
    const root = cliSandbox().root;
    const layerPath = `/v2/${repo}/blobs/${img.layers[0]!.digest}`;
    env.proxy.clearRules();

    for (const [sig, status] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const { child, done } = await startStalledPull(ref, layerPath, 512 * 1024);
      const t0 = Date.now();
      child.kill(sig);
      const r = await done;
      expect(Date.now() - t0).toBeLessThan(3_000);
      expect(r.signal).toBeNull();
      expect(r.code, r.stderr).toBe(status);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines.at(-1)).toBe(`pull ${ref}: interrupted by ${sig}`);
      expect(r.stderr).not.toMatch(/internal error|^Error: /m);
      // Nothing partial, no lease, no name, no committed layer of the stalled blob.
      expect(list(root, 'ingest')).toEqual([]);
      expect(list(root, 'leases')).toEqual([]);
      expect(blobFiles(root)).not.toContain(hex(img.layers[0]!.digest));
      expect(blobFiles(root)).not.toContain(hex(img.manifestDigest));
      env.proxy.clearRules();
    }

    const again = await runCli(['pull', ref], { timeoutMs: 20_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(img.manifestDigest);
    expectConsistent(root, img);
    const pr = await runCli(['prune', '--json']);
    expect(JSON.parse(pr.stdout)).toMatchObject({ removedBlobs: [], removedIngest: 0, removedLeases: 0 });
  });
});
