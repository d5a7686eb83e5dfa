import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import { parsePlatform } from '../oci/platform.js';
import { pullImage } from '../pull.js';
import { action } from './context.js';
import { info, nullStream, result } from './output.js';
import { ProgressRenderer } from './progress.js';

interface PullFlags {
  platform?: string;
  quiet?: boolean;
  concurrency?: string;
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('pull an image from a registry into the store')
    .argument('<reference>', 'image reference, e.g. alpine, ghcr.io/org/app:1.2, name@sha256:…')
    .option('--platform <os/arch[/variant]>', 'platform to choose from a multi-platform image (default: this host)')
    .option('-q, --quiet', 'print only the digest')
    .option('--concurrency <n>', 'layers downloaded at once', '3')
    .option('--json', 'progress as JSON lines on stderr, result as JSON on stdout')
    .action(
      action(async (ctx, reference: string, flags: PullFlags) => {
        const store = await ctx.store();
        const progress = new ProgressRenderer(flags.quiet ? { ...ctx.out, json: false, stderr: nullStream } : ctx.out);
        const abort = new AbortController();
        // Ctrl-C or SIGTERM: stop the downloads, let them clean up (ingest files, lease), then exit 128+signal as shells do.
        let interrupted: NodeJS.Signals | undefined;
        const onSignal = (sig: NodeJS.Signals): void => {
          interrupted ??= sig;
          abort.abort(new Error(`interrupted by ${sig}`));
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          const r = await pullImage(store, reference, {
            ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
            concurrency: Number(flags.concurrency ?? 3) || 3,
            onEvent: progress.onEvent,
            signal: abort.signal,
          });
          progress.finish();
          if (ctx.out.json) {
            result(ctx.out, JSON.stringify({ name: r.name, digest: r.manifestDesc.digest, mediaType: r.manifestDesc.mediaType, config: r.configDesc.digest, index: r.index?.digest, platform: { os: r.config.os, architecture: r.config.architecture, ...(r.config.variant ? { variant: r.config.variant } : {}) } }));
          } else {
            if (!flags.quiet) info(ctx.out, `pulled ${r.name}`);
            result(ctx.out, r.manifestDesc.digest);
          }
        } catch (e) {
          if (interrupted === undefined) throw e;
          progress.finish();
          if (ctx.out.json) ctx.out.stderr.write(`${JSON.stringify({ type: 'interrupted', signal: interrupted })}\n`);
          else ctx.out.stderr.write(`pull ${reference}: interrupted by ${interrupted}\n`);
          return 128 + (osConstants.signals[interrupted] ?? 0);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
