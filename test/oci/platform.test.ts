import { describe, it, expect } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import {
  currentHost,
  formatPlatform,
  hostPlatform,
  matchPlatform,
  normalizePlatform,
  parsePlatform,
  selectManifest,
} from '../../src/oci/platform.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/oci/types.js';

const p = (s: string): Platform => parsePlatform(s);

describe('parsePlatform / formatPlatform', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['Linux/ARM/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    [' windows/amd64 ', { os: 'windows', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'x86_64' }],
  ])('%j', (input, want) => {
    expect(parsePlatform(input)).toEqual(want);
  });

  it.each([
    ['', 'expected OS/ARCH[/VARIANT]'],
    ['linux', 'expected OS/ARCH[/VARIANT]'],
    ['arm64', 'expected OS/ARCH[/VARIANT]'],
    ['linux/arm/v7/extra', 'expected OS/ARCH[/VARIANT]'],
    ['linux/', 'empty component'],
    ['/amd64', 'empty component'],
    ['linux/arm/', 'empty component'],
    ['linux/am d64', '"am d64" is not a valid component'],
  ])('refuses %j', (input, reason) => {
    let err: unknown;
    try {
      parsePlatform(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S2nError);
    const e = err as S2nError;
    expect(e.code).toBe('EPLATFORM');
    expect(e.message).toBe(`parse platform "${input}": ${reason}`);
    expect(e.hint).toMatch(/OS\/ARCH\[\/VARIANT\]/);
  });

  it('formats os/arch[/variant]', () => {
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
    expect(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: '' })).toBe('linux/arm');
    for (const s of ['linux/amd64', 'linux/arm/v6', 'windows/arm64/v8']) expect(formatPlatform(p(s))).toBe(s);
  });
});

describe('hostPlatform', () => {
  const le = { platform: 'linux', littleEndian: true };
  it.each([
    [{ ...le, arch: 'x64' }, 'linux/amd64'],
    [{ ...le, arch: 'arm64' }, 'linux/arm64/v8'],
    [{ ...le, arch: 'arm', armVersion: '7' }, 'linux/arm/v7'],
    [{ ...le, arch: 'arm', armVersion: 6 }, 'linux/arm/v6'],
    [{ ...le, arch: 'arm' }, 'linux/arm/v7'],
    [{ ...le, arch: 'ia32' }, 'linux/386'],
    [{ ...le, arch: 'ppc64' }, 'linux/ppc64le'],
    [{ platform: 'linux', littleEndian: false, arch: 'ppc64' }, 'linux/ppc64'],
    [{ platform: 'linux', littleEndian: false, arch: 's390x' }, 'linux/s390x'],
    [{ ...le, arch: 'riscv64' }, 'linux/riscv64'],
    [{ ...le, arch: 'loong64' }, 'linux/loong64'],
    [{ ...le, arch: 'mipsel' }, 'linux/mipsle'],
    [{ platform: 'darwin', littleEndian: true, arch: 'arm64' }, 'darwin/arm64/v8'],
    [{ platform: 'win32', littleEndian: true, arch: 'x64' }, 'windows/amd64'],
  ])('%j → %s', (facts, want) => {
    expect(formatPlatform(hostPlatform(facts))).toBe(want);
  });

  it('describes this machine by default', () => {
    const facts = currentHost();
    expect(facts.platform).toBe(process.platform);
    expect(facts.arch).toBe(process.arch);
    expect(hostPlatform()).toEqual(hostPlatform(facts));
    expect(hostPlatform().architecture).not.toBe('x64');
  });
});

