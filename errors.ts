/**
 * The library's errors, and the one place where they are made.
 *
 * Contention is never an error: a try that finds a lock busy returns `false`.
 * Everything else that goes wrong in the OS becomes a {@linkcode LockError}
 * made by {@linkcode osError}; bad arguments are `TypeError`/`RangeError`
 * made by {@linkcode badArgument}.
 *
 * @module
 */

/** Details attached to a {@linkcode LockError}. */
export interface LockErrorOptions extends ErrorOptions {
  /** The lock file the error is about, absolute, when there is one. */
  path?: string;
  /** The symbolic OS error (`"EACCES"`, `"ERROR_ACCESS_DENIED"`, …). */
  code?: string;
  /** The numeric OS error (`errno` on Unix, `GetLastError()` on Windows). */
  errno?: number;
}

/**
 * A lock could not be taken or released for a reason other than contention:
 * an OS error on the lock file, a release of a lock that is not held, or an
 * acquisition that could only deadlock the calling thread.
 *
 * @example Telling a misuse apart from other errors
 * ```ts
 * import { Lock, LockError } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * assert.throws(() => lock.release(), LockError);
 * ```
 */
export class LockError extends Error {
  /** The lock file the error is about, when there is one. */
  readonly path?: string;
  /** The symbolic OS error, when the OS reported one. */
  readonly code?: string;
  /** The numeric OS error, when the OS reported one. */
  readonly errno?: number;

  /**
   * Makes a lock error.
   *
   * @param message What went wrong, naming the lock or path.
   * @param options Path, OS error and cause.
   */
  constructor(message: string, options: LockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : options);
    this.name = "LockError";
    if (options.path !== undefined) this.path = options.path;
    if (options.code !== undefined) this.code = options.code;
    if (options.errno !== undefined) this.errno = options.errno;
  }
}

/**
 * A lock was not acquired in time: thrown by the guard-returning methods
 * (`lock()`, `lockSync()`, `readLock()`, …) and `with…` callbacks where the
 * `acquire…` methods return `false`.
 *
 * @example
 * ```ts
 * import { Lock, LockTimeoutError } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * using _held = lock.lockSync();
 * assert.throws(() => lock.lockSync({ timeout: 1 }), LockTimeoutError);
 * ```
 */
export class LockTimeoutError extends LockError {
  /**
   * Makes a timeout error.
   *
   * @param message What was not acquired, and how long was waited.
   * @param options Path, when there is one.
   */
  constructor(message: string, options: LockErrorOptions = {}) {
    super(message, options);
    this.name = "LockTimeoutError";
  }
}

/**
 * Makes the error for a failed OS call.
 *
 * @param operation What was being done, e.g. `"open"` or `"lock"`.
 * @param path The lock file.
 * @param errno The OS error number.
 * @param code Its symbolic name, if known.
 * @param cause An underlying error (from a Deno API), if any.
 * @internal
 */
export function osError(
  operation: string,
  path: string,
  errno: number | undefined,
  code: string | undefined,
  cause?: unknown,
): LockError {
  const what = code ??
    (errno === undefined ? "unknown error" : `OS error ${errno}`);
  const detail = cause instanceof Error && cause.message ? `: ${cause.message}` : "";
  return new LockError(
    `cannot ${operation} lock file '${path}' (${what})${detail}`,
    {
      path,
      code,
      errno,
      cause,
    },
  );
}

/**
 * Makes the error for a lock used in a way its contract forbids.
 *
 * @param lock Names the lock, e.g. `"InterProcessLock('/tmp/x.lock')"`.
 * @param problem What was wrong.
 * @internal
 */
export function misuse(
  lock: string,
  problem: string,
  path?: string,
): LockError {
  return new LockError(
    `${lock}: ${problem}`,
    path === undefined ? {} : { path },
  );
}

/**
 * Makes the error for an acquisition that did not finish in time.
 *
 * @internal
 */
export function timedOut(
  lock: string,
  timeout: number,
  path?: string,
): LockTimeoutError {
  const how = timeout === 0
    ? "it is held elsewhere (non-blocking)"
    : `not acquired within ${timeout} ms`;
  return new LockTimeoutError(
    `${lock}: ${how}`,
    path === undefined ? {} : { path },
  );
}

/**
 * Makes the error for a remote lock service (etcd): it did not answer
 * (`"UNAVAILABLE"`), refused the credentials (`"AUTH"`), or a held lock was
 * lost (`"LEASE_EXPIRED"`, `"KEY_DELETED"`); `"CLOSED"` after the client was
 * closed, `"ETCD"` for any other error etcd reported.
 *
 * @internal
 */
export function remoteError(code: string, message: string, cause?: unknown): LockError {
  return new LockError(message, cause === undefined ? { code } : { code, cause });
}

/**
 * Makes a `TypeError` (wrong type) or `RangeError` (right type, bad value)
 * for an argument, naming the argument and quoting the value.
 *
 * @internal
 */
export function badArgument(
  kind: "type" | "range",
  name: string,
  value: unknown,
  expected: string,
): TypeError | RangeError {
  const message = `${name} must be ${expected}, got ${describe(value)}`;
  return kind === "type" ? new TypeError(message) : new RangeError(message);
}

function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(
      value.length > 200 ? value.slice(0, 200) + "…" : value,
    );
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "symbol" || typeof value === "function") {
    return String(value);
  }
  if (value === null || typeof value !== "object") return String(value);
  return Object.prototype.toString.call(value);
}
