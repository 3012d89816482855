// Acquire options: their checks, their defaults, and the polling loops that
// honour them where the OS offers no cancellable wait.

import { badArgument } from "../errors.ts";

/**
 * How to wait for a lock. Every time is in milliseconds.
 *
 * With neither `timeout` nor `signal`, a blocking acquisition waits in the
 * kernel (or on the shared-memory word) and is handed the lock as soon as it
 * is free. With either, process locks poll: first after `delay`, then after
 * `delay` more each time, never more than `maxDelay` apart.
 */
export interface AcquireOptions {
  /** `false`: make one attempt and return at once. Default `true`. */
  blocking?: boolean;
  /** Give up after this many milliseconds (`0`: one attempt). Default: wait forever. */
  timeout?: number;
  /** Milliseconds before the first poll, and the increment between polls. Default 1. */
  delay?: number;
  /** The longest wait between two polls, in milliseconds. Default 10. */
  maxDelay?: number;
  /** Abort the wait: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Acquire options after checking, with defaults filled in. */
export interface Waiting {
  readonly blocking: boolean;
  /** Milliseconds; `Infinity` waits forever. `0` when not blocking. */
  readonly timeout: number;
  readonly delay: number;
  readonly maxDelay: number;
  readonly signal: AbortSignal | undefined;
}

/** Default first poll delay and increment (fasteners: 10 ms). */
export const DEFAULT_DELAY = 1;
/** Default longest poll interval (fasteners: 100 ms). */
export const DEFAULT_MAX_DELAY = 10;

/** The options of a plain `acquire()`: shared, so the fast path allocates nothing. */
export const WAIT_FOREVER: Waiting = Object.freeze({
  blocking: true,
  timeout: Infinity,
  delay: DEFAULT_DELAY,
  maxDelay: DEFAULT_MAX_DELAY,
  signal: undefined,
});

/**
 * Checks acquire options and fills in defaults.
 *
 * @throws {TypeError} when `options` or one of its fields has the wrong type.
 * @throws {RangeError} when a time is negative or NaN.
 */
export function parseOptions(options: AcquireOptions | undefined): Waiting {
  if (options === undefined) return WAIT_FOREVER;
  if (options === null || typeof options !== "object") {
    throw badArgument("type", "options", options, "an object or undefined");
  }
  const { blocking = true, timeout = Infinity, delay = DEFAULT_DELAY, signal } = options;
  const maxDelay = options.maxDelay ?? Math.max(DEFAULT_MAX_DELAY, delay);
  if (typeof blocking !== "boolean") {
    throw badArgument("type", "options.blocking", blocking, "a boolean");
  }
  checkTime("options.timeout", timeout, true);
  checkTime("options.delay", delay, false);
  checkTime("options.maxDelay", maxDelay, false);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw badArgument("type", "options.signal", signal, "an AbortSignal");
  }
  if (
    blocking && timeout === Infinity && signal === undefined &&
    options.delay === undefined && options.maxDelay === undefined
  ) {
    return WAIT_FOREVER;
  }
  return { blocking, timeout: blocking ? timeout : 0, delay, maxDelay, signal };
}

function checkTime(name: string, value: unknown, infiniteOk: boolean): void {
  if (typeof value !== "number") {
    throw badArgument("type", name, value, "a number of milliseconds");
  }
  if (Number.isNaN(value) || value < 0 || (!infiniteOk && value === Infinity)) {
    const expected = infiniteOk
      ? "a non-negative number of milliseconds or Infinity"
      : "a finite non-negative number of milliseconds";
    throw badArgument("range", name, value, expected);
  }
}

/** True when a wait may go on in the kernel, uncancellable, until the lock is free. */
export function waitsForever(w: Waiting): boolean {
  return w.timeout === Infinity && w.signal === undefined;
}

/** The wait before poll number `n` (from 1): `delay * n`, at most `maxDelay`. */
function backoff(w: Waiting, n: number): number {
  return Math.min(w.delay * n, w.maxDelay);
}

/**
 * Calls `attempt` until it returns `true`, sleeping between calls with
 * backoff, until the timeout. Makes a last attempt at the deadline. Rejects
 * with `signal.reason` as soon as the signal aborts; nothing stays pending.
 */
export async function pollAsync(
  attempt: () => boolean,
  w: Waiting,
): Promise<boolean> {
  w.signal?.throwIfAborted();
  const deadline = performance.now() + w.timeout;
  for (let n = 1;; n++) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0 || !w.blocking) return false;
    await sleep(Math.min(backoff(w, n), left), w.signal);
  }
}

/** The blocking twin of {@linkcode pollAsync}: sleeps with `Atomics.wait`. */
export function pollSync(attempt: () => boolean, w: Waiting): boolean {
  w.signal?.throwIfAborted();
  const deadline = performance.now() + w.timeout;
  for (let n = 1;; n++) {
    if (attempt()) return true;
    const left = deadline - performance.now();
    if (left <= 0 || !w.blocking) return false;
    sleepSync(Math.min(backoff(w, n), left));
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the calling thread for `ms` milliseconds. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** The longest delay `setTimeout` takes (2^31 - 1 ms); Deno turns a longer one into 1 ms. */
export const MAX_TIMER = 0x7fffffff;

/**
 * Resolves after `ms` milliseconds (at most about 24.8 days: callers poll
 * again); rejects with `signal.reason` on abort, clearing its timer.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  ms = Math.min(ms, MAX_TIMER);
  if (signal === undefined) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
