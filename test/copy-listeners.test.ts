/**
 * Abort listeners during a copy: every request and every write listens for
 * abort while it runs (undici until the body closes, pipeline until the
 * write ends). They must be gone when each blob is done, and many blobs at
 * once must not trip Node's "possible EventTarget memory leak" warning.
 */
import { getEventListeners } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { copyImage } from '../src/copy.js';
import type { Descriptor } from '../src/oci/types.js';
import { verifyStream } from '../src/oci/verify.js';
import type { FetchOptions, ImageSink, ImageSource, PutOptions } from '../src/sources/source.js';
import { buildImage, dir, file, type TestImage } from './helpers/images.js';

/** Hands out bodies that, like undici's, listen on the request's signal until they close. */
class ListeningSource implements ImageSource {
  readonly description = 'memory://listeners';
  readonly signals = new Set<AbortSignal>();
  constructor(private readonly img: TestImage) {}
  async resolve(): Promise<Descriptor> {
    return this.img.descriptor;
  }
  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    const bytes = desc.digest === this.img.manifestDigest ? this.img.manifestBytes : this.img.blobs.get(desc.digest);
    if (!bytes) throw new Error(`no blob ${desc.digest}`);
    // Two chunks a tick apart, so every blob is under way at the same time.
    const body = Readable.from(
      (async function* () {
        yield bytes.subarray(0, 1);
        await new Promise((r) => setTimeout(r, 5));
        yield bytes.subarray(1);
      })(),
    );
    const signal = opts.signal;
    if (signal) {
      this.signals.add(signal);
      const onAbort = (): void => void body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      body.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    return body;
  }
}

/** Writes the way the store does: a pipeline that listens on the signal while it runs. */
class PipelineSink implements ImageSink {
  readonly signals = new Set<AbortSignal>();
  readonly blobs = new Set<string>();
  async has(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }
  async put(desc: Descriptor, data: Readable, opts: PutOptions = {}): Promise<void> {
    if (opts.signal) this.signals.add(opts.signal);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await pipeline(data, verifyStream(desc), sink, opts.signal ? { signal: opts.signal } : {});
    this.blobs.add(desc.digest);
  }
}

const warnings: Error[] = [];
const onWarning = (w: Error): void => void warnings.push(w);
afterEach(() => {
  process.off('warning', onWarning);
  warnings.length = 0;
});

describe('copyImage abort listeners', () => {
  it('holds none after each blob, and many blobs at once raise no listener-leak warning', async () => {
    const layers = 14;
    const img = await buildImage({ layers: Array.from({ length: layers }, (_, i) => [dir(`l${i}/`), file(`l${i}/f`, `layer ${i}`)]) });
    const src = new ListeningSource(img);
    const dst = new PipelineSink();
    const outer = new AbortController();
    process.on('warning', onWarning);

    await copyImage(src, dst, { concurrency: layers, signal: outer.signal });
    // Warnings are emitted on the next tick.
    await new Promise((r) => setImmediate(r));

    expect(dst.blobs.size).toBe(layers + 2);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    for (const s of [...src.signals, ...dst.signals, outer.signal]) expect(getEventListeners(s, 'abort')).toHaveLength(0);
  });

  it('still aborts every blob under way when the caller aborts', async () => {
    const img = await buildImage({ layers: Array.from({ length: 4 }, (_, i) => [file(`f${i}`, `layer ${i}`)]) });
    const src = new ListeningSource(img);
    const outer = new AbortController();
    const dst = new PipelineSink();
    const put = dst.put.bind(dst);
    // Abort once every layer has started writing.
    let started = 0;
    dst.put = async (desc, data, opts) => {
      if (++started === 4) setTimeout(() => outer.abort(new Error('stop')), 1);
      return put(desc, data, opts);
    };
    // pipeline reports the abort as an AbortError whose cause is our reason.
    await expect(copyImage(src, dst, { concurrency: 4, signal: outer.signal })).rejects.toMatchObject({ cause: expect.objectContaining({ message: 'stop' }) });
    expect(dst.blobs.size).toBe(0);
    for (const s of [...src.signals, ...dst.signals, outer.signal]) expect(getEventListeners(s, 'abort')).toHaveLength(0);
  });
});
