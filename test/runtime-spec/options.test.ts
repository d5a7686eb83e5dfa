import { describe, expect, it } from 'vitest';
import {
  parseCpus,
  parseEnvFile,
  parseEnvVar,
  parseKeyValue,
  parseMemory,
  parseMountSpec,
  parseNetwork,
  parsePidsLimit,
  parseSize,
  parseTmpfs,
  parseUlimit,
  parseVolume,
} from '../../src/runtime-spec/options.js';
import { caught } from './helpers.js';

const CWD = '/home/me/project';

describe('parseVolume', () => {
  it.each([
    ['/a:/b', { source: '/a', target: '/b', readOnly: false, options: [] }],
    ['/a:/b:ro', { source: '/a', target: '/b', readOnly: true, options: [] }],
    ['/a:/b:rw', { source: '/a', target: '/b', readOnly: false, options: [] }],
    ['/a/../c/:/b/:ro,z', { source: '/c', target: '/b', readOnly: true, options: [] }],
    ['./data:/data:Z,rslave,nosuid', { source: '/home/me/project/data', target: '/data', readOnly: false, options: ['rslave', 'nosuid'] }],
    ['../up:/up', { source: '/home/me/up', target: '/up', readOnly: false, options: [] }],
    ['.:/src:ro', { source: '/home/me/project', target: '/src', readOnly: true, options: [] }],
  ])('%s', (text, want) => {
    expect(parseVolume(text, CWD)).toEqual({ type: 'bind', ...want });
  });

  it('refuses named volumes with a hint', () => {
    const e = caught(() => parseVolume('data:/data', CWD));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain('"data" is a named volume');
    expect(e.hint).toContain('./data');
  });

  it.each([
    ['/a', 'expected HOST:CONTAINER'],
    ['/a:/b:ro:x', 'expected HOST:CONTAINER'],
    ['/a:b', 'not absolute'],
    ['/a:', 'not absolute'],
    [':/b', 'host path is empty'],
    ['/a:/b:rx', 'unknown option "rx"'],
    ['/a:/b:U', 'unknown option "U"'],
  ])('refuses %s', (text, msg) => {
    const e = caught(() => parseVolume(text, CWD));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain(msg);
  });
});

describe('parseMountSpec', () => {
  it('reads bind mounts in docker key spellings', () => {
    expect(parseMountSpec('type=bind,source=/a,target=/b,readonly', CWD)).toEqual({ type: 'bind', source: '/a', target: '/b', readOnly: true, options: [] });
    expect(parseMountSpec('type=bind,src=./x,dst=/x,ro=false,bind-propagation=rshared', CWD)).toEqual({
      type: 'bind',
      source: '/home/me/project/x',
      target: '/x',
      readOnly: false,
      options: ['rshared'],
    });
    expect(parseMountSpec('type=bind,source=/a,destination=/b,readonly=true', CWD)).toMatchObject({ readOnly: true, target: '/b' });
  });

  it('reads tmpfs mounts with size and mode', () => {
    expect(parseMountSpec('type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770', CWD)).toEqual({ type: 'tmpfs', target: '/t', size: 64 * 1024 * 1024, mode: 0o1770, options: [] });
    expect(parseMountSpec('type=tmpfs,dst=/t,readonly', CWD)).toEqual({ type: 'tmpfs', target: '/t', readOnly: true, options: [] });
  });

  it.each([
    ['type=volume,source=v,target=/v', 'type=volume is not supported'],
    ['source=v,target=/v', 'type=volume is not supported'],
    ['type=bind,target=/b', 'needs source='],
    ['type=bind,source=/a', 'is not absolute'],
    ['type=bind,source=/a,target=/b,bogus=1', 'unknown key "bogus"'],
    ['type=bind,source=a,target=/b', 'named volume'],
    ['type=bind,source=/a,target=/b,readonly=maybe', 'not true or false'],
    ['type=bind,source=/a,target=/b,bind-propagation=nosuid', 'not a propagation mode'],
    ['type=tmpfs,source=/a,target=/b', 'has no source'],
    ['type=tmpfs,target=/b,tmpfs-mode=999', 'not octal'],
    ['type=tmpfs,target=/b,tmpfs-size=lots', 'not a size'],
    ['type=nfs,target=/b', 'type=nfs is not supported'],
  ])('refuses %s', (text, msg) => {
    const e = caught(() => parseMountSpec(text, CWD));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain(msg);
  });
});

