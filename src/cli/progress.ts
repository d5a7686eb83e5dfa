import type { CopyEvent } from '../copy.js';
import type { Output } from './output.js';
import { humanSize, shortDigest } from './output.js';

interface BlobState {
  digest: string;
  size: number;
  bytes: number;
  started: number;
  state: 'waiting' | 'pulling' | 'done' | 'exists';
}

/** What the copy is called in the lines: "pulling x", "pulled layer …". */
export type ProgressVerb = 'pulling' | 'loading' | 'copying';

const PAST: Record<ProgressVerb, string> = { pulling: 'pulled', loading: 'loaded', copying: 'copied' };

export interface ProgressOptions {
  /** Default 'pulling'. */
  verb?: ProgressVerb;
  /** Plain lines when stderr is not a terminal (default true); false prints nothing then, as `docker load` does. */
  plain?: boolean;
  /** Injectable clock for tests. */
  now?: () => number;
}

/**
 * Renders copy progress on stderr: redrawn bars on a TTY, a few plain lines
 * otherwise, NDJSON events with --json. Hand-written because it is a page of
 * code and the bar libraries drag in a terminal framework.
 */
export class ProgressRenderer {
  private readonly blobs = new Map<string, BlobState>();
  private drawn = 0;
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly silent: boolean;
  private readonly verb: ProgressVerb;
  private readonly now: () => number;

  constructor(
    private readonly out: Output,
    o: ProgressOptions = {},
  ) {
    this.tty = !out.json && out.stderr.isTTY === true;
    this.silent = !out.json && !this.tty && o.plain === false;
    this.verb = o.verb ?? 'pulling';
    this.now = o.now ?? Date.now;
  }

  readonly onEvent = (e: CopyEvent): void => {
    if (this.silent) return;
    if (this.out.json) {
      // Progress events are frequent; one per percent is plenty for a machine reader.
      if (e.type === 'blob-progress' && !this.percentStep(e.digest, e.bytes, e.size)) return;
      this.out.stderr.write(`${JSON.stringify(e)}\n`);
      return;
    }
    switch (e.type) {
      case 'resolved':
        this.line(`${this.verb} ${e.source} (${e.root.digest})`);
        break;
      case 'manifest':
        for (const l of e.layers) this.blobs.set(l.digest, { digest: l.digest, size: l.size, bytes: 0, started: 0, state: 'waiting' });
        if (!this.tty) this.line(`manifest ${e.manifest.digest}: ${e.layers.length} layers, ${humanSize(e.layers.reduce((a, l) => a + l.size, 0))}`);
        break;
      case 'blob-start': {
        const b = this.blob(e.digest, e.size);
        b.state = 'pulling';
        b.started = this.now();
        break;
      }
      case 'blob-progress':
        this.blob(e.digest, e.size).bytes = e.bytes;
        break;
      case 'blob-done': {
        const b = this.blob(e.digest, e.size);
        b.state = e.existed ? 'exists' : 'done';
        b.bytes = e.size;
        if (!this.tty && e.kind === 'layer') {
          this.line(`${e.existed ? 'already have' : PAST[this.verb]} layer ${shortDigest(e.digest)} (${humanSize(e.size)})`);
        }
        break;
      }
    }
    if (this.tty) this.draw(e.type !== 'blob-progress');
  };

  /** Leave the final bars on screen. */
  finish(): void {
    if (this.tty) this.draw(true);
  }

  private readonly lastPercent = new Map<string, number>();
  private percentStep(digest: string, bytes: number, size: number): boolean {
    const p = size > 0 ? Math.floor((bytes * 100) / size) : 100;
    if (this.lastPercent.get(digest) === p) return false;
    this.lastPercent.set(digest, p);
    return true;
  }

  private blob(digest: string, size: number): BlobState {
    let b = this.blobs.get(digest);
    if (!b) {
      b = { digest, size, bytes: 0, started: this.now(), state: 'waiting' };
      this.blobs.set(digest, b);
    }
    return b;
  }

  private line(text: string): void {
    if (this.tty) this.clear();
    this.out.stderr.write(`${text}\n`);
  }

  private clear(): void {
    if (this.drawn > 0) this.out.stderr.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    this.clear();
    const width = Math.max(10, Math.min(30, (this.out.stderr.columns ?? 80) - 50));
    const lines = [...this.blobs.values()].map((b) => renderBar(b, width, t));
    if (lines.length > 0) this.out.stderr.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

function renderBar(b: BlobState, width: number, now: number): string {
  const id = shortDigest(b.digest);
  if (b.state === 'exists') return `${id}  already exists`;
  if (b.state === 'waiting') return `${id}  waiting`;
  const frac = b.size > 0 ? Math.min(1, b.bytes / b.size) : 1;
  const fill = Math.round(frac * width);
  const secs = Math.max(0.001, (now - b.started) / 1000);
  const rate = b.state === 'done' ? '' : `  ${humanSize(b.bytes / secs)}/s`;
  const bar = `[${'='.repeat(fill)}${fill < width ? '>' : ''}${' '.repeat(Math.max(0, width - fill - 1))}]`;
  return `${id}  ${bar} ${humanSize(b.bytes)}/${humanSize(b.size)}${rate}${b.state === 'done' ? '  done' : ''}`;
}
