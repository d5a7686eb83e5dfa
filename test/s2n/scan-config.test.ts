/** Which scanner image `scan` runs: flag, environment, config file, demo default; and the config file's checks. */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isS2nError } from '../../src/errors.js';
import { chooseScannerImage, parseScanConfig, readScanConfig, scanConfigPath, type ScanConfig } from '../../src/s2n/scan-config.js';
import { IS_ROOT, tempDir } from '../helpers/cli.js';

const PIN = `sha256:${'a'.repeat(64)}`;

function usageError(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isS2nError(e) && e.code).toBe('EUSAGE');
    expect((e as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected an EUSAGE error');
}

describe('chooseScannerImage', () => {
  const config: ScanConfig = { image: 'registry.example/s2n/runtime:{variant}', digest: PIN };

  it('takes --image over S2N_OCI_IMAGE over the config file over the demo image', () => {
    const env = { S2N_OCI_IMAGE: 'env.example/scanner:1' };
    expect(chooseScannerImage({ flag: 'flag.example/scanner:2', env, config, variant: 'prod' })).toEqual({ image: 'flag.example/scanner:2', isDemo: false });
    expect(chooseScannerImage({ env, config, variant: 'prod' })).toEqual({ image: 'env.example/scanner:1', isDemo: false });
    expect(chooseScannerImage({ env: {}, config, variant: 'prod' })).toEqual({ image: 'registry.example/s2n/runtime:prod', digest: PIN, isDemo: false });
    expect(chooseScannerImage({ env: {}, config: {}, variant: 'prod' })).toEqual({ image: 'localhost/s2n-demo:prod', isDemo: true });
  });

  it("puts the profile's variant into {variant} and the demo image's tag", () => {
    expect(chooseScannerImage({ env: {}, config: {}, variant: 'dev' }).image).toBe('localhost/s2n-demo:dev');
    expect(chooseScannerImage({ env: {}, config, variant: 'dev' }).image).toBe('registry.example/s2n/runtime:dev');
    expect(chooseScannerImage({ flag: 'x.example/a:{variant}', env: {}, config: {}, variant: 'dev' }).image).toBe('x.example/a:dev');
  });

  it('applies the pinned digest only to the image the config file names', () => {
    expect(chooseScannerImage({ flag: 'localhost/other:1', env: {}, config, variant: 'prod' }).digest).toBeUndefined();
    expect(chooseScannerImage({ env: { S2N_OCI_IMAGE: 'localhost/other:1' }, config, variant: 'prod' }).digest).toBeUndefined();
    // A digest alone pins the demo image.
    expect(chooseScannerImage({ env: {}, config: { digest: PIN }, variant: 'prod' })).toEqual({ image: 'localhost/s2n-demo:prod', digest: PIN, isDemo: true });
  });

  it('treats an empty S2N_OCI_IMAGE as unset', () => {
    expect(chooseScannerImage({ env: { S2N_OCI_IMAGE: '' }, config, variant: 'prod' })).toEqual({ image: 'registry.example/s2n/runtime:prod', digest: PIN, isDemo: false });
  });
});

describe('parseScanConfig', () => {
  it('reads image, digest and profile', () => {
    expect(parseScanConfig(JSON.stringify({ image: 'a.example/b:c', digest: PIN, profile: 'dev' }), 'scan.json')).toEqual({ image: 'a.example/b:c', digest: PIN, profile: 'dev' });
    expect(parseScanConfig('{}', 'scan.json')).toEqual({});
  });

  it('refuses bad JSON, non-objects, unknown keys, non-strings and malformed digests, naming the file', () => {
    usageError(() => parseScanConfig('{"image": ', '/c/scan.json'), /^read scan config \/c\/scan\.json: not JSON/);
    usageError(() => parseScanConfig('[]', '/c/scan.json'), /not a JSON object/);
    usageError(() => parseScanConfig('null', '/c/scan.json'), /not a JSON object/);
    usageError(() => parseScanConfig('{"imag": "x"}', '/c/scan.json'), /unknown key "imag"/);
    usageError(() => parseScanConfig('{"image": 3}', '/c/scan.json'), /"image" must be a non-empty string/);
    usageError(() => parseScanConfig('{"image": ""}', '/c/scan.json'), /"image" must be a non-empty string/);
    usageError(() => parseScanConfig('{"digest": "sha256:abc"}', '/c/scan.json'), /digest "sha256:abc" is not sha256:<64 hex>/);
    usageError(() => parseScanConfig(`{"digest": "${PIN.toUpperCase()}"}`, '/c/scan.json'), /is not sha256/);
  });
});

describe('readScanConfig', () => {
  it('reads $XDG_CONFIG_HOME/s2n-oci/scan.json, else ~/.config', () => {
    expect(scanConfigPath({ XDG_CONFIG_HOME: '/x/conf', HOME: '/h' })).toBe('/x/conf/s2n-oci/scan.json');
    expect(scanConfigPath({ HOME: '/h' })).toBe('/h/.config/s2n-oci/scan.json');
    // A relative XDG_CONFIG_HOME is invalid by the spec and ignored.
    expect(scanConfigPath({ XDG_CONFIG_HOME: 'rel', HOME: '/h' })).toBe('/h/.config/s2n-oci/scan.json');
  });

  it('is empty without a file, and parses one that is there', async () => {
    const d = tempDir();
    expect(await readScanConfig({ XDG_CONFIG_HOME: d })).toEqual({});
    mkdirSync(join(d, 's2n-oci'));
    writeFileSync(join(d, 's2n-oci', 'scan.json'), JSON.stringify({ image: 'localhost/s2n-demo:prod', digest: PIN }));
    expect(await readScanConfig({ XDG_CONFIG_HOME: d })).toEqual({ image: 'localhost/s2n-demo:prod', digest: PIN });
    writeFileSync(join(d, 's2n-oci', 'scan.json'), '{oops');
    await expect(readScanConfig({ XDG_CONFIG_HOME: d })).rejects.toThrow(/scan\.json: not JSON/);
  });

  it.skipIf(IS_ROOT)('reports an unreadable file instead of ignoring it', async () => {
    const d = tempDir();
    mkdirSync(join(d, 's2n-oci'));
    writeFileSync(join(d, 's2n-oci', 'scan.json'), '{}');
    chmodSync(join(d, 's2n-oci', 'scan.json'), 0o000);
    await expect(readScanConfig({ XDG_CONFIG_HOME: d })).rejects.toThrow(/read scan config .*EACCES|permission denied/i);
  });

  it('reports a config path that is a directory', async () => {
    const d = tempDir();
    mkdirSync(join(d, 's2n-oci', 'scan.json'), { recursive: true });
    await expect(readScanConfig({ XDG_CONFIG_HOME: d })).rejects.toThrow(/read scan config .*scan\.json/);
  });
});
