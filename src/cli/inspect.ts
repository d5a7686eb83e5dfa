import type { Command } from 'commander';
import { findImage } from '../images.js';
import { action } from './context.js';
import { result } from './output.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show an image: names, digests, platform, manifest and config (JSON)')
    .argument('<image...>', 'names or ids')
    .action(
      action(async (ctx, images: string[]) => {
        const store = await ctx.store();
        const out = [];
        for (const input of images) {
          const img = await findImage(store, input);
          out.push({
            Names: img.names,
            Digest: img.manifestDesc.digest,
            Id: img.manifest.config.digest,
            IndexDigest: img.indexDigest ?? null,
            MediaType: img.manifestDesc.mediaType,
            Platform: { os: img.config.os, architecture: img.config.architecture, ...(img.config.variant ? { variant: img.config.variant } : {}) },
            Created: img.config.created ?? null,
            Size: img.size,
            Layers: img.manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
            DiffIds: img.config.rootfs.diff_ids,
            Config: img.config.config ?? {},
            Manifest: img.manifest,
            ImageConfig: img.config,
          });
        }
        result(ctx.out, JSON.stringify(out, null, 2));
      }),
    );
}
