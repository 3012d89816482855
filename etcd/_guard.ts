// The guard and callback argument shared by EtcdLock and EtcdReaderWriterLock.

import { misuse } from "../errors.ts";
import type { Hold } from "./_hold.ts";

/**
 * A held etcd lock, released by `release()` or at the end of an
 * `await using` block, whichever comes first.
 */
export interface EtcdGuard extends AsyncDisposable {
  /**
   * The hold's fencing token (its key's create revision): strictly greater
   * than every earlier holder's. Pass it to what the lock guards.
   */
  readonly fencingToken: bigint;
  /** Aborts (reason: a `LockError`) as soon as the hold can no longer be trusted. */
  readonly signal: AbortSignal;
  /**
   * Releases the lock now (resolves at once when the hold was lost).
   *
   * @returns When the lock's key is deleted.
   * @throws {LockError} when this guard was already released.
   */
  release(): Promise<void>;
}

/** What a `with…` callback receives. */
export interface EtcdHeld {
  /** The hold's fencing token, as {@linkcode EtcdGuard.fencingToken}. */
  readonly fencingToken: bigint;
  /** The lost-lock signal, as {@linkcode EtcdGuard.signal}. */
  readonly signal: AbortSignal;
}

class Guard implements EtcdGuard {
  readonly #hold: Hold;
  readonly #release: (hold: Hold) => Promise<void>;
  readonly #label: string;
  #released = false;

  constructor(hold: Hold, release: (hold: Hold) => Promise<void>, label: string) {
    this.#hold = hold;
    this.#release = release;
    this.#label = label;
  }

  get fencingToken(): bigint {
    return this.#hold.token;
  }

  get signal(): AbortSignal {
    return this.#hold.signal;
  }

  release(): Promise<void> {
    if (this.#released) return Promise.reject(misuse(this.#label, "guard released twice"));
    this.#released = true;
    return this.#release(this.#hold);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#released ? Promise.resolve() : this.release();
  }
}

/** Wraps a hold as a guard; `release` releases it through its lock object. */
export function makeEtcdGuard(
  hold: Hold,
  release: (hold: Hold) => Promise<void>,
  label: string,
): EtcdGuard {
  return new Guard(hold, release, label);
}

/**
 * Runs `fn` holding `guard`'s lock and releases it however `fn` ends; an
 * error of `fn` wins over one of the release.
 */
export async function runHeld<T>(
  guard: EtcdGuard,
  fn: (held: EtcdHeld) => T | Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await fn({ fencingToken: guard.fencingToken, signal: guard.signal });
  } catch (error) {
    await guard.release().catch(() => {});
    throw error;
  }
  await guard.release();
  return result;
}
