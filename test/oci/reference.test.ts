import { describe, it, expect } from 'vitest';
import { S2nError } from '../../src/errors.js';
import {
  familiarReference,
  formatReference,
  parseReference,
  referenceForStore,
  registryApiHost,
  type Reference,
} from '../../src/oci/reference.js';

const H256 = 'sha256:' + 'f'.repeat(64);
const H256B = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const H512 = 'sha512:' + 'a'.repeat(128);

type Row = [input: string, registry: string, repository: string, tag?: string, digest?: string];

// [input, registry, repository, tag, digest]
const VALID: Row[] = [
  // Docker Hub normalisation
  ['alpine', 'docker.io', 'library/alpine', 'latest'],
  ['alpine:3.19', 'docker.io', 'library/alpine', '3.19'],
  ['user/app', 'docker.io', 'user/app', 'latest'],
  ['user/app:1', 'docker.io', 'user/app', '1'],
  ['docker.io/alpine', 'docker.io', 'library/alpine', 'latest'],
  ['docker.io/library/alpine:edge', 'docker.io', 'library/alpine', 'edge'],
  ['index.docker.io/alpine', 'docker.io', 'library/alpine', 'latest'],
  ['index.docker.io/user/app:2', 'docker.io', 'user/app', '2'],
  ['registry-1.docker.io/library/busybox', 'docker.io', 'library/busybox', 'latest'],
  ['a/b/c/d', 'docker.io', 'a/b/c/d', 'latest'],
  ['test_com', 'docker.io', 'library/test_com', 'latest'],
  // ":5000" without a "/" is a tag, not a port
  ['test.com:tag', 'docker.io', 'library/test.com', 'tag'],
  ['test.com:5000', 'docker.io', 'library/test.com', '5000'],
  ['foo_bar.com:8080', 'docker.io', 'library/foo_bar.com', '8080'],
  ['foo/foo_bar.com:8080', 'docker.io', 'foo/foo_bar.com', '8080'],
  ['192.168.1.1', 'docker.io', 'library/192.168.1.1', 'latest'],
  ['192.168.1.1:tag', 'docker.io', 'library/192.168.1.1', 'tag'],
  ['192.168.1.1:5000', 'docker.io', 'library/192.168.1.1', '5000'],
  ['lowercase:Uppercase', 'docker.io', 'library/lowercase', 'Uppercase'],
  // registries
  ['test.com/repo:tag', 'test.com', 'repo', 'tag'],
  ['test:5000/repo', 'test:5000', 'repo', 'latest'],
  ['test:5000/repo:tag', 'test:5000', 'repo', 'tag'],
  ['localhost/app', 'localhost', 'app', 'latest'],
  ['localhost:5000/x:y', 'localhost:5000', 'x', 'y'],
  ['192.168.1.1/repo', '192.168.1.1', 'repo', 'latest'],
  ['192.168.1.1:5000/repo', '192.168.1.1:5000', 'repo', 'latest'],
  ['192.168.1.1:5000/repo:5050', '192.168.1.1:5000', 'repo', '5050'],
  ['sub-dom1.foo.com/bar/baz/quux', 'sub-dom1.foo.com', 'bar/baz/quux', 'latest'],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', 'sub-dom1.foo.com', 'bar/baz/quux', 'some-long-tag'],
  ['b.gcr.io/test.example.com/my-app:test.example.com', 'b.gcr.io', 'test.example.com/my-app', 'test.example.com'],
  ['xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com', 'myimage', 'xn--n3h.com'],
  ['ghcr.io/owner/repo/sub:v1.2.3', 'ghcr.io', 'owner/repo/sub', 'v1.2.3'],
  ['quay.io/podman/hello', 'quay.io', 'podman/hello', 'latest'],
  ['Foo.com/bar', 'Foo.com', 'bar', 'latest'],
  // docker: a first component with uppercase cannot be a repository, so it is a registry
  ['Foo/bar', 'Foo', 'bar', 'latest'],
  // IPv6 registries
  ['[2001:db8::1]/repo', '[2001:db8::1]', 'repo', 'latest'],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', '[2001:db8:1:2:3:4:5:6]', 'repo', 'tag'],
  ['[2001:db8::1]:5000/repo', '[2001:db8::1]:5000', 'repo', 'latest'],
  ['[2001:db8::1]:5000/repo:tag', '[2001:db8::1]:5000', 'repo', 'tag'],
  ['[2001:db8::]:5000/repo', '[2001:db8::]:5000', 'repo', 'latest'],
  ['[::1]:5000/repo', '[::1]:5000', 'repo', 'latest'],
  // digests: no default tag; tag and digest both kept
  [`alpine@${H256}`, 'docker.io', 'library/alpine', undefined, H256],
  [`alpine:3.19@${H256B}`, 'docker.io', 'library/alpine', '3.19', H256B],
  [`test:5000/repo@${H256}`, 'test:5000', 'repo', undefined, H256],
  [`test:5000/repo:tag@${H256}`, 'test:5000', 'repo', 'tag', H256],
  [`[2001:db8::1]:5000/repo@${H256}`, '[2001:db8::1]:5000', 'repo', undefined, H256],
  [`[2001:db8::1]:5000/repo:tag@${H256}`, '[2001:db8::1]:5000', 'repo', 'tag', H256],
  [`xn--7o8h.com/myimage:xn--7o8h.com@${H512}`, 'xn--7o8h.com', 'myimage', 'xn--7o8h.com', H512],
  // separators
  ['foo__bar', 'docker.io', 'library/foo__bar', 'latest'],
  ['foo--bar', 'docker.io', 'library/foo--bar', 'latest'],
  ['foo-bar.baz_qux', 'docker.io', 'library/foo-bar.baz_qux', 'latest'],
  // tag edge cases
  ['a:_', 'docker.io', 'library/a', '_'],
  [`a:${'t'.repeat(128)}`, 'docker.io', 'library/a', 't'.repeat(128)],
  ['a:A_b.c-D', 'docker.io', 'library/a', 'A_b.c-D'],
];

