import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSpec } from '../../src/runtime-spec/generate.js';
import { findBundlesDir, loadProfile } from '../../src/runtime-spec/load-profile.js';
import { DEFAULT_PROFILE, parseProfile } from '../../src/runtime-spec/profile.js';
import { REPO_ROOT, tempDir } from '../helpers/cli.js';
import { image, input, rootHost, rootlessHost } from './fixtures.js';
import { caught } from './helpers.js';

const BUNDLES = join(REPO_ROOT, 'bundles');

describe('the checked-in profiles', () => {
  it('prod: read-only root, no capabilities, no_new_privileges, non-root, pids 256, memory 1g, tmpfs /tmp', () => {
    const p = loadProfile('prod', BUNDLES);
    expect(p).toEqual({
      name: 'prod',
      variant: 'prod',
      readOnlyRoot: true,
      capDrop: ['ALL'],
      capAdd: [],
      noNewPrivileges: true,
      nonRootUser: '1000:1000',
      pidsLimit: 256,
      memory: 1024 ** 3,
      tmpfs: [{ type: 'tmpfs', target: '/tmp', size: 256 * 1024 ** 2, options: [] }],
      env: [],
    });
  });

  it('dev: writable root, default capabilities, debug logging, the dev variant', () => {
    expect(loadProfile('dev', BUNDLES)).toEqual({
      name: 'dev',
      variant: 'dev',
      readOnlyRoot: false,
      capDrop: [],
      capAdd: [],
      noNewPrivileges: true,
      tmpfs: [],
      env: ['S2N_LOG_LEVEL=debug'],
    });
  });

  it('finds the bundles folder from the module itself', () => {
    expect(findBundlesDir()).toBe(BUNDLES);
    expect(loadProfile('prod')).toEqual(loadProfile('prod', BUNDLES));
  });

  it("'default' is built in; unknown and malformed names are refused with the list", () => {
    expect(loadProfile('default', '/nonexistent')).toBe(DEFAULT_PROFILE);
    const e = caught(() => loadProfile('staging', BUNDLES));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toBe('load profile staging: no such profile');
    expect(e.hint).toMatch(/profiles: default, .*dev.*prod/);
    expect(caught(() => loadProfile('../etc/passwd', BUNDLES)).message).toContain('not a profile name');
  });

  it('a broken profile file names the profile and the problem', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'profiles'));
    writeFileSync(join(dir, 'profiles', 'broken.json'), '{"readOnlyRoot": "yes"}');
    expect(caught(() => loadProfile('broken', dir)).message).toBe('load profile broken: "readOnlyRoot" must be true or false');
    writeFileSync(join(dir, 'profiles', 'broken.json'), '{');
    expect(caught(() => loadProfile('broken', dir)).message).toMatch(/^load profile broken: not valid JSON/);
  });
});

describe('parseProfile', () => {
  it.each([
    [[], 'expected a JSON object'],
    [{ readonly: true }, 'unknown field "readonly"'],
    [{ variant: 'test' }, '"variant" must be "prod" or "dev"'],
    [{ capDrop: 'ALL' }, '"capDrop" must be an array of strings'],
    [{ nonRootUser: 'scanner' }, '"nonRootUser" must be "UID" or "UID:GID"'],
    [{ nonRootUser: '0:0' }, 'must not be uid 0'],
    [{ pidsLimit: 0 }, '"pidsLimit" must be a positive integer'],
    [{ memory: 1024 }, '"memory" must be a size string'],
    [{ memory: '1m' }, '"memory": parse --memory "1m": the minimum is 6m'],
    [{ cpus: 0 }, '"cpus" must be a number'],
    [{ tmpfs: ['tmp'] }, '"tmpfs": parse --tmpfs "tmp"'],
    [{ env: ['A=1'] }, '"env" must be an object'],
    [{ env: { A: 1 } }, '"env" entry "A"'],
  ])('%j', (doc, msg) => {
    const e = caught(() => parseProfile(doc, 'p'));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain(msg);
  });

  it('capability names are checked when the profile is applied', () => {
    const p = parseProfile({ capAdd: ['FLY'] }, 'odd');
    expect(caught(() => generateSpec(input({ profile: p }))).message).toBe('parse profile odd: cap-add "FLY": unknown capability');
  });
});

describe('profiles applied', () => {
  const prod = loadProfile('prod', BUNDLES);
  const dev = loadProfile('dev', BUNDLES);

  it('prod runs a root image as 1000:1000 and keeps an image that names a non-root user', () => {
    // UID:GID names the group, so no supplementary groups (runc's rule), even though uid 1000 is "scanner" here.
    expect(generateSpec(input({ profile: prod })).spec.process.user).toEqual({ uid: 1000, gid: 1000 });
    expect(generateSpec(input({ profile: prod, image: image({ Cmd: ['sh'], User: 'web' }) })).spec.process.user).toEqual({ uid: 33, gid: 33, additionalGids: [2000] });
    // -u on the command line wins, even -u 0.
    expect(generateSpec(input({ profile: prod, options: { user: '0' } })).spec.process.user).toEqual({ uid: 0, gid: 0 });
  });

  it('prod as root: no caps, read-only, only /tmp as tmpfs, limits in resources', () => {
    const { spec, warnings } = generateSpec(input({ profile: prod }));
    expect(spec.process.capabilities.bounding).toEqual([]);
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.root.readonly).toBe(true);
    expect(spec.mounts.filter((m) => m.type === 'tmpfs' && !m.destination.startsWith('/dev')).map((m) => m.destination)).toEqual(['/tmp']);
    expect(spec.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }], memory: { limit: 1024 ** 3 }, pids: { limit: 256 } });
    expect(warnings).toEqual([]);
  });

  it('prod rootless on a host without delegation: the limits become warnings', () => {
    const { spec, warnings } = generateSpec(input({ profile: prod, host: rootlessHost() }));
    expect(spec.linux.resources).toBeUndefined();
    expect(warnings).toEqual([
      "the prod profile's memory limit cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation",
      "the prod profile's pids limit cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation",
    ]);
  });

  it('dev: writable root, default caps, debug logging; the command line still overrides', () => {
    const s = generateSpec(input({ profile: dev, image: image({ Cmd: ['sh'], Env: ['S2N_LOG_LEVEL=info'] }) })).spec;
    expect(s.root.readonly).toBe(false);
    expect(s.process.capabilities.bounding).toHaveLength(11);
    expect(s.process.env).toContain('S2N_LOG_LEVEL=debug');
    const o = generateSpec(input({ profile: dev, options: { readOnly: true, env: ['S2N_LOG_LEVEL=warning'] } })).spec;
    expect(o.root.readonly).toBe(true);
    expect(o.process.env).toContain('S2N_LOG_LEVEL=warning');
  });

  it('the default profile is podman-like: default caps, read-only root, tmpfs at /tmp /run /var/tmp', () => {
    const s = generateSpec(input({ host: rootHost() })).spec;
    expect(s.process.capabilities.bounding).toHaveLength(11);
    expect(s.mounts.filter((m) => m.type === 'tmpfs' && !m.destination.startsWith('/dev')).map((m) => [m.destination, m.options])).toEqual([
      ['/tmp', ['nosuid', 'nodev', 'rw', 'mode=1777']],
      ['/run', ['nosuid', 'nodev', 'rw', 'mode=755']],
      ['/var/tmp', ['nosuid', 'nodev', 'rw', 'mode=1777']],
    ]);
  });
});
