/**
 * Typed errors. Every failure the user can see is an S2nError with a stable
 * `code`, a "verb noun: what happened" message, a hint saying what to do,
 * and context (reference, digest, path...) for --debug and --json output.
 */
export type ErrorCode =
  | 'EUSAGE' // bad command-line usage
  | 'EREFERENCE' // malformed image reference
  | 'EPLATFORM' // no manifest for the requested platform
  | 'EMANIFEST' // manifest/index/config invalid or of an unsupported type
  | 'ESCHEMA1' // Docker schema1 manifest (refused)
  | 'EDIGEST' // content does not match its digest
  | 'ESIZE' // content does not match its declared size
  | 'ELIMIT' // content larger than the limit we accept
  | 'ENOTFOUND' // manifest, tag, blob or repository unknown
  | 'EUNAUTHORIZED' // 401: credentials missing or wrong
  | 'EDENIED' // 403: authenticated but not allowed
  | 'ETOOMANY' // 429 after all retries
  | 'EREGISTRY' // other registry HTTP error
  | 'ENETWORK' // connection refused/reset/timeout, DNS
  | 'ETLS' // certificate or TLS handshake problem
  | 'EPROXY' // proxy refused or failed
  | 'ECREDENTIALS' // credential file or helper failure
  | 'ESTORE' // store corrupt or unusable
  | 'ELOCKED' // lock could not be taken in time
  | 'EIMAGE' // image not in the store
  | 'EARCHIVE' // image archive (docker save, oci-archive, OCI layout) malformed, truncated or of an unknown format
  | 'EUNSAFEPATH' // archive entry or link that would reach outside its root (`..`, absolute path, escaping symlink)
  | 'EINTERNAL';

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured facts: reference, digest, expected/actual, path, url, status. */
  context?: Record<string, unknown>;
}

export class S2nError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'S2nError';
    this.code = code;
    this.hint = opts.hint;
    this.context = opts.context ?? {};
  }

  /** A copy with a "verb noun: " prefix, keeping code, hint and context. */
  withPrefix(prefix: string, extra: Record<string, unknown> = {}): S2nError {
    const e = new S2nError(this.code, `${prefix}: ${this.message}`, {
      hint: this.hint,
      cause: this.cause,
      context: { ...this.context, ...extra },
    });
    e.stack = this.stack;
    return e;
  }
}

export function isS2nError(e: unknown): e is S2nError {
  return e instanceof S2nError;
}

/** The `code` of a Node system error (ECONNRESET, ENOENT...), if any. */
export function sysCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const c = (e as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}
