import type { Command } from 'commander';
import { loadArchive } from '../load.js';
import { parsePlatform } from '../oci/platform.js';
import { action } from './context.js';
import { nullStream, result } from './output.js';
import { ProgressRenderer } from './progress.js';

interface LoadFlags {
  input: string;
  tag?: string[];
  platform?: string;
  quiet?: boolean;
}

export function registerLoad(program: Command): void {
  program
    .command('load')
    .description('load images from a docker save or OCI archive, or an OCI layout directory, into the store')
    .requiredOption('-i, --input <file>', 'docker save / oci-archive tar (gzip or zstd too), OCI layout directory, or - for stdin')
    .argument('[image]', 'load only this image of the archive (one of its names)')
    .option('-t, --tag <reference>', 'store the loaded image under this name instead of the archive\'s (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--platform <os/arch[/variant]>', 'platform to choose where an archive entry is a multi-platform index (default: this host)')
    .option('-q, --quiet', 'no progress on stderr')
    .option('--json', 'print a JSON array of the loaded images (progress as JSON lines on stderr)')
    .action(
      action(async (ctx, image: string | undefined, flags: LoadFlags) => {
        const store = await ctx.store();
        // Bars on a terminal, nothing otherwise (as docker load), NDJSON with --json.
        const progress = new ProgressRenderer(flags.quiet ? { ...ctx.out, json: false, stderr: nullStream } : ctx.out, { verb: 'loading', plain: false });
        const r = await loadArchive(store, flags.input, {
          onEvent: progress.onEvent,
          ...(flags.tag ? { tags: flags.tag } : {}),
          ...(image !== undefined ? { image } : {}),
          ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
          stdin: process.stdin,
        });
        progress.finish();
        if (ctx.out.json) {
          result(ctx.out, JSON.stringify(r.images.map((i) => ({ name: i.name, names: i.names, digest: i.digest, mediaType: i.mediaType, config: i.config, ...(i.index ? { index: i.index } : {}) }))));
          return;
        }
        // docker's lines: one per name, the digest for an image without one.
        for (const i of r.images) {
          if (i.names.length === 0) result(ctx.out, `Loaded image ID: ${i.digest}`);
          for (const n of i.names) result(ctx.out, `Loaded image: ${n}`);
        }
      }),
    );
}
