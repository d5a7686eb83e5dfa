/**
 * A blob download that survives dropped connections: when the body errors
 * or ends before `size` bytes, the blob is requested again from the first
 * byte not yet delivered (`Range: bytes=N-`), so the consumer sees one
 * continuous stream. `open` says how many leading bytes of its body to skip
 * (a server that ignores Range answers 200 with the whole blob).
 */
import { Readable } from 'node:stream';
import { S2nError } from '../../errors.js';
import { backoffDelay, type RetryPolicy } from './retry.js';

export interface OpenedBody {
  body: Readable;
  /** Bytes at the start of `body` that were already delivered. */
  skip: number;
}

export interface ResumableOptions {
  /** Expected total size: short of it means resume, past it is ESIZE. */
  size: number;
  /** Requests the blob from `offset`; its own errors (404, 401...) end the download. */
  open: (offset: number) => Promise<OpenedBody>;
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** "fetch layer sha256:…" for messages. */
  action: string;
  context?: Record<string, unknown>;
  /** Told about each resume (for progress and debug output). */
  onResume?: (offset: number, cause: unknown) => void;
}

/** Opens the blob (errors surface here, not in the stream), then streams it with resumes. */
export async function openResumable(o: ResumableOptions): Promise<Readable> {
  return new ResumableStream(await o.open(0), o);
}

/**
 * Forwards each response body's chunks as they come ('data', paused when
 * the consumer pushes back) rather than through an async generator: no
 * promise per chunk, and no concatenation of buffered chunks into new
 * buffers, which the async iterator of a Readable does.
 */
class ResumableStream extends Readable {
  private readonly o: ResumableOptions;
  private body: Readable | undefined;
  /** Removes the listeners on `body`. */
  private detach: (() => void) | undefined;
  private delivered = 0;
  /** Consecutive failures without a byte of progress; progress resets it. */
  private failures = 0;

  constructor(first: OpenedBody, o: ResumableOptions) {
    // One undici chunk may wait here while the consumer is busy; more pauses the body.
    super({ highWaterMark: 64 * 1024 });
    this.o = o;
    this.attach(first);
    // Consumers get errors through pipeline() or iteration. One raised while nobody consumes yet (the
    // abort of a blob whose request was still on its way when another blob failed, which the store
    // then discards with destroy()) must not be an unhandled 'error' that kills the process.
    this.on('error', () => undefined);
  }

  private attach({ body, skip: toSkip }: OpenedBody): void {
    const before = this.delivered;
    let skip = toSkip;
    let settled = false;
    const onData = (chunk: Buffer): void => {
      let b = chunk;
      if (skip > 0) {
        if (b.length <= skip) {
          skip -= b.length;
          return;
        }
        b = b.subarray(skip);
        skip = 0;
      }
      this.delivered += b.length;
      if (this.delivered > this.o.size) {
        settle();
        this.destroy(
          new S2nError('ESIZE', `${this.o.action}: the registry sent more than the ${this.o.size} bytes the descriptor declares`, {
            hint: 'the registry or a proxy in between sent different content than the manifest promised; try again, or tell the registry operator',
            context: { ...this.o.context, expected: this.o.size, actual: this.delivered },
          }),
        );
        return;
      }
      if (!this.push(b)) body.pause();
    };
    const onEnd = (): void => {
      settle();
      if (this.delivered === this.o.size) this.push(null);
      else this.retry(new Error(`body ended after ${this.delivered} of ${this.o.size} bytes`), before);
    };
    const onError = (e: unknown): void => {
      settle();
      this.retry(e, before);
    };
    const onClose = (): void => onError(new Error('connection closed before the body ended'));
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.detach?.();
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
    this.body = body;
    this.detach = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      // A body left behind (error, ESIZE, our own destroy) still holds its connection.
      if (!body.readableEnded) {
        body.on('error', () => undefined);
        body.destroy();
      }
      this.body = undefined;
      this.detach = undefined;
    };
  }

  /** After a body failed: request the rest, or give up with the reason. */
  private retry(cause: unknown, before: number): void {
    const o = this.o;
    if (this.destroyed) return;
    if (o.signal?.aborted || cause instanceof S2nError) {
      this.destroy(o.signal?.aborted ? toError(o.signal.reason ?? cause) : toError(cause));
      return;
    }
    this.failures = this.delivered > before ? 1 : this.failures + 1;
    if (this.failures >= o.policy.attempts) {
      this.destroy(
        new S2nError('ENETWORK', `${o.action}: connection lost at byte ${this.delivered} of ${o.size}: ${toError(cause).message}`, {
          hint: 'the download was resumed several times and kept failing; check the network or try again',
          cause,
          context: { ...o.context, delivered: this.delivered, size: o.size },
        }),
      );
      return;
    }
    o.onResume?.(this.delivered, cause);
    const offset = this.delivered;
    o.policy
      .sleep(backoffDelay(this.failures, o.policy), o.signal)
      .then(() => (this.destroyed ? undefined : o.open(offset)))
      .then(
        (next) => {
          if (next === undefined) return;
          // Destroyed while the request was on its way: release it at once.
          if (this.destroyed) {
            next.body.on('error', () => undefined);
            next.body.destroy();
          } else this.attach(next);
        },
        (e: unknown) => this.destroy(toError(e)),
      );
  }

  override _read(): void {
    this.body?.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Also when destroyed before the first read (the store already had the blob): the response's connection is freed.
    this.detach?.();
    cb(err);
  }
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
