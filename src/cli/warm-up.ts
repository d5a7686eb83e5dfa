/**
 * A training run for the bundle's V8 code cache (see s2n-oci.cts): V8 caches
 * only the functions that have been compiled when the cache is written, and a
 * cache written after `--help` leaves the run path to be compiled on every
 * start (~7 ms). The build calls this once, then writes the cache. It goes
 * through what a warm `s2n-oci run` does in memory: parse a run command line,
 * read an image (manifest, config), plan ids, and generate and validate
 * runtime configs for root and rootless hosts; and what the rootless unpack
 * worker does, which starts from the same bundle and cache: a small gzip
 * layer applied to a temporary directory, removed afterwards. No processes,
 * nothing outside that directory: it works on any build machine. Everything
 * here is real code on made-up input, so a change that breaks it fails the
 * build.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { S2nError } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import { parseManifestBlob, validateImageConfig } from '../oci/validate.js';
import { MediaType } from '../oci/mediatypes.js';
import type { Digest, ImageConfig } from '../oci/types.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { generateSpec } from '../runtime-spec/generate.js';
import type { HostFacts } from '../runtime-spec/host-facts.js';
import { planIds } from '../userns/ids.js';
import { buildProgram } from './commands.js';
import { profileFrom, runOptionsFrom, type RunFlags } from './run.js';

const REF = 'localhost/warm-up/app:1';

/** Stops the parse just before the action: we want the options, not a container. */
class Parsed extends Error {
  constructor(readonly flags: RunFlags, readonly command: string[]) {
    super('parsed');
  }
}

async function parseRunLine(): Promise<Parsed> {
  const argv = ['node', 's2n-oci', 'run', '--rm', '-e', 'A=1', '-v', '/tmp:/data:ro', '--network', 'none', '-u', 'app', '-w', '/srv', REF, 'sh', '-c', 'true'];
  const program = await buildProgram(argv);
  program.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  program.hook('preAction', (_root, action) => {
    throw new Parsed(action.opts<RunFlags>(), action.args.slice(1));
  });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof Parsed) return e;
    throw e;
  }
  throw new S2nError('EINTERNAL', 'warm-up: the run command line was not parsed');
}

function blob(value: object): { bytes: Buffer; digest: Digest } {
  const bytes = Buffer.from(JSON.stringify(value));
  return { bytes, digest: sha256Digest(bytes) };
}

function readImage(): ImageConfig {
  const config = blob({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/bin/sh'], Cmd: ['-c', 'true'], Env: ['PATH=/usr/bin:/bin'], WorkingDir: '/', User: 'app', Labels: { a: 'b' } },
    rootfs: { type: 'layers', diff_ids: [`sha256:${'1'.repeat(64)}`] },
  });
  const manifest = blob({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.bytes.length },
    layers: [{ mediaType: MediaType.ociLayerGzip, digest: `sha256:${'2'.repeat(64)}`, size: 10 }],
  });
  parseManifestBlob(manifest.bytes, { mediaType: MediaType.ociManifest, digest: manifest.digest, size: manifest.bytes.length }, { reference: REF });
  return validateImageConfig(JSON.parse(config.bytes.toString('utf8')) as unknown, { what: `config of ${REF}` });
}

/** A few entries of each kind the worker meets most, through the tar guard, gunzip and apply. */
async function unpackLayer(): Promise<void> {
  // Imported here: the bundle evaluates these only when the warm-up (or a command) needs them.
  const [{ buildLayer, LayerTree, fsDir, fsFile, fsSymlink }, { unpackImage }] = await Promise.all([import('../s2n/image-builder.js'), import('../unpack/apply.js')]);
  const tree = new LayerTree();
  tree.addAll([fsDir('etc'), fsFile('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'), fsDir('bin'), fsFile('bin/busybox', Buffer.alloc(4096, 1), 0o755), fsSymlink('bin/sh', 'busybox')]);
  const layer = await buildLayer(tree, 'warm-up', { mtime: new Date(0) });
  const dir = mkdtempSync(join(tmpdir(), 's2n-warm-up-'));
  try {
    await unpackImage(dir, [{ diffId: layer.diffId, open: async () => Readable.from([layer.blob]) }], { ownership: 'none' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function warmUp(): Promise<void> {
  await unpackLayer();
  formatReference(parseReference(REF));
  const { flags, command } = await parseRunLine();
  const image = readImage();
  const etc = { passwd: 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n', group: 'root:x:0:\napp:x:1000:\nwheel:x:10:app\n' };
  const files = { hosts: '/w/hosts', resolvConf: '/w/resolv.conf', hostname: '/w/hostname' };
  const rootless = planIds({ euid: 1000, egid: 1000, user: 'u', subuid: 'u:100000:65536\n', subgid: 'u:100000:65536\n', hasNewuidmap: true }).plan;
  const root = planIds({ euid: 0, egid: 0, subuid: '', subgid: '', hasNewuidmap: true }).plan;
  for (const [ids, runtime] of [[root, 'runc'], [rootless, 'crun']] as const) {
    const uid = ids.mode === 'root' ? 0 : 1000;
    const host: HostFacts = {
      uid,
      gid: uid,
      rootless: uid !== 0,
      cgroup: { version: 2, canManage: uid === 0, controllers: ['cpu', 'memory', 'pids'] },
      runtime: { name: runtime, version: '1.1.5' },
      ids,
      nofileHard: 1048576,
      hostname: 'warm-up',
    };
    const options = await runOptionsFrom(flags, command, '/');
    generateSpec({ image, options, profile: profileFrom(undefined), host, rootfs: '/w/rootfs', etc, files, imageRef: REF, id: 'f'.repeat(64) });
  }
}
