/**
 * Retries for idempotent requests (GET/HEAD only): 5xx except 501, 429 with
 * `Retry-After`, and transient network errors, with exponential backoff and
 * jitter. Errors are marked transient where they are made (the HTTP layer
 * knows the status and headers), and `withRetry` only asks the mark.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface RetryOptions {
  /** Total tries, the first included. Default 5. */
  attempts?: number;
  /** First backoff; doubles each try. Default 200 ms. */
  baseDelayMs?: number;
  /** Backoff ceiling. Default 10 s. */
  maxDelayMs?: number;
  /** Ceiling for a server's `Retry-After`. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Injectable for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injectable for tests; default Math.random. */
  random?: () => number;
  /** Told before each wait: what failed and how long we wait. */
  onRetry?: (info: { attempt: number; delayMs: number; error: Error }) => void;
}

export type RetryPolicy = Required<Omit<RetryOptions, 'onRetry'>> & Pick<RetryOptions, 'onRetry'>;

export function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : undefined);
}

export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  return {
    attempts: Math.max(1, o.attempts ?? 5),
    baseDelayMs: o.baseDelayMs ?? 200,
    maxDelayMs: o.maxDelayMs ?? 10_000,
    maxRetryAfterMs: o.maxRetryAfterMs ?? 60_000,
    sleep: o.sleep ?? defaultSleep,
    random: o.random ?? Math.random,
    ...(o.onRetry ? { onRetry: o.onRetry } : {}),
  };
}

interface TransientMark {
  retryAfterMs: number | undefined;
}

const marks = new WeakMap<object, TransientMark>();

/** Marks `err` as worth retrying, optionally after the server's requested delay. */
export function markTransient<E extends Error>(err: E, retryAfterMs?: number): E {
  marks.set(err, { retryAfterMs });
  return err;
}

export function transientMark(err: unknown): TransientMark | undefined {
  return typeof err === 'object' && err !== null ? marks.get(err) : undefined;
}

/** 408, 429 and 5xx except 501 (Not Implemented never gets better). */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** A Node/undici error code that a later try may not see again. */
export function isTransientNetworkCode(code: string | undefined): boolean {
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/** `Retry-After` as seconds or an HTTP-date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Backoff before try `attempt + 1` (attempt counts from 1): exponential, half of it jittered. */
export function backoffDelay(attempt: number, p: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const exp = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (exp / 2) * p.random());
}

/** The wait before the next try after `err`, honouring a marked `Retry-After`. */
export function retryDelay(err: unknown, attempt: number, p: RetryPolicy): number {
  const after = transientMark(err)?.retryAfterMs;
  if (after !== undefined) return Math.min(after, p.maxRetryAfterMs);
  return backoffDelay(attempt, p);
}

/**
 * Runs `fn` until it succeeds, throws an unmarked error, or the tries run
 * out (then its last error is thrown as is: it already says what failed).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, p: RetryPolicy, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (attempt >= p.attempts || transientMark(e) === undefined || signal?.aborted) throw e;
      const ms = retryDelay(e, attempt, p);
      p.onRetry?.({ attempt, delayMs: ms, error: e as Error });
      await p.sleep(ms, signal);
    }
  }
}
