/**
 * fasteners' method decorators and `try_lock`, for TypeScript: `locked`,
 * `readLocked`, `writeLocked` are TC39 method decorators that also work as
 * plain function wrappers; `tryLock` is a `Disposable` for `using`.
 *
 * @module
 */

import { badArgument } from "../errors.ts";
import { type LockedWrapper, lockedWrapper } from "./guard.ts";
import type { AcquireOptions } from "./_options.ts";
import { InterProcessSemaphore } from "./process/interprocess_semaphore.ts";

/** Anything with a `withLock()` callback form: `Lock`, and the process locks. */
export interface WithLock {
  /** Runs `fn` holding the lock. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T>;
}

/** Anything with `withReadLock()`/`withWriteLock()`: `ReaderWriterLock`, and the process reader-writer lock. */
export interface WithReadWriteLock {
  /** Runs `fn` holding a read lock. */
  withReadLock<T>(fn: () => T | Promise<T>): Promise<T>;
  /** Runs `fn` holding the write lock. */
  withWriteLock<T>(fn: () => T | Promise<T>): Promise<T>;
}

/** Anything that can be tried without waiting and released: `Lock`, and the process locks. */
export interface TryLockable {
  /** Tries to acquire; with `{ blocking: false }` never waits. */
  acquireSync(options?: AcquireOptions): boolean;
  /** Releases what `acquireSync()` took. */
  release(): void;
}

/** The name of the property of `this` that holds the lock when none is given: fasteners' `_lock`. */
export const DEFAULT_LOCK_PROPERTY = "_lock";

/** A method that runs under a lock, as returned by the decorators. */
export type LockedMethod<This, Args extends unknown[], R> = (
  this: This,
  ...args: Args
) => Promise<Awaited<R>>;

function isContext(value: unknown): boolean {
  return value === undefined || (typeof value === "object" && value !== null && "kind" in value);
}

/**
 * Makes the wrapper for `source`: a lock (or array of locks, taken in order),
 * or the name of the property of `this` that holds it.
 */
function wrapperFor<L>(
  source: L | readonly L[] | string | symbol,
  run: <T>(lock: L, fn: () => T | Promise<T>) => Promise<T>,
  decorator: string,
  check: (lock: unknown) => lock is L,
): LockedWrapper {
  // A number is a valid property key, but the overloads take only string and
  // symbol keys: refuse it here, at decoration time, not at the first call.
  if (typeof source === "number") {
    throw badArgument(
      "type",
      `${decorator}() argument`,
      source,
      "a lock, an array of locks, or a string or symbol property key",
    );
  }
  if (typeof source === "string" || typeof source === "symbol") {
    const key = source;
    return function <This, Args extends unknown[], R>(fn: (this: This, ...args: Args) => R) {
      if (typeof fn !== "function") {
        throw badArgument("type", `${decorator} target`, fn, "a function");
      }
      return function (this: This, ...args: Args): Promise<Awaited<R>> {
        const lock = (this as Record<PropertyKey, unknown> | undefined)?.[key];
        if (!check(lock)) {
          return Promise.reject(
            badArgument("type", `this[${String(key)}] (for ${decorator})`, lock, "a lock"),
          );
        }
        return run(lock, () => fn.apply(this, args)) as Promise<Awaited<R>>;
      };
    };
  }
  const locks: readonly unknown[] = Array.isArray(source) ? source : [source];
  for (const [i, lock] of locks.entries()) {
    if (!check(lock)) throw badArgument("type", `${decorator} lock #${i}`, lock, "a lock");
  }
  if (locks.length === 0) throw badArgument("range", `${decorator} locks`, source, "not empty");
  const all = locks as readonly L[];
  const chain = <T>(fn: () => T | Promise<T>): Promise<T> => {
    let inner = fn;
    for (let i = all.length - 1; i > 0; i--) {
      const lock = all[i], next = inner;
      inner = () => run(lock, next);
    }
    return run(all[0], inner);
  };
  return lockedWrapper(chain);
}

const hasWithLock = (x: unknown): x is WithLock =>
  typeof (x as WithLock | null)?.withLock === "function";
const hasWithReadWrite = (x: unknown): x is WithReadWriteLock =>
  typeof (x as WithReadWriteLock | null)?.withReadLock === "function" &&
  typeof (x as WithReadWriteLock | null)?.withWriteLock === "function";

/**
 * Runs a method (or any function) while holding a lock, like fasteners'
 * `@locked`. Three forms:
 * - `@locked` (bare) uses the lock in `this._lock`, fasteners' default;
 * - `@locked("name")` uses the lock in `this.name` (a string or symbol key);
 * - `@locked(lock)` or `@locked([lockA, lockB])` uses those locks, taken in order.
 *
 * Each form is also a plain wrapper: `locked(lock)(fn)`. The wrapped function
 * returns a Promise, and a decorator cannot change a method's type: decorate
 * `async` methods (or methods that return a Promise). Inside it, the same async chain may take the lock again
 * (see `Lock.withLock`).
 *
 * @param fn The method to decorate (bare form).
 * @param context The decorator context, passed by the TC39 decorator machinery.
 * @returns The method, wrapped.
 * @throws {TypeError} when a given lock has no `withLock()` or the argument is a
 * number (at once), or when `this[name]` is not a lock (the wrapped function's
 * promise rejects).
 *
 * @example
 * ```ts
 * import { Lock, locked } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * class Account {
 *   _lock = new Lock();
 *   balance = 0;
 *   @locked
 *   async deposit(n: number) {
 *     this.balance += n;
 *     return this.balance;
 *   }
 *   @locked(lock)
 *   async audit() {
 *     return lock.locked;
 *   }
 * }
 * const account = new Account();
 * assert.equal(await account.deposit(5), 5);
 * assert.equal(await account.audit(), true);
 * const inc = locked(lock)((x: number) => x + 1); // plain wrapper
 * assert.equal(await inc(1), 2);
 * ```
 */
export function locked<This, Args extends unknown[], R>(
  fn: (this: This, ...args: Args) => R,
  context?: ClassMethodDecoratorContext<This>,
): LockedMethod<This, Args, R>;
/**
 * Runs a method (or any function) while holding the given lock(s), or the
 * lock in the named property of `this`.
 *
 * @param lock A lock, an array of locks taken in order, or the key of the property of `this` holding the lock.
 * @returns A decorator that is also a plain function wrapper.
 */
export function locked(lock: WithLock | readonly WithLock[] | string | symbol): LockedWrapper;
export function locked(
  source: unknown,
  context?: unknown,
): LockedWrapper | LockedMethod<unknown, unknown[], unknown> {
  const run = <T>(lock: WithLock, fn: () => T | Promise<T>) => lock.withLock(fn);
  if (typeof source === "function" && isContext(context)) {
    return wrapperFor(DEFAULT_LOCK_PROPERTY, run, "locked", hasWithLock)(
      source as (...args: unknown[]) => unknown,
    );
  }
  return wrapperFor(source as WithLock, run, "locked", hasWithLock);
}

function readWriteDecorator(write: boolean) {
  const name = write ? "writeLocked" : "readLocked";
  const run = <T>(lock: WithReadWriteLock, fn: () => T | Promise<T>) =>
    write ? lock.withWriteLock(fn) : lock.withReadLock(fn);
  return (source: unknown, context?: unknown) => {
    if (typeof source === "function" && isContext(context)) {
      return wrapperFor(DEFAULT_LOCK_PROPERTY, run, name, hasWithReadWrite)(
        source as (...args: unknown[]) => unknown,
      );
    }
    return wrapperFor(source as WithReadWriteLock, run, name, hasWithReadWrite);
  };
}

const readLockedImpl = readWriteDecorator(false);
const writeLockedImpl = readWriteDecorator(true);

/**
 * Runs a method (or any function) holding a read lock, like fasteners'
 * `@read_locked`. Forms as for {@linkcode locked}: bare (`this._lock`), a
 * property key, or a `ReaderWriterLock` instance (or several, taken in order).
 *
 * @param fn The method to decorate (bare form).
 * @param context The decorator context, passed by the TC39 decorator machinery.
 * @returns The method, wrapped; it returns a Promise.
 * @throws {TypeError} when a given lock has no `withReadLock()`/`withWriteLock()`
 * or the argument is a number (at once), or when `this[name]` is not one (the
 * promise rejects).
 *
 * @example
 * ```ts
 * import { ReaderWriterLock, readLocked, writeLocked } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * class Cache {
 *   _lock = new ReaderWriterLock();
 *   #data = new Map<string, number>();
 *   @readLocked
 *   async get(key: string) {
 *     return this.#data.get(key);
 *   }
 *   @writeLocked
 *   async set(key: string, value: number) {
 *     this.#data.set(key, value);
 *   }
 * }
 * const cache = new Cache();
 * await cache.set("a", 1);
 * assert.equal(await cache.get("a"), 1);
 * ```
 */
export function readLocked<This, Args extends unknown[], R>(
  fn: (this: This, ...args: Args) => R,
  context?: ClassMethodDecoratorContext<This>,
): LockedMethod<This, Args, R>;
/**
 * Runs a method (or any function) holding a read lock of the given
 * reader-writer lock(s), or of the one in the named property of `this`.
 *
 * @param lock A reader-writer lock, an array of them, or the key of the property of `this` holding one.
 * @returns A decorator that is also a plain function wrapper.
 */
export function readLocked(
  lock: WithReadWriteLock | readonly WithReadWriteLock[] | string | symbol,
): LockedWrapper;
export function readLocked(
  source: unknown,
  context?: unknown,
): LockedWrapper | LockedMethod<unknown, unknown[], unknown> {
  return readLockedImpl(source, context);
}

/**
 * Runs a method (or any function) holding the write lock, like fasteners'
 * `@write_locked`. Forms as for {@linkcode locked}: bare (`this._lock`), a
 * property key, or a `ReaderWriterLock` instance (or several, taken in order).
 *
 * @param fn The method to decorate (bare form).
 * @param context The decorator context, passed by the TC39 decorator machinery.
 * @returns The method, wrapped; it returns a Promise.
 * @throws {TypeError} when a given lock has no `withReadLock()`/`withWriteLock()`
 * or the argument is a number (at once), or when `this[name]` is not one (the
 * promise rejects).
 *
 * @example
 * ```ts
 * import { ReaderWriterLock, writeLocked } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const rw = new ReaderWriterLock();
 * const bump = writeLocked(rw)(() => rw.owner);
 * assert.equal(await bump(), "w");
 * ```
 */
export function writeLocked<This, Args extends unknown[], R>(
  fn: (this: This, ...args: Args) => R,
  context?: ClassMethodDecoratorContext<This>,
): LockedMethod<This, Args, R>;
/**
 * Runs a method (or any function) holding the write lock of the given
 * reader-writer lock(s), or of the one in the named property of `this`.
 *
 * @param lock A reader-writer lock, an array of them, or the key of the property of `this` holding one.
 * @returns A decorator that is also a plain function wrapper.
 */
export function writeLocked(
  lock: WithReadWriteLock | readonly WithReadWriteLock[] | string | symbol,
): LockedWrapper;
export function writeLocked(
  source: unknown,
  context?: unknown,
): LockedWrapper | LockedMethod<unknown, unknown[], unknown> {
  return writeLockedImpl(source, context);
}

/** What {@linkcode tryLock} returns: whether the lock was taken, released on disposal. */
export interface TryLock extends Disposable {
  /** Whether the lock was acquired (and so will be released on disposal). */
  readonly acquired: boolean;
}

/**
 * Tries to acquire `lock` once, without waiting, like fasteners' `try_lock`:
 * use it with `using`, and look at `.acquired`. If acquired, the lock is
 * released when the `using` block ends.
 *
 * @param lock A `Lock` (or any lock with `acquireSync()` and `release()`).
 * @returns A disposable whose `acquired` tells whether the lock was taken.
 * @throws {TypeError} when `lock` has no `acquireSync()`/`release()`.
 *
 * @example
 * ```ts
 * import { Lock, tryLock } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * {
 *   using first = tryLock(lock);
 *   using second = tryLock(lock);
 *   assert.equal(first.acquired, true);
 *   assert.equal(second.acquired, false);
 * }
 * assert.equal(lock.locked, false);
 * ```
 */
export function tryLock(lock: TryLockable): TryLock {
  if (
    typeof (lock as TryLockable | null)?.acquireSync !== "function" ||
    typeof lock.release !== "function"
  ) {
    throw badArgument("type", "lock", lock, "a lock with acquireSync() and release()");
  }
  let held = lock.acquireSync({ blocking: false });
  return {
    acquired: held,
    [Symbol.dispose]() {
      if (held) {
        held = false;
        lock.release();
      }
    },
  };
}

// interprocessSemaphoreLocked (issue 11, process half)

/**
 * Wraps a function (or decorates a method) so that each call runs holding a
 * slot of an {@linkcode InterProcessSemaphore} of `slots` slots on `path`: at
 * most `slots` calls run at once across every process using that file. The
 * wrapped function returns a Promise (so a decorated method is declared
 * `async`). `locked(semaphore)` does the same with a semaphore you made, and
 * `tryLock(semaphore)` tries for one slot.
 *
 * @example
 * ```ts
 * import { interprocessSemaphoreLocked } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * const fetchOne = interprocessSemaphoreLocked(path, 3)((n: number) => n * 2);
 * assert.deepEqual(await Promise.all([1, 2, 3, 4].map(fetchOne)), [2, 4, 6, 8]);
 *
 * class Crawler {
 *   @interprocessSemaphoreLocked(path, 3)
 *   async visit(url: string): Promise<string> {
 *     return `visited ${url}`; // at most 3 at once, in every process
 *   }
 * }
 * assert.equal(await new Crawler().visit("a"), "visited a");
 * ```
 *
 * @param path The semaphore file.
 * @param slots How many calls at once: an integer from 1 to 1024, the same for every user of `path`.
 * @param options Acquire options for every call.
 * @returns A wrapper, usable as a TC39 method decorator.
 * @throws {TypeError} for a bad path or a `slots` that is not a number.
 * @throws {RangeError} for a `slots` that is not an integer from 1 to 1024.
 */
export function interprocessSemaphoreLocked(
  path: string | URL,
  slots: number,
  options?: AcquireOptions,
): LockedWrapper {
  const semaphore = new InterProcessSemaphore(path, slots);
  return lockedWrapper((fn) => semaphore.withLock(fn, options));
}
// end interprocessSemaphoreLocked
