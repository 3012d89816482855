/**
 * Guards: what the `lock…()` methods return, for `using` and `await using`.
 *
 * @module
 */

import { misuse } from "../errors.ts";

/**
 * A held lock, released by `release()` or at the end of a `using` /
 * `await using` block, whichever comes first. Disposing a guard that was
 * already released does nothing; calling `release()` twice throws.
 *
 * @example
 * ```ts
 * import { Lock } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * {
 *   using _guard = lock.lockSync();
 *   assert.equal(lock.locked, true);
 * }
 * assert.equal(lock.locked, false);
 * ```
 */
export interface Guard extends Disposable, AsyncDisposable {
  /**
   * Releases the lock now.
   *
   * @throws {LockError} when this guard was already released.
   */
  release(): void;
}

class LockGuard implements Guard {
  #release: (() => void) | undefined;
  readonly #name: string;

  constructor(release: () => void, name: string) {
    this.#release = release;
    this.#name = name;
  }

  release(): void {
    const release = this.#release;
    if (release === undefined) throw misuse(this.#name, "guard released twice");
    this.#release = undefined;
    release();
  }

  [Symbol.dispose](): void {
    if (this.#release !== undefined) this.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    try {
      this[Symbol.dispose]();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/**
 * Wraps a release function as a guard.
 *
 * @param release Releases the held lock; called at most once.
 * @param name Names the lock in error messages.
 * @internal
 */
export function makeGuard(release: () => void, name: string): Guard {
  return new LockGuard(release, name);
}

/**
 * A function wrapper that is also a TC39 method decorator: `wrap(fn)` and
 * `@wrap method() {}` both give a function that runs the original inside
 * `run`, with the same `this` and arguments, and returns a Promise.
 */
export type LockedWrapper = <This, Args extends unknown[], R>(
  fn: (this: This, ...args: Args) => R,
  context?: ClassMethodDecoratorContext<This>,
) => (this: This, ...args: Args) => Promise<Awaited<R>>;

/**
 * Makes a {@linkcode LockedWrapper} from a `with…` function.
 *
 * @internal
 */
export function lockedWrapper(
  run: <T>(fn: () => T | Promise<T>) => Promise<T>,
): LockedWrapper {
  return function <This, Args extends unknown[], R>(
    fn: (this: This, ...args: Args) => R,
  ) {
    if (typeof fn !== "function") {
      throw new TypeError(
        `a locked wrapper needs a function, got ${String(fn)}`,
      );
    }
    return function (this: This, ...args: Args): Promise<Awaited<R>> {
      return run(() => fn.apply(this, args)) as Promise<Awaited<R>>;
    };
  };
}