describe('parseReference: valid', () => {
  it.each(VALID)('%s', (input, registry, repository, tag, digest) => {
    const want: Reference = { registry, repository };
    if (tag !== undefined) want.tag = tag;
    if (digest !== undefined) want.digest = digest as Reference['digest'];
    expect(parseReference(input)).toEqual(want);
  });

  it('is stable: formatting and reparsing gives the same reference', () => {
    for (const [input] of VALID) {
      const r = parseReference(input);
      expect(parseReference(formatReference(r))).toEqual(r);
      expect(parseReference(familiarReference(r))).toEqual(r);
    }
  });

  it('accepts a name of exactly 255 characters', () => {
    const repo = 'a'.repeat(255 - 'example.com/'.length);
    expect(parseReference(`example.com/${repo}`).repository).toBe(repo);
  });
});

// [input, fragment of the reason]
const INVALID: Array<[string, string]> = [
  ['', 'reference is empty'],
  [':justtag', 'repository name is empty'],
  [`@${H256}`, 'repository name is empty'],
  [`:tag@${H256}`, 'repository name is empty'],
  ['alpine:', 'tag is empty'],
  ['alpine@', 'bad digest ""'],
  ['alpine@sha256:ffff', 'must have 64 hex characters'],
  [`validname@invaliddigest:${'e'.repeat(64)}`, 'unsupported algorithm "invaliddigest"'],
  [`alpine@SHA256:${'f'.repeat(64)}`, 'unsupported algorithm'],
  [`alpine@sha256:${'F'.repeat(64)}`, 'lowercase hex'],
  [`alpine@${H256}@${H256}`, 'bad digest'],
  ['e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'image ID, not a reference'],
  ['Uppercase:tag', 'must be lowercase'],
  ['docker.io/Library/alpine', 'must be lowercase'],
  ['test:5000/Uppercase/lowercase:tag', 'must be lowercase'],
  ['aa/asdf$$^/aa', 'path component "asdf$$^"'],
  ['foo___bar', 'path component "foo___bar"'],
  ['foo..bar', 'path component'],
  ['foo-.bar', 'path component'],
  ['-foo', 'path component'],
  ['foo-', 'path component'],
  ['.foo', 'path component'],
  ['foo//bar', 'empty path component'],
  ['foo/', 'empty path component'],
  ['localhost:5000/', 'repository name is empty'],
  ['a:b:c', 'path component "a:b"'],
  ['docker.io/library/alpine:3:1', 'path component "alpine:3"'],
  ['alpine:-tag', 'tag "-tag"'],
  ['alpine:.tag', 'tag ".tag"'],
  ['alpine:ta/g', 'registry "alpine:ta" has an invalid port "ta"'],
  [`alpine:${'t'.repeat(129)}`, 'must be 1-128'],
  ['alpine:t@g', 'bad digest "g"'],
  ['alp ine', 'path component "alp ine"'],
  ['-foo.com/bar', 'not a valid host name'],
  ['foo-.com/bar', 'not a valid host name'],
  ['foo..com/bar', 'not a valid host name'],
  ['foo.com:port/bar', 'invalid port "port"'],
  ['foo.com:/bar', 'invalid port ""'],
  ['[2001:db8::1]', 'path component'],
  ['[2001:db8::1]:5000', 'path component'],
  ['[2001:db8::1]:tag', 'path component'],
  ['[fe80::1%eth0]:5000/repo', 'not a valid IPv6 address'],
  ['[fe80::1%@invalidzone]:5000/repo', 'bad digest'],
  ['[2001:db8::1/repo', 'unclosed'],
  ['[2001:db8::1]x/repo', 'text after "]"'],
  ['[2001:db8::1]:50a/repo', 'invalid port'],
  ['[]:5000/repo', 'not a valid IPv6 address'],
  [`${'a/'.repeat(127)}a:tag`, 'the limit is 255'],
  [`example.com/${'a'.repeat(244)}`, 'the limit is 255'],
];

describe('parseReference: invalid', () => {
  it.each(INVALID)('%j', (input, reason) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S2nError);
    const e = err as S2nError;
    expect(e.code).toBe('EREFERENCE');
    expect(e.message.startsWith(`invalid reference "${input}": `)).toBe(true);
    expect(e.message).toContain(reason);
    expect(e.hint).toBe('references look like NAME[:TAG][@DIGEST], e.g. docker.io/library/alpine:3.19');
    expect(e.context['reference']).toBe(input);
  });
});

