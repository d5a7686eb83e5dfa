/**
 * `s2n-oci pull` against a registry that lies or fails: a fault proxy sits in
 * front of a real docker-registry and corrupts, pads, cuts, resets, rate-limits
 * or replaces its answers. Every case asserts the user-visible outcome (exit
 * status, stdout digest, the one-line error and its hint) and the store
 * afterwards: nothing unverified committed, no ingest leftovers, no name.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cliSandbox, runCli, type CliResult } from '../helpers/cli.js';
import { startFaultProxy, type ProxyLogEntry } from '../helpers/fault-proxy.js';
import { buildImage, dir, file, type TestImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { registryBehindProxy } from '../helpers/fixtures.js';
import { blobFiles, hex, ingestFiles } from '../helpers/store-files.js';

const env = registryBehindProxy();


/**
 * Two layers: a small one, and `bigLayerBytes` of random (incompressible) file
 * data, so a body is long enough to be cut in the middle. Random content makes
 * every image unique, so no case sees another's blobs.
 */
async function image(bigLayerBytes = 512 * 1024): Promise<TestImage> {
  return buildImage({
    layers: [
      [dir('etc/'), file('etc/os-release', `ID=s2n-faults\nSEED=${randomBytes(8).toString('hex')}\n`)],
      [dir('data/'), file('data/random.bin', randomBytes(bigLayerBytes))],
    ],
  });
}

/** Pushes `img` to the real registry and returns the reference through the env.proxy, and the big layer. */
async function publish(repo: string, img: TestImage): Promise<{ ref: string; big: TestImage['layers'][number] }> {
  await pushImage(env.reg, repo, img, { tags: ['1'] });
  const big = img.layers[1];
  if (!big) throw new Error('image has no second layer');
  return { ref: `${env.proxy.host}/${repo}:1`, big };
}

function blobPath(repo: string, digest: string): string {
  return `/v2/${repo}/blobs/${digest}`;
}

/** The env.proxy log entries for `path` (GETs only), oldest first. */
function gets(path: string): ProxyLogEntry[] {
  return env.proxy.log.filter((e) => e.method === 'GET' && e.path === path);
}

/** Exactly one `Error: ` line first, then one `hint: ` line, and exit 125. */
function expectCleanFailure(r: CliResult): { error: string; hint: string } {
  expect(r.code, r.stderr).toBe(125);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  const errors = lines.filter((l) => l.startsWith('Error: '));
  const hints = lines.filter((l) => l.startsWith('hint: '));
  expect(errors, r.stderr).toHaveLength(1);
  expect(hints, r.stderr).toHaveLength(1);
  expect(lines.indexOf(hints[0]!)).toBe(lines.indexOf(errors[0]!) + 1);
  expect(r.stderr).not.toContain('    at '); // no stack without --debug
  expect(r.stderr).not.toMatch(/internal error/i);
  return { error: errors[0]!, hint: hints[0]! };
}

/** After a failed pull of `img`: no name for it, nothing half-written, and none of `absent` committed. */
async function expectNothingCommitted(img: TestImage, absent: string[]): Promise<void> {
  const root = cliSandbox().root;
  const stored = blobFiles(root);
  for (const d of absent) expect(stored).not.toContain(hex(d));
  // The manifest is written last: a failed pull never leaves it behind.
  expect(stored).not.toContain(hex(img.manifestDigest));
  expect(ingestFiles(root)).toEqual([]);
  const ls = await runCli(['images', '--json']);
  expect(ls.code).toBe(0);
  const rows = JSON.parse(ls.stdout) as Array<{ name: string; digest: string }>;
  expect(rows.filter((r) => r.digest === img.manifestDigest)).toEqual([]);
}

/** After a successful pull: the digest on stdout, every blob stored, ingest empty. */
function expectPulled(r: CliResult, img: TestImage): void {
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim()).toBe(img.manifestDigest);
  const root = cliSandbox().root;
  const stored = blobFiles(root);
  for (const d of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) expect(stored).toContain(hex(d));
  expect(ingestFiles(root)).toEqual([]);
}

