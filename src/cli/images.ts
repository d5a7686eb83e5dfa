import type { Command } from 'commander';
import { readImage, splitName } from '../images.js';
import { action } from './context.js';
import { humanSize, result, shortDigest, table } from './output.js';

export function registerImages(program: Command): void {
  program
    .command('images')
    .alias('ls')
    .description('list images in the store')
    .option('--json', 'print a JSON array')
    .option('-q, --quiet', 'print only image ids')
    .action(
      action(async (ctx, flags: { quiet?: boolean }) => {
        const store = await ctx.store();
        const rows = [];
        for (const entry of await store.list()) {
          const img = await readImage(store, entry.descriptor, [entry.name]);
          const { repository, tag } = splitName(entry.name);
          rows.push({
            name: entry.name,
            repository,
            tag,
            digest: img.manifestDesc.digest,
            id: img.manifest.config.digest,
            created: img.config.created ?? null,
            size: img.size,
            platform: [img.config.os, img.config.architecture, img.config.variant].filter(Boolean).join('/'),
          });
        }
        if (ctx.out.json) return result(ctx.out, JSON.stringify(rows, null, 2));
        if (flags.quiet) return result(ctx.out, [...new Set(rows.map((r) => shortDigest(r.id)))].join('\n') || '');
        const lines = [['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'PLATFORM', 'SIZE']];
        for (const r of rows) {
          lines.push([r.repository, r.tag, shortDigest(r.digest), shortDigest(r.id), ago(r.created), r.platform, humanSize(r.size)]);
        }
        result(ctx.out, table(lines));
      }),
    );
}

function ago(created: string | null): string {
  if (!created) return '<unknown>';
  const t = Date.parse(created);
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, (Date.now() - t) / 1000);
  const units: Array<[number, string]> = [[31536000, 'year'], [2592000, 'month'], [604800, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [secs, unit] of units) {
    const n = Math.floor(s / secs);
    if (n >= 1) return `${n} ${unit}${n > 1 ? 's' : ''} ago`;
  }
  return 'just now';
}