describe('parseReference: defaultRegistry', () => {
  it('puts unqualified names on the given registry, without library/', () => {
    expect(parseReference('alpine', { defaultRegistry: 'localhost:5000' })).toEqual({
      registry: 'localhost:5000',
      repository: 'alpine',
      tag: 'latest',
    });
    expect(parseReference('quay.io/a/b', { defaultRegistry: 'localhost:5000' }).registry).toBe('quay.io');
  });

  it('still normalises Docker Hub spellings', () => {
    expect(parseReference('alpine', { defaultRegistry: 'index.docker.io' })).toEqual({
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: 'latest',
    });
  });

  it('rejects an invalid default registry', () => {
    expect(() => parseReference('alpine', { defaultRegistry: 'bad host' })).toThrow(/not a valid host name/);
  });
});

describe('formatting', () => {
  // [input, canonical, familiar]
  const rows: Array<[string, string, string]> = [
    ['alpine', 'docker.io/library/alpine:latest', 'alpine:latest'],
    ['docker.io/library/alpine:3.19', 'docker.io/library/alpine:3.19', 'alpine:3.19'],
    ['user/app:1', 'docker.io/user/app:1', 'user/app:1'],
    ['library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest'],
    ['localhost:5000/x:y', 'localhost:5000/x:y', 'localhost:5000/x:y'],
    ['ghcr.io/o/r', 'ghcr.io/o/r:latest', 'ghcr.io/o/r:latest'],
    [`alpine@${H256}`, `docker.io/library/alpine@${H256}`, `alpine@${H256}`],
    [`alpine:3@${H256}`, `docker.io/library/alpine:3@${H256}`, `alpine:3@${H256}`],
    [`[::1]:5000/repo:t@${H256}`, `[::1]:5000/repo:t@${H256}`, `[::1]:5000/repo:t@${H256}`],
  ];
  it.each(rows)('%s', (input, canonical, familiar) => {
    const r = parseReference(input);
    expect(formatReference(r)).toBe(canonical);
    expect(referenceForStore(r)).toBe(canonical);
    expect(familiarReference(r)).toBe(familiar);
  });
});

describe('registryApiHost', () => {
  it('maps Docker Hub to its API host and leaves others alone', () => {
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('index.docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('ghcr.io')).toBe('ghcr.io');
    expect(registryApiHost('localhost:5000')).toBe('localhost:5000');
    expect(registryApiHost('[::1]:5000')).toBe('[::1]:5000');
  });
});
