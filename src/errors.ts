/**
 * One error type for everything mwi reports on purpose. `code` is a stable, documented string
 * (see docs/errors.md); `message` is lowercase and safe to show; `detail` is for logs and audit
 * only and never crosses the wire.
 */
export const ERROR_CODES = {
  BAD_CONFIG: 'a configuration file, flag or resource is invalid',
  BAD_REQUEST: 'a request is malformed',
  NOT_FOUND: 'the named resource does not exist',
  ALREADY_EXISTS: 'a resource with that name already exists',
  COMPARE_FAILED: 'a conditional write lost a race',
  ACCESS_DENIED: 'the caller is not allowed to do this',
  JOIN_DENIED: 'the Auth Service refused a join',
  RENEW_DENIED: 'the Auth Service refused a renewal',
  LOCKED: 'the bot or bot instance is locked',
  CA_PIN_MISMATCH: 'the Auth Service did not present a CA matching the configured pin',
  UNREACHABLE: 'the Auth Service could not be reached',
  RATE_LIMITED: 'too many requests from this source',
  STORAGE: 'the storage backend failed',
  INTERNAL: 'an unexpected server error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** HTTP status each public code maps to on the wire. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_CONFIG: 400,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  COMPARE_FAILED: 409,
  ACCESS_DENIED: 403,
  JOIN_DENIED: 403,
  RENEW_DENIED: 403,
  LOCKED: 403,
  CA_PIN_MISMATCH: 502,
  UNREACHABLE: 503,
  RATE_LIMITED: 429,
  STORAGE: 500,
  INTERNAL: 500,
};

export interface MwiErrorOptions {
  /** Internal detail for logs and the audit log; never sent to a client. */
  detail?: string;
  /** The config field or flag at fault, for BAD_CONFIG. */
  field?: string;
  /** RATE_LIMITED: how long the server asked the caller to wait (its Retry-After). */
  retryAfterMs?: number;
  cause?: unknown;
}

export class MwiError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: MwiErrorOptions = {}) {
    super(options.field ? `${options.field}: ${message}` : message, { cause: options.cause });
    this.name = 'MwiError';
    this.code = code;
    this.detail = options.detail;
    this.field = options.field;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** True when `err` is an MwiError, optionally with the given code. */
export function isMwiError(err: unknown, code?: ErrorCode): err is MwiError {
  return err instanceof MwiError && (code === undefined || err.code === code);
}

/** What the log and the audit log record of a failure: its internal detail, else its message. */
export function failureReason(err: unknown): string {
  return isMwiError(err) ? (err.detail ?? err.message) : String(err);
}

/** Exit code for a CLI: 2 for user errors, 1 for runtime failures. */
export function exitCodeFor(err: unknown): number {
  return isMwiError(err, 'BAD_CONFIG') ? 2 : 1;
}
