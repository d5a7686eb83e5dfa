/**
 * The registry client's push side against the real docker-registry: HEAD,
 * monolithic upload, cross-repository mount, manifest PUT; with no auth,
 * Basic and token auth (which must ask for `pull,push` scope).
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S2nError } from '../../../src/errors.js';
import type { Descriptor } from '../../../src/oci/types.js';
import { smallImage, type TestImage } from '../../helpers/images.js';
import { TestRegistryClient } from '../../helpers/push.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../../helpers/registry.js';
import { testClient } from './fake.js';

function descs(img: TestImage): Array<{ desc: Descriptor; data: Buffer }> {
  const out: Array<{ desc: Descriptor; data: Buffer }> = [];
  for (const l of img.layers) out.push({ desc: { mediaType: l.mediaType, digest: l.digest, size: l.blob.length }, data: l.blob });
  const cfg = img.blobs.get(img.configDigest) as Buffer;
  out.push({ desc: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.configDigest, size: cfg.length }, data: cfg });
  return out;
}

for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
  describe(`push (${auth} auth)`, () => {
    let reg: TestRegistry;
    beforeAll(async () => {
      reg = await startRegistry({ auth });
    }, 30_000);
    afterAll(async () => reg?.stop());

    it('uploads blobs and a manifest that a reader gets back byte for byte, then finds them present', async () => {
      const img = await smallImage({ marker: `push-${auth}` });
      const c = testClient(reg.host, { credentials: async () => reg.credentials });
      try {
        for (const { desc, data } of descs(img)) {
          expect(await c.hasBlob('push/app', desc)).toBe(false);
          await c.pushBlob('push/app', desc, Readable.from([data]));
          expect(await c.hasBlob('push/app', desc)).toBe(true);
        }
        const digest = await c.putManifest('push/app', 'v1', img.manifestBytes, img.mediaType);
        expect(digest).toBe(img.manifestDigest);
        const m = await c.getManifest('push/app', 'v1', { maxBytes: 1 << 20 });
        expect(m.descriptor.digest).toBe(img.manifestDigest);
        expect(m.body.equals(img.manifestBytes)).toBe(true);

        // Mount into another repository of the same registry: no upload.
        const [first] = descs(img);
        expect(await c.mountBlob('push/other', first!.desc, 'push/app')).toBe(true);
        expect(await c.hasBlob('push/other', first!.desc)).toBe(true);

        const reader = new TestRegistryClient(reg, reg.credentials ? { auth: reg.credentials } : {});
        expect((await reader.getManifest('push/app', img.manifestDigest)).status).toBe(200);
      } finally {
        await c.close();
      }
    });

    it('refuses a blob whose bytes do not match the digest', async () => {
      const img = await smallImage({ marker: `bad-${auth}` });
      const [first] = descs(img);
      const c = testClient(reg.host, { credentials: async () => reg.credentials });
      try {
        const wrong = Buffer.alloc(first!.desc.size, 1);
        const e = await c.pushBlob('push/bad', first!.desc, Readable.from([wrong])).then(
          () => undefined,
          (x: unknown) => x as S2nError,
        );
        expect(e?.code).toBe('EREGISTRY');
        expect(await c.hasBlob('push/bad', first!.desc)).toBe(false);
      } finally {
        await c.close();
      }
    });
  });
}

describe('push without credentials', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic' });
  }, 30_000);
  afterAll(async () => reg?.stop());

  it('is EUNAUTHORIZED with a login hint', async () => {
    const img = await smallImage();
    const c = testClient(reg.host);
    try {
      const e = await c.putManifest('x/y', 'v1', img.manifestBytes, img.mediaType).then(
        () => undefined,
        (x: unknown) => x as S2nError,
      );
      expect(e?.code).toBe('EUNAUTHORIZED');
      expect(e?.hint).toMatch(/login/);
    } finally {
      await c.close();
    }
  });
});
