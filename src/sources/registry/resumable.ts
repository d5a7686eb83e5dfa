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
  body: AsyncIterable<unknown>;
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
  const first = await o.open(0);
  return Readable.from(chunks(first, o), { objectMode: false });
}

async function* chunks(first: OpenedBody, o: ResumableOptions): AsyncGenerator<Buffer> {
  let current = first;
  let delivered = 0;
  // Consecutive failures without a byte of progress; progress resets it.
  let failures = 0;
  for (;;) {
    let cause: unknown;
    let skip = current.skip;
    const before = delivered;
    try {
      for await (const c of current.body) {
        let b = c as Buffer;
        if (skip > 0) {
          if (b.length <= skip) {
            skip -= b.length;
            continue;
          }
          b = b.subarray(skip);
          skip = 0;
        }
        delivered += b.length;
        // Throwing out of the loop destroys the body.
        if (delivered > o.size) {
          throw new S2nError('ESIZE', `${o.action}: the registry sent more than the ${o.size} bytes the descriptor declares`, {
            context: { ...o.context, expected: o.size, actual: delivered },
          });
        }
        yield b;
      }
      if (delivered === o.size) return;
      cause = new Error(`body ended after ${delivered} of ${o.size} bytes`);
    } catch (e) {
      if (o.signal?.aborted) throw o.signal.reason ?? e;
      if (e instanceof S2nError) throw e;
      cause = e;
    }
    failures = delivered > before ? 1 : failures + 1;
    if (failures >= o.policy.attempts) {
      throw new S2nError('ENETWORK', `${o.action}: connection lost at byte ${delivered} of ${o.size}: ${(cause as Error).message ?? String(cause)}`, {
        hint: 'the download was resumed several times and kept failing; check the network or try again',
        cause,
        context: { ...o.context, delivered, size: o.size },
      });
    }
    o.onResume?.(delivered, cause);
    await o.policy.sleep(backoffDelay(failures, o.policy), o.signal);
    current = await o.open(delivered);
  }
}
