/**
 * Platforms (os/arch/variant) and choosing an image's manifest from an index.
 * Names follow Go's GOOS/GOARCH, as the image-spec does; other spellings
 * (aarch64, x86_64, armhf) are normalised before comparing.
 */
import { endianness } from 'node:os';
import { S2nError } from '../errors.js';
import { isIndexType, isManifestType } from './mediatypes.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

const PART_RE = /^[a-z0-9_.-]+$/;

/** `linux/arm64/v8` → `{os: 'linux', architecture: 'arm64', variant: 'v8'}` (lowercased, not normalised). */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split('/');
  const bad = (why: string): S2nError =>
    new S2nError('EPLATFORM', `parse platform "${s}": ${why}`, {
      hint: 'platforms look like OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8',
      context: { platform: s },
    });
  if (parts.length < 2 || parts.length > 3) throw bad('expected OS/ARCH[/VARIANT]');
  for (const part of parts) {
    if (!PART_RE.test(part)) throw bad(part === '' ? 'empty component' : `"${part}" is not a valid component`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** What hostPlatform needs to know about the machine; defaults to this process. */
export interface HostFacts {
  /** `process.platform` */
  platform: string;
  /** `process.arch` */
  arch: string;
  /** Node's build-time `arm_version` (6, 7...) on 32-bit ARM. */
  armVersion?: string | number;
  littleEndian: boolean;
}

export function currentHost(): HostFacts {
  const vars = process.config.variables as unknown as Record<string, unknown>;
  const arm = vars['arm_version'];
  const facts: HostFacts = { platform: process.platform, arch: process.arch, littleEndian: endianness() === 'LE' };
  if (typeof arm === 'string' || typeof arm === 'number') facts.armVersion = arm;
  return facts;
}

const NODE_OS: Record<string, string> = { win32: 'windows', sunos: 'solaris' };

/** The OCI platform of the machine we run on: process.platform/arch in GOOS/GOARCH terms. */
export function hostPlatform(host: HostFacts = currentHost()): Platform {
  const os = NODE_OS[host.platform] ?? host.platform;
  switch (host.arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'arm64':
      return { os, architecture: 'arm64', variant: 'v8' };
    case 'arm': {
      const v = String(host.armVersion ?? '7').replace(/^v/, '');
      return { os, architecture: 'arm', variant: `v${v === '' ? '7' : v}` };
    }
    case 'ia32':
      return { os, architecture: '386' };
    case 'ppc64':
      return { os, architecture: host.littleEndian ? 'ppc64le' : 'ppc64' };
    case 'mipsel':
      return { os, architecture: 'mipsle' };
    default:
      // s390x, riscv64, loong64, mips, ppc: Node and Go spell these alike.
      return { os, architecture: host.arch };
  }
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  aarch64: { architecture: 'arm64' },
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  i386: { architecture: '386' },
  i486: { architecture: '386' },
  i586: { architecture: '386' },
  i686: { architecture: '386' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
};

/** The variant a platform has when it names none, in the canonical spelling. */
function normaliseVariant(architecture: string, variant: string | undefined): string | undefined {
  const v = variant === undefined || variant === '' ? undefined : variant.toLowerCase();
  switch (architecture) {
    case 'arm64':
      // arm64 images without a variant are v8; "8" and "v8.0" are the same thing.
      return v === undefined || v === '8' || v === 'v8.0' ? 'v8' : v;
    case 'arm':
      if (v === undefined) return 'v7';
      return /^[0-9]+$/.test(v) ? `v${v}` : v;
    case 'amd64':
      // amd64 v1 is the baseline every amd64 machine runs; it is written as no variant.
      return v === 'v1' || v === '1' ? undefined : v;
    default:
      return v;
  }
}

/** Canonical os/arch/variant: arm64 → v8, arm → v7, aarch64 → arm64, x86_64 → amd64... */
export function normalizePlatform(p: Platform): Platform {
  const arch = p.architecture.toLowerCase();
  const alias = ARCH_ALIASES[arch];
  const architecture = alias?.architecture ?? arch;
  const variant = normaliseVariant(architecture, p.variant || alias?.variant);
  const out: Platform = { ...p, os: p.os.toLowerCase(), architecture };
  if (variant === undefined) delete out.variant;
  else out.variant = variant;
  return out;
}

/**
 * Same os and architecture after normalisation; the variant must match only
 * when `want` names one (`linux/arm` accepts any arm variant).
 */
export function matchPlatform(want: Platform, have: Platform): boolean {
  return rank(want, have) === 0 || (sameOsArch(want, have) && !want.variant);
}

function sameOsArch(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  return w.os === h.os && w.architecture === h.architecture;
}

/**
 * Older variants a machine of `variant` also runs, best first: an armv7
 * machine runs v6 and v5 images, an amd64 v3 machine runs v2 and v1.
 */
function compatibleVariants(architecture: string, variant: string | undefined): Array<string | undefined> {
  const n = variant === undefined ? NaN : Number(variant.replace(/^v/, ''));
  if (architecture === 'arm' && n >= 5 && n <= 8) {
    return [8, 7, 6, 5].filter((x) => x <= n).map((x) => `v${x}`);
  }
  if (architecture === 'amd64' && n >= 2 && n <= 4) {
    return [4, 3, 2].filter((x) => x <= n).map((x): string | undefined => `v${x}`).concat([undefined]);
  }
  return [variant];
}

/**
 * How well `have` serves `want`: 0 exact, 1 any variant when `want` names
 * none, 2+ an older compatible variant; undefined when it cannot run.
 */
function rank(want: Platform, have: Platform): number | undefined {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  if (w.variant === h.variant) return 0;
  if (!want.variant) return 1;
  const i = compatibleVariants(w.architecture, w.variant).indexOf(h.variant);
  return i > 0 ? 1 + i : undefined;
}

/** buildx stores attestations as index entries with platform unknown/unknown. */
function isPlaceholder(p: Platform): boolean {
  return p.os === 'unknown' && p.architecture === 'unknown';
}

/**
 * The index entry to pull for `want`: the exact match, else (with no variant
 * asked) any variant, else an older compatible variant; index order breaks ties.
 * An index with one platform-less entry yields that entry.
 */
export function selectManifest(index: ImageIndex, want: Platform, context: { reference: string }): Descriptor {
  const only = index.manifests.length === 1 ? index.manifests[0] : undefined;
  if (only !== undefined && only.platform === undefined) return only;

  let best: { desc: Descriptor; score: number } | undefined;
  const available: string[] = [];
  for (const desc of index.manifests) {
    const p = desc.platform;
    if (p === undefined || isPlaceholder(p)) continue;
    if (!isManifestType(desc.mediaType) && !isIndexType(desc.mediaType)) continue;
    const name = formatPlatform(p);
    if (!available.includes(name)) available.push(name);
    const score = rank(want, p);
    if (score !== undefined && (best === undefined || score < best.score)) best = { desc, score };
  }
  if (best !== undefined) return best.desc;

  const wanted = formatPlatform(want);
  throw new S2nError('EPLATFORM', `no manifest for platform ${wanted} in ${context.reference}`, {
    hint: `available: ${available.length > 0 ? available.join(', ') : 'none'}; choose one with --platform`,
    context: { reference: context.reference, platform: wanted, available },
  });
}
