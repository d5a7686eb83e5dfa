import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { acquireLock, cleanLockDir, readLockState, withLock, type LockInfo } from '../../src/store/lock.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { deadPid } from './util.js';

let dir: string;
let lockPath: string;
beforeEach(async () => {
  dir = await makeTempDir('s2n-lock-');
  lockPath = join(dir, 'x.lock');
});
afterEach(async () => {
  await removeDir(dir);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function staleInfo(pid: number, extra: Partial<LockInfo> = {}): LockInfo {
  return { pid, hostname: hostname(), started: '2020-01-01T00:00:00Z', nonce: `dead${pid}`, ...extra };
}

/** Runs `n` critical sections at once and returns the most that were ever inside together. */
async function maxConcurrency(n: number, opts = {}): Promise<number> {
  let inside = 0;
  let max = 0;
  await Promise.all(
    Array.from({ length: n }, () =>
      withLock(
        lockPath,
        async () => {
          inside++;
          max = Math.max(max, inside);
          await sleep(3);
          inside--;
        },
        opts,
      ),
    ),
  );
  return max;
}

describe('lock', () => {
  it('holds {pid, hostname, started}, is exclusive, and is released', async () => {
    const lock = await acquireLock(lockPath);
    const info = JSON.parse(await readFile(lockPath, 'utf8')) as LockInfo;
    expect(info).toMatchObject({ pid: process.pid, hostname: hostname() });
    expect(typeof info.started).toBe('string');
    await lock.release();
    expect(existsSync(lockPath)).toBe(false);
    expect(await maxConcurrency(10)).toBe(1);
    expect(await readdir(dir)).toEqual([]);
  });

  it('times out with ELOCKED naming the file and the holder, after telling onWait', async () => {
    const lock = await acquireLock(lockPath);
    let told: LockInfo | undefined;
    const e: unknown = await acquireLock(lockPath, { timeoutMs: 100, onWait: (h) => (told = h) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(S2nError);
    expect((e as S2nError).code).toBe('ELOCKED');
    expect((e as S2nError).message).toContain(`pid ${process.pid}`);
    expect((e as S2nError).hint).toContain(lockPath);
    expect(told?.pid).toBe(process.pid);
    await lock.release();
  });

  it('breaks a lock whose holder is dead', async () => {
    await writeFile(lockPath, JSON.stringify(staleInfo(await deadPid())));
    const t0 = Date.now();
    const lock = await acquireLock(lockPath, { timeoutMs: 2000 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((JSON.parse(await readFile(lockPath, 'utf8')) as LockInfo).pid).toBe(process.pid);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('many waiters on a stale lock: exactly one holder at a time', async () => {
    for (let round = 0; round < 5; round++) {
      await writeFile(lockPath, JSON.stringify(staleInfo(await deadPid())));
      expect(await maxConcurrency(12, { timeoutMs: 5000 })).toBe(1);
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('breaks a stale lock even when a stale breaker claim was left behind', async () => {
    const pid = await deadPid();
    await writeFile(lockPath, JSON.stringify(staleInfo(pid)));
    await writeFile(`${lockPath}.break-dead${pid}`, JSON.stringify(staleInfo(pid, { nonce: 'claim1' })));
    const lock = await acquireLock(lockPath, { timeoutMs: 2000 });
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('never breaks a lock held on another host', async () => {
    await writeFile(lockPath, JSON.stringify(staleInfo(999_999_999, { hostname: 'elsewhere.example' })));
    const e: unknown = await acquireLock(lockPath, { timeoutMs: 100 }).catch((x: unknown) => x);
    expect((e as S2nError).code).toBe('ELOCKED');
    expect((e as S2nError).hint).toContain('elsewhere.example');
  });

  it.skipIf(!existsSync('/proc/sys/kernel/random/boot_id'))('treats a lock from before a reboot as stale, even if its pid is alive now', async () => {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    await writeFile(lockPath, JSON.stringify(staleInfo(1, { boot: `${boot}-old` })));
    const lock = await acquireLock(lockPath, { timeoutMs: 1000 });
    await lock.release();
    // Same boot and a live pid: held.
    await writeFile(lockPath, JSON.stringify(staleInfo(1, { boot })));
    await expect(acquireLock(lockPath, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'ELOCKED' });
  });

  it('an unparsable lock file is stale only once it is old', async () => {
    await writeFile(lockPath, 'garbage');
    await expect(acquireLock(lockPath, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'ELOCKED' });
    const old = new Date(Date.now() - 10 * 60_000);
    await utimes(lockPath, old, old);
    const lock = await acquireLock(lockPath, { timeoutMs: 1000 });
    await lock.release();
  });

  it('release leaves alone a lock that is no longer ours', async () => {
    const lock = await acquireLock(lockPath);
    const other = JSON.stringify(staleInfo(process.pid, { nonce: 'someoneelse' }));
    await writeFile(lockPath, other);
    await lock.release();
    expect(await readFile(lockPath, 'utf8')).toBe(other);
  });

  it('reports the lock state', async () => {
    expect(await readLockState(lockPath)).toEqual({ kind: 'free' });
    const lock = await acquireLock(lockPath);
    expect(await readLockState(lockPath)).toMatchObject({ kind: 'held', stale: false, info: { pid: process.pid } });
    await lock.release();
  });

  it('cleanLockDir removes dead processes’ temp files and stale locks, nothing live', async () => {
    const pid = await deadPid();
    await writeFile(join(dir, `a.lock.tmp-${pid}-0123abcd`), 'x');
    await writeFile(join(dir, `b.lock.tmp-${process.pid}-0123abcd`), 'x');
    await writeFile(join(dir, 'c.lock'), JSON.stringify(staleInfo(pid)));
    const live = await acquireLock(join(dir, 'd.lock'));
    expect(await cleanLockDir(dir)).toBe(2);
    expect((await readdir(dir)).sort()).toEqual([`b.lock.tmp-${process.pid}-0123abcd`, 'd.lock']);
    await live.release();
  });
});
