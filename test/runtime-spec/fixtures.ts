/** Inputs for generateSpec: host facts for root and rootless, images, /etc files. */
import type { ImageConfig } from '../../src/oci/types.js';
import type { GenerateInput } from '../../src/runtime-spec/generate.js';
import type { HostFacts } from '../../src/runtime-spec/host-facts.js';
import { DEFAULT_PROFILE } from '../../src/runtime-spec/profile.js';

export const DIFF_ID = `sha256:${'a'.repeat(64)}` as const;

export function image(config: ImageConfig['config'] = {}, architecture = 'amd64'): ImageConfig {
  return { architecture, os: 'linux', config, rootfs: { type: 'layers', diff_ids: [DIFF_ID] } };
}

export function rootHost(over: Partial<HostFacts> = {}): HostFacts {
  return {
    uid: 0,
    gid: 0,
    rootless: false,
    cgroup: { version: 'hybrid', canManage: true, controllers: ['cpu', 'memory', 'pids'] },
    runtime: { name: 'runc', version: '1.1.5' },
    ids: { mode: 'root', uidMappings: [], gidMappings: [] },
    hostname: 'buildhost',
    ...over,
  };
}

export function rootlessHost(over: Partial<HostFacts> = {}): HostFacts {
  return {
    uid: 1001,
    gid: 1001,
    rootless: true,
    cgroup: { version: 'hybrid', canManage: false, controllers: [] },
    runtime: { name: 'runc', version: '1.1.5' },
    ids: {
      mode: 'subid',
      uidMappings: [
        { containerID: 0, hostID: 1001, size: 1 },
        { containerID: 1, hostID: 100000, size: 65536 },
      ],
      gidMappings: [
        { containerID: 0, hostID: 1001, size: 1 },
        { containerID: 1, hostID: 100000, size: 65536 },
      ],
    },
    nofileHard: 20000,
    hostname: 'buildhost',
    ...over,
  };
}

export const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'scanner:x:1000:1000:s2n scanner:/home/scanner:/bin/sh',
  'web:x:33:33:www-data:/var/www:/usr/sbin/nologin',
  '',
].join('\n');

export const GROUP = [
  'root:x:0:',
  'tty:x:5:',
  'www-data:x:33:scanner',
  'scanner:x:1000:',
  'audit:x:2000:scanner,web',
  '',
].join('\n');

export const FILES = { hosts: '/run/s2n-oci/c1/hosts', resolvConf: '/run/s2n-oci/c1/resolv.conf', hostname: '/run/s2n-oci/c1/hostname' };

export function input(over: Partial<GenerateInput> = {}): GenerateInput {
  return {
    image: image({ Cmd: ['/bin/sh'] }),
    options: {},
    profile: DEFAULT_PROFILE,
    host: rootHost(),
    rootfs: '/var/lib/s2n-oci/rootfs/abc',
    etc: { passwd: PASSWD, group: GROUP },
    files: FILES,
    imageRef: 'example/app:1',
    id: '0123456789abcdef',
    ...over,
  };
}
