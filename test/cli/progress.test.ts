import { describe, expect, it } from 'vitest';
import { ProgressRenderer } from '../../src/cli/progress.js';
import type { Output } from '../../src/cli/output.js';

function capture(tty: boolean, json = false): { out: Output; text: () => string } {
  let buf = '';
  const stream = { write: (s: string) => ((buf += s), true), isTTY: tty, columns: 100 } as unknown as Output['stderr'];
  const sink = { write: () => true } as unknown as Output['stdout'];
  return { out: { json, debug: false, stdout: sink, stderr: stream }, text: () => buf };
}

const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:aaaaaaaaaaaa1111' as const, size: 2_000_000 };
const other = { ...layer, digest: 'sha256:bbbbbbbbbbbb2222' as const, size: 1000 };

function feed(r: ProgressRenderer): void {
  r.onEvent({ type: 'resolved', source: 'docker://x/y:1', root: layer });
  r.onEvent({ type: 'manifest', manifest: layer, layers: [layer, other] });
  r.onEvent({ type: 'blob-done', kind: 'layer', digest: other.digest, size: other.size, existed: true });
  r.onEvent({ type: 'blob-start', kind: 'layer', digest: layer.digest, size: layer.size });
  r.onEvent({ type: 'blob-progress', kind: 'layer', digest: layer.digest, bytes: 1_000_000, size: layer.size });
  r.onEvent({ type: 'blob-done', kind: 'layer', digest: layer.digest, size: layer.size, existed: false });
  r.finish();
}

describe('ProgressRenderer', () => {
  it('draws a bar per layer on a terminal and leaves the final state', () => {
    const c = capture(true);
    let t = 0;
    feed(new ProgressRenderer(c.out, { now: () => (t += 200) }));
    const text = c.text();
    expect(text).toContain('\x1b['); // redraws in place
    expect(text).toMatch(/aaaaaaaaaaaa {2}\[=+\] 2\.00 MB\/2\.00 MB {2}done/);
    expect(text).toContain('bbbbbbbbbbbb  already exists');
    expect(text).toMatch(/1\.00 MB\/2\.00 MB {2}[\d.]+ [kM]B\/s/); // rate while running
  });

  it('prints a few plain lines when not on a terminal', () => {
    const c = capture(false);
    feed(new ProgressRenderer(c.out));
    const lines = c.text().trim().split('\n');
    expect(c.text()).not.toContain('\x1b[');
    expect(lines).toEqual([
      'pulling docker://x/y:1 (sha256:aaaaaaaaaaaa1111)',
      'manifest sha256:aaaaaaaaaaaa1111: 2 layers, 2.00 MB',
      'already have layer bbbbbbbbbbbb (1.00 kB)',
      'pulled layer aaaaaaaaaaaa (2.00 MB)',
    ]);
  });

  it('writes one JSON object per line with --json', () => {
    const c = capture(true, true);
    feed(new ProgressRenderer(c.out));
    const events = c.text().trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events.map((e) => e.type)).toEqual(['resolved', 'manifest', 'blob-done', 'blob-start', 'blob-progress', 'blob-done']);
  });

  it('names the operation with the verb option', () => {
    const c = capture(false);
    feed(new ProgressRenderer(c.out, { verb: 'loading' }));
    expect(c.text().trim().split('\n')).toEqual([
      'loading docker://x/y:1 (sha256:aaaaaaaaaaaa1111)',
      'manifest sha256:aaaaaaaaaaaa1111: 2 layers, 2.00 MB',
      'already have layer bbbbbbbbbbbb (1.00 kB)',
      'loaded layer aaaaaaaaaaaa (2.00 MB)',
    ]);
    const t = capture(true);
    feed(new ProgressRenderer(t.out, { verb: 'copying', plain: false }));
    expect(t.text()).toContain('copying docker://x/y:1 (sha256:aaaaaaaaaaaa1111)\n');
    expect(t.text()).toMatch(/aaaaaaaaaaaa {2}\[=+\] 2\.00 MB\/2\.00 MB {2}done/);
    expect(t.text()).not.toContain('pull');
  });

  it('with plain: false prints nothing when not on a terminal, but still NDJSON with --json', () => {
    const c = capture(false);
    feed(new ProgressRenderer(c.out, { verb: 'loading', plain: false }));
    expect(c.text()).toBe('');
    const j = capture(false, true);
    feed(new ProgressRenderer(j.out, { verb: 'loading', plain: false }));
    expect(j.text().trim().split('\n')).toHaveLength(6);
  });
});