describe('parseTmpfs', () => {
  it('reads path and options', () => {
    expect(parseTmpfs('/run')).toEqual({ type: 'tmpfs', target: '/run', options: [] });
    expect(parseTmpfs('/run:rw,size=64m,mode=755,noexec')).toEqual({ type: 'tmpfs', target: '/run', size: 64 * 1024 * 1024, mode: 0o755, readOnly: false, options: ['noexec'] });
  });
  it.each([['run', 'not absolute'], ['/run:size=', 'not a size'], ['/run:uid=5', 'unknown option "uid=5"'], ['/run:mode=8', 'not octal']])('refuses %s', (text, msg) => {
    expect(caught(() => parseTmpfs(text)).message).toContain(msg);
  });
});

describe('sizes, cpus, pids', () => {
  it.each([
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1GB', 1024 ** 3],
    ['65536k', 64 * 1024 ** 2],
    ['1.5g', 1.5 * 1024 ** 3],
    ['7000000', 7_000_000],
    ['7000000b', 7_000_000],
  ])('parseMemory(%s)', (text, bytes) => {
    expect(parseMemory(text)).toBe(bytes);
  });
  it.each([['', 'not a size'], ['lots', 'not a size'], ['1x', 'not a size'], ['-1g', 'not a size'], ['0', 'positive'], ['5m', 'minimum is 6m']])('parseMemory(%j) fails', (text, msg) => {
    const e = caught(() => parseMemory(text));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain(msg);
  });
  it('parseSize allows small sizes for tmpfs', () => {
    expect(parseSize('1k', '--tmpfs size')).toBe(1024);
  });
  it('parseCpus', () => {
    expect(parseCpus('1.5')).toBe(1.5);
    expect(parseCpus('2')).toBe(2);
    expect(parseCpus('.5')).toBe(0.5);
    for (const bad of ['0', '-1', 'x', '1,5', '0.001', '']) expect(caught(() => parseCpus(bad)).code).toBe('EUSAGE');
  });
  it('parsePidsLimit', () => {
    expect(parsePidsLimit('256')).toBe(256);
    expect(parsePidsLimit('-1')).toBe(-1);
    expect(parsePidsLimit('0')).toBe(0);
    for (const bad of ['-2', '1.5', 'many']) expect(caught(() => parsePidsLimit(bad)).code).toBe('EUSAGE');
  });
});

describe('parseUlimit', () => {
  it('reads soft:hard and a single value', () => {
    expect(parseUlimit('nofile=1024:2048')).toEqual({ name: 'nofile', soft: 1024, hard: 2048 });
    expect(parseUlimit('nproc=512')).toEqual({ name: 'nproc', soft: 512, hard: 512 });
  });
  it.each([
    ['nofile', 'expected NAME=SOFT[:HARD]'],
    ['nofile=2048:1024', 'above the hard limit'],
    ['bogus=1', 'unknown limit "bogus"'],
    ['nofile=-1', 'unlimited is not supported'],
    ['core=unlimited', 'unlimited is not supported'],
    ['nofile=1:2:3', 'expected'],
  ])('refuses %s', (text, msg) => {
    expect(caught(() => parseUlimit(text)).message).toContain(msg);
  });
});

describe('environment', () => {
  it('parseEnvFile follows docker: comments, blanks, no quoting, bare names returned separately', () => {
    const text = '# comment\n\nA=1\n  B=two words \nC="quoted"\nD=\nHOME\r\nE=x=y\n';
    expect(parseEnvFile(text)).toEqual({ env: ['A=1', 'B=two words ', 'C="quoted"', 'D=', 'E=x=y'], names: ['HOME'] });
  });
  it('parseEnvFile names the bad line', () => {
    const e = caught(() => parseEnvFile('A=1\n=oops\n', 'vars.env'));
    expect(e.message).toContain('vars.env line 2');
    expect(caught(() => parseEnvFile('BAD NAME=1')).code).toBe('EUSAGE');
  });
  it('parseEnvVar', () => {
    expect(parseEnvVar('A=b=c')).toEqual({ name: 'A', value: 'b=c' });
    expect(parseEnvVar('A=')).toEqual({ name: 'A', value: '' });
    expect(caught(() => parseEnvVar('A')).code).toBe('EUSAGE');
    expect(caught(() => parseEnvVar('=x')).code).toBe('EUSAGE');
  });
  it('parseKeyValue and parseNetwork', () => {
    expect(parseKeyValue('org.x=1=2', '--label')).toEqual(['org.x', '1=2']);
    expect(caught(() => parseKeyValue('nokey', '--label')).message).toContain('--label');
    expect(parseNetwork('none')).toBe('none');
    expect(parseNetwork('host')).toBe('host');
    expect(caught(() => parseNetwork('bridge')).hint).toContain('--network none');
  });
});
