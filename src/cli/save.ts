import type { Command } from 'commander';
import { S2nError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { saveImages } from '../save.js';
import { ARCHIVE_FORMATS, type ArchiveFormat } from '../sinks/archive.js';
import { action } from './context.js';
import { result } from './output.js';

interface SaveFlags {
  output: string;
  format: string;
  platform?: string;
}

export function registerSave(program: Command): void {
  program
    .command('save')
    .description('save images from the store to a docker-archive or oci-archive tar')
    .argument('<image...>', 'images to save (names or ids)')
    .requiredOption('-o, --output <file>', 'archive file to write')
    .option('--format <format>', 'docker-archive (docker load, podman load) or oci-archive', 'docker-archive')
    .option('--platform <os/arch[/variant]>', 'platform to choose where a stored image is a multi-platform index (default: this host)')
    .option('--json', 'print a JSON object describing the archive')
    .action(
      action(async (ctx, images: string[], flags: SaveFlags) => {
        if (!(ARCHIVE_FORMATS as readonly string[]).includes(flags.format)) {
          throw new S2nError('EUSAGE', `save: unknown format ${flags.format}`, { hint: `use one of: ${ARCHIVE_FORMATS.join(', ')}` });
        }
        const store = await ctx.store();
        const r = await saveImages(store, images, flags.output, {
          format: flags.format as ArchiveFormat,
          ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
        });
        if (ctx.out.json) {
          result(ctx.out, JSON.stringify(r));
          return;
        }
        for (const i of r.images) result(ctx.out, `Saved image: ${i.name} ${i.digest}`);
      }),
    );
}
