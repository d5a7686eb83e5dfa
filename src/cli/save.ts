import type { Command } from 'commander';
import { S2nError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { saveImages } from '../save.js';
import { ARCHIVE_FORMATS, type ArchiveFormat } from '../sinks/archive.js';
import { action } from './context.js';
import { info, result } from './output.js';

interface SaveFlags {
  output?: string;
  format: string;
  platform?: string;
}

export function registerSave(program: Command): void {
  program
    .command('save')
    .description('save images from the store to a docker-archive or oci-archive tar')
    .argument('<image...>', 'images to save (names or ids)')
    .option('-o, --output <file>', 'archive file to write; - or none for stdout (not a terminal)')
    .option('--format <format>', 'docker-archive (docker load, podman load) or oci-archive', 'docker-archive')
    .option('--platform <os/arch[/variant]>', 'platform to choose where a stored image is a multi-platform index (default: this host)')
    .option('--json', 'print a JSON object describing the archive')
    .action(
      action(async (ctx, images: string[], flags: SaveFlags) => {
        if (!(ARCHIVE_FORMATS as readonly string[]).includes(flags.format)) {
          throw new S2nError('EUSAGE', `save: unknown format ${flags.format}`, { hint: `use one of: ${ARCHIVE_FORMATS.join(', ')}` });
        }
        // Like docker save: no -o (or -o -) writes the archive to stdout, which then carries nothing else.
        const toStdout = flags.output === undefined || flags.output === '-';
        if (toStdout && ctx.out.stdout.isTTY === true) {
          throw new S2nError('EUSAGE', 'save: cowardly refusing to write the archive to a terminal', {
            hint: 'use -o FILE, or redirect stdout: s2n-oci save IMAGE > image.tar',
          });
        }
        if (toStdout && ctx.out.json) {
          throw new S2nError('EUSAGE', 'save: --json needs -o FILE', { hint: 'stdout carries the archive; give the file with -o FILE' });
        }
        const store = await ctx.store();
        const r = await saveImages(store, images, toStdout ? '-' : (flags.output as string), {
          format: flags.format as ArchiveFormat,
          ...(flags.platform ? { platform: parsePlatform(flags.platform) } : {}),
          ...(toStdout ? { stream: ctx.out.stdout } : {}),
        });
        if (ctx.out.json) {
          result(ctx.out, JSON.stringify(r));
          return;
        }
        for (const i of r.images) {
          const line = `Saved image: ${i.name} ${i.digest}`;
          if (toStdout) info(ctx.out, line);
          else result(ctx.out, line);
        }
      }),
    );
}
