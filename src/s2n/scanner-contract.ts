/**
 * The contract between s2n-oci and the scanner image: where the image looks
 * for plugins and writes its report, how it is invoked, what its exit codes
 * mean. The demo image (bundles/demo-scanner, built by
 * scripts/build-demo-images.ts) is built from these constants, and `scan`
 * relies on them, so both sides change together or not at all.
 */

/** Names the demo archives store their images under (`localhost/`: built here, never pulled). */
export const DEMO_IMAGE_REPOSITORY = 'localhost/s2n-demo';
export const DEMO_IMAGE_PROD = `${DEMO_IMAGE_REPOSITORY}:prod`;
export const DEMO_IMAGE_DEV = `${DEMO_IMAGE_REPOSITORY}:dev`;

/** The demo scanner's version (s2n_sdk.__version__, the report's `version`, the image label). */
export const DEMO_SCANNER_VERSION = '0.1.0';

export type ScannerVariant = 'prod' | 'dev';
export const SCANNER_VARIANTS: readonly ScannerVariant[] = ['prod', 'dev'];

/** File names of the archives the build script writes into its output dir. */
export function demoArchiveName(variant: ScannerVariant): string {
  return `s2n-demo-${variant}.oci.tar`;
}

/** Where the plugin folder is mounted (read-only) and the variable telling the scanner so. */
export const PLUGIN_DIR = '/plugins';
export const PLUGIN_DIR_ENV = 'S2N_PLUGIN_DIR';
/** Where the results folder is mounted (writable) and the variable telling the scanner so. */
export const RESULTS_DIR = '/results';
export const RESULTS_DIR_ENV = 'S2N_RESULTS_DIR';
/** The report the scanner always writes into the results folder. */
export const REPORT_FILE = 'report.json';

/** The scanner's process, as the image config declares it. */
export const SCANNER_ENTRYPOINT: readonly string[] = ['python3', '/app/runner.py'];
export const SCANNER_DEFAULT_CMD: readonly string[] = ['--help'];
export const SCANNER_WORKDIR = '/app';
export const SCANNER_USER = 's2n';
export const SCANNER_UID = 1000;
export const SCANNER_GID = 1000;
export const SCANNER_HOME = '/home/s2n';
export const SCANNER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Environment of the image config, in this order. */
export function scannerEnv(variant: ScannerVariant): string[] {
  return [
    `PATH=${SCANNER_PATH}`,
    'PYTHONDONTWRITEBYTECODE=1',
    'PYTHONUNBUFFERED=1',
    `HOME=${SCANNER_HOME}`,
    `${PLUGIN_DIR_ENV}=${PLUGIN_DIR}`,
    `${RESULTS_DIR_ENV}=${RESULTS_DIR}`,
    `S2N_LOG_LEVEL=${variant === 'dev' ? 'debug' : 'info'}`,
  ];
}

/** Variables the scanner honours for reaching internal targets (Python's urllib / ssl). */
export const PROXY_ENV: readonly string[] = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];
/** A CA bundle file path; the first one set wins. */
export const CA_BUNDLE_ENV: readonly string[] = ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE'];

/** Label saying which variant an image is. */
export const VARIANT_LABEL = 'io.s2n.variant';

/**
 * Scanner exit codes. Findings do not change the status (a scan that ran is
 * a success, as with most scanners run from CI: read the report to gate).
 */
export const ScannerExit = {
  ok: 0,
  /** An unexpected scanner failure (a bug, an unwritable results dir). */
  error: 1,
  usage: 2,
  /** The target did not answer at all (connection refused, DNS, TLS handshake). */
  unreachable: 3,
} as const;

export type Severity = 'low' | 'medium' | 'high';

export interface ScanFinding {
  plugin: string;
  severity: Severity;
  title: string;
  url: string;
  evidence: string;
}

/** `$S2N_RESULTS_DIR/report.json`. stdout carries one summary line; logs go to stderr. */
export interface ScanReport {
  scanner: 's2n-demo';
  version: string;
  target: string;
  /** ISO 8601 UTC. */
  started: string;
  finished: string;
  /** Plugin names that ran, in order. */
  plugins: string[];
  findings: ScanFinding[];
  /** Failures that did not stop the scan: `{plugin, message}` (plugin is "" for the scanner itself). */
  errors: Array<{ plugin: string; message: string }>;
}

/** Built-in plugins of the demo scanner. */
export const BUILTIN_PLUGINS: readonly string[] = ['security_headers', 'directory_listing', 'reflected_param'];
