import type { Command } from 'commander';
import { parsePlatform } from '../oci/platform.js';
import { transferImage } from '../transfer.js';
import { action } from './context.js';
import { nullStream, result } from './output.js';
import { ProgressRenderer } from './progress.js';

interface CopyFlags {
  platform?: string;
  quiet?: boolean;
}

export function registerCopy(program: Command): void {
  program
    .command('copy')
    .description('copy an image between registries, archives, OCI layouts and the store')
    .argument('<source>', 'docker://REF, docker-archive:FILE[:REF], oci-archive:FILE[:REF], oci:DIR[:REF], store:REF or a bare REF (the store)')
    .argument('<destination>', 'same forms as the source')
    .option('--platform <os/arch[/variant]>', 'platform to choose where the source is a multi-platform index (default: this host)')
    .option('-q, --quiet', 'no progress on stderr')
    .option('--json', 'print a JSON object describing the copied image (progress as JSON lines on stderr)')
    .addHelpText('after', '\nExamples:\n  s2n-oci copy alpine:latest docker://localhost:5000/alpine:latest\n  s2n-oci copy docker://quay.io/x/y:1 oci-archive:y.tar\n')
    .action(
      action(async (ctx, src: string, dst: string, flags: CopyFlags) => {
        // Bars on a terminal, nothing otherwise, NDJSON with --json.
        const progress = new ProgressRenderer(flags.quiet ? { ...ctx.out, json: false, stderr: nullStream } : ctx.out, { verb: 'copying', plain: false });
        const r = await transferImage(src, dst, {
          store: () => ctx.store(),
          onEvent: progress.onEvent,
          ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
        });
        progress.finish();
        if (ctx.out.json) {
          result(ctx.out, JSON.stringify({ source: r.source, destination: r.destination, names: r.names, digest: r.manifestDesc.digest, mediaType: r.manifestDesc.mediaType }));
          return;
        }
        result(ctx.out, `Copied ${r.source} to ${r.destination} ${r.manifestDesc.digest}`);
      }),
    );
}
