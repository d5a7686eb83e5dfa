import type { Command } from 'commander';
import { S2nError } from '../errors.js';
import { findImage } from '../images.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { action } from './context.js';
import { info, result } from './output.js';
import { collectGarbage, removeRootfsCaches } from './prune.js';

const hexId = /^(sha256:)?[a-f0-9]{12,64}$/;

export function registerRmi(program: Command): void {
  program
    .command('rmi')
    .description('remove images from the store (their blobs go unless another image shares them)')
    .argument('<image...>', 'names or ids')
    .option('-f, --force', 'remove every name of an image given by id')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (ctx, images: string[], flags: { force?: boolean }) => {
        const store = await ctx.store();
        const untagged: string[] = [];
        const removedDigests: string[] = [];
        for (const input of images) {
          const img = await findImage(store, input);
          // By name: drop that name only, as docker does. By id: drop all names, but only with -f when there are several.
          let names = img.names;
          if (!hexId.test(input)) {
            names = [formatReference(parseReference(input))].filter((n) => img.names.includes(n));
            if (names.length === 0) names = img.names;
          } else if (names.length > 1 && !flags.force) {
            throw new S2nError('EUSAGE', `remove image ${input}: it has ${names.length} names (${names.join(', ')})`, {
              hint: 'remove them by name, or use -f to remove all of them',
              context: { reference: input, names },
            });
          }
          removedDigests.push(img.manifestDesc.digest);
          for (const n of names) {
            await store.untag(n);
            untagged.push(n);
            info(ctx.out, `Untagged: ${n}`);
          }
        }
        // Unpacked rootfs caches go with the last name of their manifest.
        const left = new Set<string>((await store.list()).map((e) => e.descriptor.digest));
        const removedRootfs = await removeRootfsCaches(store, ctx.out, [...new Set(removedDigests)].filter((d) => !left.has(d)));
        // Free the blobs right away unless a pull is running; then `prune` frees them later.
        const gc = await collectGarbage(store, ctx.out, { timeoutMs: 0 });
        if (ctx.out.json) result(ctx.out, JSON.stringify({ untagged, removedBlobs: gc?.removedBlobs ?? [], freedBytes: gc?.freedBytes ?? 0, removedRootfs }));
        else if (gc) for (const d of gc.removedBlobs) result(ctx.out, `Deleted: ${d}`);
      }),
    );
}
