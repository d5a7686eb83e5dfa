/**
 * Registry host names: `HOST[:PORT]` parsing, Docker Hub aliases, loopback
 * and CIDR tests. Shared by transport (scheme, proxies), config (insecure
 * ranges) and credentials (auth-file keys).
 */
import { BlockList, isIP } from 'node:net';

export const DOCKER_HUB = 'docker.io';

/** Names people and tools use for Docker Hub; all normalise to `docker.io`. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export interface HostPort {
  /** Without brackets for IPv6: `::1`. Lowercased. */
  hostname: string;
  port: number | undefined;
}

/** Splits `host`, `host:5000`, `[::1]:5000`, `::1` (a bare IPv6 address has no port). */
export function splitHostPort(s: string): HostPort {
  const v = s.trim().toLowerCase();
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    const hostname = end < 0 ? v.slice(1) : v.slice(1, end);
    const rest = end < 0 ? '' : v.slice(end + 1);
    return { hostname, port: rest.startsWith(':') ? toPort(rest.slice(1)) : undefined };
  }
  const colons = v.split(':').length - 1;
  if (colons === 1) {
    const i = v.indexOf(':');
    return { hostname: v.slice(0, i), port: toPort(v.slice(i + 1)) };
  }
  return { hostname: v, port: undefined };
}

function toPort(s: string): number | undefined {
  if (!/^\d{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n > 0 && n < 65536 ? n : undefined;
}

/** `HOST[:PORT]` as it appears in references and certs.d dir names (IPv6 bracketed). */
export function joinHostPort(hostname: string, port: number | undefined): string {
  const h = hostname.includes(':') ? `[${hostname}]` : hostname;
  return port === undefined ? h : `${h}:${port}`;
}

/** Canonical registry name: lowercased, Docker Hub aliases folded into `docker.io`. */
export function normalizeRegistry(host: string): string {
  const h = host.trim().toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? DOCKER_HUB : h;
}

/** localhost, *.localhost, 127.0.0.0/8, ::1 (and its IPv4-mapped form). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** Is `ip` inside `cidr` (`10.0.0.0/8`, `fd00::/8`)? False when either is not an address. */
export function ipInCidr(ip: string, cidr: string): boolean {
  const slash = cidr.indexOf('/');
  if (slash < 0) return false;
  const net = cidr.slice(0, slash);
  const prefix = Number(cidr.slice(slash + 1));
  const fam = isIP(net);
  const ipFam = isIP(ip);
  if (fam === 0 || ipFam !== fam || !Number.isInteger(prefix)) return false;
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  if (prefix < 0 || prefix > (fam === 4 ? 32 : 128)) return false;
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return list.check(ip, type);
}

export function isCidr(s: string): boolean {
  const slash = s.indexOf('/');
  return slash > 0 && isIP(s.slice(0, slash)) !== 0 && /^\d{1,3}$/.test(s.slice(slash + 1));
}
