/**
 * node:crypto on first use, and random bytes without it. Loading node:crypto
 * costs ~3 ms, which a warm `run` would otherwise pay on every start just for
 * a container id: it hashes nothing (it re-reads what the store verified when
 * it took the image in, see store/find.ts).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

type NodeCrypto = typeof import('node:crypto');

let loaded: NodeCrypto | undefined;

export function nodeCrypto(): NodeCrypto {
  return (loaded ??= createRequire(import.meta.url)('node:crypto') as NodeCrypto);
}

/** `n` random bytes from /dev/urandom (the kernel's CSPRNG, which crypto.randomBytes also draws on); node:crypto where it cannot be read. */
export function randomBytes(n: number): Buffer {
  let fd: number;
  try {
    fd = openSync('/dev/urandom', 'r');
  } catch {
    return nodeCrypto().randomBytes(n);
  }
  try {
    const buf = Buffer.alloc(n);
    for (let got = 0; got < n; ) {
      const r = readSync(fd, buf, got, n - got, null);
      if (r === 0) return nodeCrypto().randomBytes(n);
      got += r;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}
