/**
 * The full config.json for representative images and options, pinned in
 * __snapshots__/*.json. A change in any of them is a change in what every
 * container gets: review the diff, then `npx vitest run -u test/runtime-spec`.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSpec, type GenerateInput } from '../../src/runtime-spec/generate.js';
import { loadProfile } from '../../src/runtime-spec/load-profile.js';
import { parseMountSpec, parseTmpfs, parseUlimit, parseVolume } from '../../src/runtime-spec/options.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { image, input, rootHost, rootlessHost } from './fixtures.js';

const BUNDLES = join(REPO_ROOT, 'bundles');

/** A scanner-like image: entrypoint, non-root USER, env, labels, stop signal. */
const scanner = image({
  Entrypoint: ['python3', '/app/runner.py'],
  Cmd: ['--help'],
  User: 'scanner',
  WorkingDir: '/app',
  Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'PYTHONUNBUFFERED=1'],
  Labels: { 'org.opencontainers.image.title': 's2n demo scanner', 'org.opencontainers.image.version': '0.1.0' },
  StopSignal: 'SIGINT',
});

const cases: Array<[string, Partial<GenerateInput>]> = [
  ['busybox-root-runc-default', { image: image({ Cmd: ['sh'] }), host: rootHost({ nofileHard: 1048576 }) }],
  [
    'scanner-rootless-runc-prod',
    {
      image: scanner,
      profile: loadProfile('prod', BUNDLES),
      host: rootlessHost(),
      options: {
        command: ['scan', '--url', 'http://127.0.0.1:8080'],
        mounts: [parseVolume('./plugins:/plugins:ro', '/home/me'), parseMountSpec('type=bind,source=/home/me/results,target=/results', '/home/me')],
        env: ['S2N_PLUGINS=/plugins'],
      },
    },
  ],
  [
    'scanner-rootless-crun-dev-tty',
    {
      image: scanner,
      profile: loadProfile('dev', BUNDLES),
      host: rootlessHost({ runtime: { name: 'crun', version: '1.8.1' }, cgroup: { version: 2, canManage: true, controllers: ['cpu', 'memory', 'pids'] } }),
      options: { tty: true, interactive: true, entrypoint: '/bin/bash', network: 'none', hostname: 'dev-box', memory: 512 * 1024 ** 2, cpus: 1.5 },
    },
  ],
  [
    'alpine-root-runc-flags',
    {
      image: image({ Cmd: ['/bin/sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] }),
      host: rootHost({ nofileHard: 524288 }),
      options: {
        user: '1000:1000',
        workdir: '/data',
        capDrop: ['ALL'],
        capAdd: ['NET_BIND_SERVICE', 'net_raw'],
        ulimits: [parseUlimit('nofile=1024:2048'), parseUlimit('core=0')],
        mounts: [parseTmpfs('/cache:size=64m,mode=700'), parseVolume('/srv/data:/data:rw,rslave', '/')],
        pidsLimit: 100,
        seccomp: false,
        annotations: { 'io.example/owner': 'security' },
      },
    },
  ],
];

describe('config.json snapshots', () => {
  it.each(cases)('%s', async (name, over) => {
    const { spec, warnings } = generateSpec(input(over));
    await expect(JSON.stringify({ warnings, spec }, null, 2) + '\n').toMatchFileSnapshot(`__snapshots__/${name}.json`);
  });
});
