import type { Command } from 'commander';
import { findImage } from '../images.js';
import type { UnpackProgress } from '../rootfs/build.js';
import { writeBundle } from '../rootfs/bundle.js';
import { detectIdPlan } from '../userns/ids.js';
import { action } from './context.js';
import { info, result, warn } from './output.js';

export function registerUnpack(program: Command): void {
  program
    .command('unpack')
    .alias('bundle')
    .description('unpack an image into an OCI bundle directory (rootfs + config.json), like umoci unpack')
    .argument('<image>', 'name or id of an image in the store')
    .argument('<dir>', 'new or empty directory for the bundle')
    .option('-q, --quiet', 'no progress lines on stderr')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (ctx, image: string, dir: string, flags: { quiet?: boolean }) => {
        const store = await ctx.store();
        const img = await findImage(store, image);
        const { plan, warning } = await detectIdPlan();
        if (warning) warn(ctx.out, warning);
        const r = await writeBundle(store, img, dir, {
          plan,
          onWarning: (w) => warn(ctx.out, w.message),
          ...(flags.quiet ? {} : { onProgress: (p: UnpackProgress) => info(ctx.out, `applying layer ${p.layer}/${p.layers}`) }),
        });
        if (ctx.out.json) {
          result(ctx.out, JSON.stringify({ bundle: r.dir, rootfs: r.rootfs, config: r.config, manifest: img.manifestDesc.digest, mode: plan.mode, uidMappings: plan.uidMappings, gidMappings: plan.gidMappings }));
        } else {
          if (!flags.quiet) info(ctx.out, `unpacked ${img.names[0] ?? img.manifestDesc.digest} (ownership: ${plan.mode})`);
          result(ctx.out, r.dir);
        }
      }),
    );
}