describe('normalizePlatform', () => {
  it.each([
    ['linux/arm64', 'linux/arm64/v8'],
    ['linux/arm64/v8', 'linux/arm64/v8'],
    ['linux/arm64/8', 'linux/arm64/v8'],
    ['linux/aarch64', 'linux/arm64/v8'],
    ['linux/arm64/v9', 'linux/arm64/v9'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/amd64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['linux/i686', 'linux/386'],
    ['linux/ppc64le', 'linux/ppc64le'],
  ])('%s → %s', (input, want) => {
    expect(formatPlatform(normalizePlatform(p(input)))).toBe(want);
  });

  it('keeps other fields and does not touch its argument', () => {
    const inp: Platform = { os: 'Windows', architecture: 'X86_64', 'os.version': '10.0.17763.1' };
    expect(normalizePlatform(inp)).toEqual({ os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' });
    expect(inp.architecture).toBe('X86_64');
  });
});

describe('matchPlatform', () => {
  it.each([
    ['linux/amd64', 'linux/amd64', true],
    ['linux/amd64', 'linux/x86_64', true],
    ['linux/amd64', 'linux/amd64/v1', true],
    ['linux/amd64', 'linux/arm64', false],
    ['linux/amd64', 'windows/amd64', false],
    ['linux/arm64', 'linux/arm64/v8', true],
    ['linux/arm64/v8', 'linux/arm64', true],
    ['linux/arm64/v8', 'linux/aarch64', true],
    ['linux/arm64/v8', 'linux/arm64/v9', false],
    ['linux/arm', 'linux/arm/v6', true],
    ['linux/arm', 'linux/arm/v7', true],
    ['linux/arm/v7', 'linux/arm', true],
    ['linux/arm/v7', 'linux/arm/v6', false],
    ['linux/arm/v6', 'linux/arm/v7', false],
    ['linux/amd64/v3', 'linux/amd64', false],
    ['linux/amd64/v3', 'linux/amd64/v3', true],
  ])('want %s, have %s → %s', (want, have, result) => {
    expect(matchPlatform(p(want), p(have))).toBe(result);
  });
});

function entry(platform: string | undefined, n: number, mediaType: string = MediaType.ociManifest): Descriptor {
  const d: Descriptor = { mediaType, digest: `sha256:${String(n).padStart(64, '0')}`, size: 100 + n };
  if (platform !== undefined) d.platform = p(platform);
  return d;
}

function index(...manifests: Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
}

const ctx = { reference: 'docker.io/library/alpine:latest' };

describe('selectManifest', () => {
  const multi = index(
    entry('linux/amd64', 1),
    entry('linux/arm/v6', 2),
    entry('linux/arm/v7', 3),
    entry('linux/arm64/v8', 4),
    entry('linux/386', 5),
    entry('linux/ppc64le', 6),
    entry('linux/s390x', 7),
    entry('unknown/unknown', 8),
    entry('unknown/unknown', 9),
  );

  it.each([
    ['linux/amd64', 1],
    ['linux/x86_64', 1],
    ['linux/arm64', 4],
    ['linux/aarch64', 4],
    ['linux/arm64/v8', 4],
    ['linux/arm/v7', 3],
    ['linux/arm/v6', 2],
    ['linux/arm', 3],
    ['linux/armhf', 3],
    ['linux/arm/v8', 3],
    ['linux/s390x', 7],
  ])('picks %s', (want, n) => {
    expect(selectManifest(multi, p(want), ctx)).toBe(multi.manifests[n - 1]);
  });

  it('falls back to an older compatible arm variant', () => {
    const idx = index(entry('linux/arm/v5', 1), entry('linux/arm/v6', 2), entry('linux/amd64', 3));
    expect(selectManifest(idx, p('linux/arm/v7'), ctx)).toBe(idx.manifests[1]);
    expect(() => selectManifest(idx, p('linux/arm/v6'), ctx)).not.toThrow();
  });

  it('prefers the exact variant over index order', () => {
    const idx = index(entry('linux/arm/v6', 1), entry('linux/arm/v7', 2));
    expect(selectManifest(idx, p('linux/arm/v7'), ctx)).toBe(idx.manifests[1]);
    // with no variant wanted, the default (v7) still beats the first listed
    expect(selectManifest(idx, p('linux/arm'), ctx)).toBe(idx.manifests[1]);
  });

  it('takes the first of equally good entries', () => {
    const idx = index(entry('linux/amd64', 1), entry('linux/amd64', 2));
    expect(selectManifest(idx, p('linux/amd64'), ctx)).toBe(idx.manifests[0]);
  });

  it('takes a single entry without platform', () => {
    const idx = index(entry(undefined, 1));
    expect(selectManifest(idx, p('linux/ppc64le'), ctx)).toBe(idx.manifests[0]);
  });

  it('ignores entries without platform when there are several, and non-image entries', () => {
    const idx = index(
      entry(undefined, 1),
      entry('linux/amd64', 2, 'application/vnd.in-toto+json'),
      entry('linux/amd64', 3, MediaType.dockerManifest),
    );
    expect(selectManifest(idx, p('linux/amd64'), ctx)).toBe(idx.manifests[2]);
  });

  it('never picks a buildx attestation (unknown/unknown)', () => {
    const idx = index(entry('unknown/unknown', 1), entry('linux/amd64', 2));
    const err = (() => {
      try {
        selectManifest(idx, p('unknown/unknown'), ctx);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect((err as S2nError).code).toBe('EPLATFORM');
  });

  it('explains what is available when nothing matches', () => {
    const idx = index(entry('linux/amd64', 1), entry('linux/arm64/v8', 2), entry('linux/amd64', 3), entry('unknown/unknown', 4));
    let err: unknown;
    try {
      selectManifest(idx, p('linux/ppc64le'), ctx);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S2nError);
    const e = err as S2nError;
    expect(e.code).toBe('EPLATFORM');
    expect(e.message).toBe('no manifest for platform linux/ppc64le in docker.io/library/alpine:latest');
    expect(e.hint).toBe('available: linux/amd64, linux/arm64/v8; choose one with --platform');
    expect(e.context['available']).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(e.context['reference']).toBe(ctx.reference);
  });

  it('says "none" for an empty index', () => {
    expect(() => selectManifest(index(), p('linux/amd64'), ctx)).toThrow(
      expect.objectContaining({ code: 'EPLATFORM', hint: 'available: none; choose one with --platform' }),
    );
  });

  it('does not accept a newer variant than wanted', () => {
    const idx = index(entry('linux/arm/v7', 1), entry('linux/amd64/v3', 2));
    expect(() => selectManifest(idx, p('linux/arm/v6'), ctx)).toThrow(/no manifest for platform linux\/arm\/v6/);
    expect(() => selectManifest(idx, p('linux/amd64/v2'), ctx)).toThrow(/no manifest/);
  });

  it('lets amd64 v3 machines run v2 and baseline images', () => {
    const idx = index(entry('linux/amd64', 1), entry('linux/amd64/v2', 2));
    expect(selectManifest(idx, p('linux/amd64/v3'), ctx)).toBe(idx.manifests[1]);
  });
});