describe('s2n-oci pull through a faulty registry', () => {
  it('refuses a corrupted layer (EDIGEST), stores nothing of it, and a clean retry succeeds', async () => {
    const img = await image();
    const repo = 'faults/corrupt';
    const { ref, big } = await publish(repo, img);
    env.proxy.clearRules();
    const rule = env.proxy.addRule({ kind: 'corrupt', method: 'GET', path: blobPath(repo, big.digest), times: Infinity });

    const r = await runCli(['pull', ref]);
    const { error, hint } = expectCleanFailure(r);
    expect(rule.hits).toBeGreaterThanOrEqual(1);
    expect(error).toContain(hex(big.digest).slice(0, 12));
    expect(error).toMatch(/digest/);
    expect(hint).toMatch(/different content/);
    await expectNothingCommitted(img, [big.digest]);

    const j = await runCli(['pull', '--json', ref]);
    expect(j.code).toBe(125);
    const last = JSON.parse(j.stderr.trim().split('\n').at(-1) ?? '{}') as { type: string; code: string; context: { digest?: string } };
    expect(last).toMatchObject({ type: 'error', code: 'EDIGEST', context: { digest: big.digest } });
    await expectNothingCommitted(img, [big.digest]);

    env.proxy.clearRules();
    expectPulled(await runCli(['pull', ref]), img);
  });

  it('refuses a layer longer than its descriptor (ESIZE) and commits nothing', async () => {
    const img = await image(64 * 1024);
    const repo = 'faults/wrongsize';
    const { ref, big } = await publish(repo, img);
    env.proxy.clearRules();
    env.proxy.addRule({ kind: 'wrongSize', method: 'GET', path: blobPath(repo, big.digest), extraBytes: 1000, times: Infinity });

    const r = await runCli(['pull', ref]);
    const { error } = expectCleanFailure(r);
    expect(error).toContain(big.digest.slice(0, 19));
    expect(error).toMatch(new RegExp(`more than the ${big.size} bytes|size`));
    await expectNothingCommitted(img, [big.digest]);

    const j = await runCli(['pull', '--json', ref]);
    const last = JSON.parse(j.stderr.trim().split('\n').at(-1) ?? '{}') as { code: string };
    expect(last.code).toBe('ESIZE');
    await expectNothingCommitted(img, [big.digest]);
    env.proxy.clearRules();
  });

  it('resumes a layer cut short with a Range request; fails cleanly when every request is cut', async () => {
    const img = await image();
    const repo = 'faults/truncate';
    const { ref, big } = await publish(repo, img);
    const path = blobPath(repo, big.digest);
    const cutAt = Math.floor(big.size / 2);
    env.proxy.clearRules();
    env.proxy.addRule({ kind: 'truncate', method: 'GET', path, afterBytes: cutAt, times: 1 });
    const from = env.proxy.log.length;

    expectPulled(await runCli(['pull', ref]), img);
    const log = gets(path).filter((e) => env.proxy.log.indexOf(e) >= from);
    expect(log[0]).toMatchObject({ fault: 'truncate', range: undefined, bytesSent: cutAt });
    const resumed = log.filter((e) => e.range !== undefined);
    expect(resumed).toHaveLength(1);
    // Resumed exactly where the cut was: nothing downloaded twice.
    expect(resumed[0]).toMatchObject({ status: 206, range: `bytes=${cutAt}-`, bytesSent: big.size - cutAt });

    // Again, but every later request is cut before its first byte: the retry budget runs out.
    const img2 = await image();
    const repo2 = 'faults/truncate-always';
    const p2 = await publish(repo2, img2);
    const path2 = blobPath(repo2, p2.big.digest);
    const cut2 = Math.floor(p2.big.size / 2);
    env.proxy.clearRules();
    env.proxy.addRule({ kind: 'truncate', method: 'GET', path: path2, afterBytes: cut2, times: 1 });
    const always = env.proxy.addRule({ kind: 'truncate', method: 'GET', path: path2, afterBytes: 0, times: Infinity });
    const from2 = env.proxy.log.length;

    const r = await runCli(['pull', ref.replace(repo, repo2)]);
    const { error, hint } = expectCleanFailure(r);
    expect(error).toContain(p2.big.digest.slice(0, 19));
    expect(error).toMatch(/closed|lost|reset|socket/i);
    expect(hint).toMatch(/network|try again/i);
    // The first cut plus the retry budget (5 tries) of resumes, each asking for the rest only.
    const log2 = gets(path2).filter((e) => env.proxy.log.indexOf(e) >= from2);
    expect(always.hits).toBeGreaterThanOrEqual(5);
    expect(always.hits).toBeLessThanOrEqual(10);
    expect(log2.slice(1).every((e) => e.range === `bytes=${cut2}-`)).toBe(true);
    await expectNothingCommitted(img2, [p2.big.digest]);
    env.proxy.clearRules();
  });

  it('resumes a layer whose connection is reset mid-body', async () => {
    // A reset throws away what the client had not read yet, so the layer is large enough that the
    // env.proxy can only send the bytes before the reset as fast as the client consumes them.
    const img = await image(6 * 1024 * 1024);
    const repo = 'faults/reset';
    const { ref, big } = await publish(repo, img);
    const path = blobPath(repo, big.digest);
    env.proxy.clearRules();
    const rule = env.proxy.addRule({ kind: 'reset', method: 'GET', path, afterBytes: 5 * 1024 * 1024, times: 1 });
    const from = env.proxy.log.length;

    expectPulled(await runCli(['pull', ref]), img);
    expect(rule.hits).toBe(1);
    const log = gets(path).filter((e) => env.proxy.log.indexOf(e) >= from);
    expect(log[0]?.fault).toBe('reset');
    const resumed = log.filter((e) => e.range !== undefined);
    expect(resumed.length).toBeGreaterThanOrEqual(1);
    expect(resumed[0]?.range).toMatch(/^bytes=\d+-$/);
    expect(resumed[0]?.status).toBe(206);
    expect(Number(/\d+/.exec(resumed[0]?.range ?? '')?.[0])).toBeGreaterThan(0);
    env.proxy.clearRules();
  });

  it('retries HTTP 500 on the manifest and on a blob', async () => {
    const img = await image(64 * 1024);
    const repo = 'faults/500';
    const { ref, big } = await publish(repo, img);
    const mpath = `/v2/${repo}/manifests/1`;
    const bpath = blobPath(repo, big.digest);
    env.proxy.clearRules();
    env.proxy.addRule({ kind: 'status', status: 500, method: 'GET', path: mpath, times: 2 });
    env.proxy.addRule({ kind: 'status', status: 500, method: 'GET', path: bpath, times: 2 });
    const from = env.proxy.log.length;

    expectPulled(await runCli(['pull', ref]), img);
    const since = (p: string): Array<number | null> => gets(p).filter((e) => env.proxy.log.indexOf(e) >= from).map((e) => e.status);
    expect(since(mpath)).toEqual([500, 500, 200]);
    expect(since(bpath)).toEqual([500, 500, 200]);
    env.proxy.clearRules();
  });

  it('waits for Retry-After on HTTP 429 before asking again', async () => {
    const img = await image(64 * 1024);
    const repo = 'faults/429';
    const { ref, big } = await publish(repo, img);
    const path = blobPath(repo, big.digest);
    env.proxy.clearRules();
    env.proxy.addRule({ kind: 'status', status: 429, retryAfter: '1', method: 'GET', path, times: 1 });
    const from = env.proxy.log.length;

    expectPulled(await runCli(['pull', ref]), img);
    const log = gets(path).filter((e) => env.proxy.log.indexOf(e) >= from);
    expect(log.map((e) => e.status)).toEqual([429, 200]);
    expect(log[1]!.time - log[0]!.time).toBeGreaterThanOrEqual(900);
    env.proxy.clearRules();
  });

  it('reports a registry that is down with a connect error and a hint, and stores nothing', async () => {
    const down = await startFaultProxy(env.reg);
    const host = down.host;
    await down.stop();
    const r = await runCli(['pull', `${host}/faults/down:1`]);
    const { error, hint } = expectCleanFailure(r);
    expect(error).toContain(host);
    expect(error).toMatch(/connect|refused/i);
    expect(hint).toMatch(/registry running|port/);
    expect(blobFiles(cliSandbox().root)).toEqual([]);
    expect(ingestFiles(cliSandbox().root)).toEqual([]);
  });

  it('refuses a Docker schema1 manifest', async () => {
    const repo = 'faults/schema1';
    const schema1 = {
      schemaVersion: 1,
      name: repo,
      tag: 'old',
      architecture: 'amd64',
      fsLayers: [
        { blobSum: 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4' },
        { blobSum: 'sha256:e7c96db7181be991f19a9fb6975cdbbd73c65f4a2681348e63a141a2192a5f10' },
      ],
      history: [
        { v1Compatibility: JSON.stringify({ id: 'c3f3bf2b6f4a0a1ab4c4e8a7c3f6ed9b1a06e6a1bc53ad0d9cd8a1e4d1ba3c0d', parent: '5f3c43f9d5e1c8f9b0a6b3fd1e4b8d3a7e0b9c2a4f6d8e1b3c5a7d9f0e2b4c6a', created: '2016-06-08T00:00:00Z', container_config: { Cmd: ['/bin/sh'] } }) },
        { v1Compatibility: JSON.stringify({ id: '5f3c43f9d5e1c8f9b0a6b3fd1e4b8d3a7e0b9c2a4f6d8e1b3c5a7d9f0e2b4c6a', created: '2016-06-08T00:00:00Z', container_config: { Cmd: null } }) },
      ],
      signatures: [
        {
          header: { jwk: { crv: 'P-256', kid: 'ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ23:4567:ABCD:EFGH:IJKL:MNOP', kty: 'EC', x: 'x-coordinate', y: 'y-coordinate' }, alg: 'ES256' },
          signature: 'c2lnbmF0dXJl',
          protected: 'eyJmb3JtYXRMZW5ndGgiOjEyMzQsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNi0wNi0wOFQwMDowMDowMFoifQ',
        },
      ],
    };
    env.proxy.clearRules();
    env.proxy.addRule({
      kind: 'status',
      status: 200,
      method: 'GET',
      path: `/v2/${repo}/manifests/old`,
      body: JSON.stringify(schema1, null, 3),
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
      times: Infinity,
    });
    const r = await runCli(['pull', `${env.proxy.host}/${repo}:old`]);
    const { error, hint } = expectCleanFailure(r);
    expect(error).toMatch(/schema1/i);
    expect(error).toMatch(/not support/);
    expect(hint).toMatch(/re-push/);
    const j = await runCli(['pull', '--json', `${env.proxy.host}/${repo}:old`]);
    expect(JSON.parse(j.stderr.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ code: 'ESCHEMA1' });
    expect(blobFiles(cliSandbox().root)).toEqual([]);
    expect(ingestFiles(cliSandbox().root)).toEqual([]);
    env.proxy.clearRules();
  });

  it('refuses a manifest larger than 4 MiB (ELIMIT)', async () => {
    const repo = 'faults/huge';
    const pad = 'x'.repeat(5 * 1024 * 1024);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', annotations: { pad } });
    env.proxy.clearRules();
    env.proxy.addRule({
      kind: 'status',
      status: 200,
      method: 'GET',
      path: `/v2/${repo}/manifests/big`,
      body,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      times: Infinity,
    });
    const r = await runCli(['pull', `${env.proxy.host}/${repo}:big`]);
    const { error } = expectCleanFailure(r);
    expect(error).toMatch(/manifest larger than 4194304 bytes/);
    const j = await runCli(['pull', '--json', `${env.proxy.host}/${repo}:big`]);
    expect(JSON.parse(j.stderr.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ code: 'ELIMIT' });
    expect(blobFiles(cliSandbox().root)).toEqual([]);
    expect(ingestFiles(cliSandbox().root)).toEqual([]);
    env.proxy.clearRules();
  });
});
