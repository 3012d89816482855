/**
 * {@linkcode InterProcessLock}: an exclusive lock on a file, between
 * processes, Workers, lock objects and async tasks.
 *
 * @module
 */

import { misuse, timedOut } from "../../errors.ts";
import { type Guard, type LockedWrapper, lockedWrapper, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions } from "../_options.ts";
import { type Handle, LockFile, lockFilePath, withLockFile } from "./_file_lock.ts";

/**
 * An exclusive lock on a file, with the API of `threading.Lock`: the
 * counterpart of Python fasteners' `InterProcessLock`, in milliseconds.
 *
 * Contract:
 * - Starts unlocked. Exclusion holds between processes, between Workers,
 *   between lock objects on the same path, and between concurrent async
 *   tasks using one object (the second waits), because every acquisition
 *   locks through a file descriptor of its own (Linux OFD `fcntl` locks,
 *   macOS `flock`, Windows `LockFileEx` on byte 0).
 * - Not reentrant, except for nested {@linkcode InterProcessLock.withLock}
 *   calls in one async chain. A blocking `acquireSync()` with no timeout
 *   while this thread already holds the file throws {@linkcode LockError}
 *   instead of freezing the thread.
 * - Release it from the thread (Worker) that acquired it.
 * - When the holding process dies, even by SIGKILL, the kernel frees the
 *   lock and the next waiter gets it at once.
 * - The file is made (with its folders) when missing, never truncated or
 *   written, and never deleted: deleting a lock file in use silently breaks
 *   locking, since a new file at the path is a different lock.
 * - Advisory: it excludes only programs that lock the same file.
 *
 * Needs `--allow-ffi`, and `--allow-write` when the file or its folders
 * must be created. On Linux it excludes (and is excluded by) Python
 * fasteners' `InterProcessLock` on the same file.
 *
 * @example
 * ```ts
 * import { InterProcessLock } from "@fasteners/fasteners";
 *
 * const lock = new InterProcessLock(await Deno.makeTempFile());
 * await lock.withLock(() => {
 *   // Only one process at a time runs this.
 * });
 * if (lock.acquireSync({ timeout: 100 })) {
 *   try {
 *     // ...
 *   } finally {
 *     lock.release();
 *   }
 * }
 * ```
 */
export class InterProcessLock {
  /** The lock file, absolute. */
  readonly path: string;
  readonly #file: LockFile;
  readonly #name: string;
  #held: Handle | undefined;
  /** Counts acquisitions, so that a stale guard cannot release a later one. */
  #turn = 0;

  /**
   * Makes a lock on `path`. Nothing is opened or created until the first
   * acquisition.
   *
   * @param path The lock file, as a path (relative to the working folder) or `file:` URL.
   * @throws {TypeError} for an empty path, a NUL byte, or another URL scheme.
   */
  constructor(path: string | URL) {
    this.path = lockFilePath(path);
    this.#name = `InterProcessLock('${this.path}')`;
    this.#file = LockFile.for(this.path, this);
  }

  /** Whether this object holds the lock. */
  get acquired(): boolean {
    return this.#held !== undefined;
  }

  /**
   * Acquires the lock, waiting as the options say, without blocking the
   * event loop. Waiters of this isolate queue in arrival order, with one
   * kernel wait per lock file behind which the lock passes from one to the
   * next at kernel speed; however many wait, they use at most a few threads
   * and leave Deno's async file operations free. Timed and abortable waiters
   * queue too; they are served by that kernel wait when a waiter with
   * neither is queued, else by polling.
   *
   * @param options Blocking, timeout, poll delays (milliseconds), abort signal.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) when the file cannot be opened or locked.
   * @throws {RangeError} (as a rejection) for a negative or NaN time.
   */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const handle = await this.#file.lock(true, parseOptions(options));
    return handle !== undefined && this.#hold(handle);
  }

  /**
   * Acquires the lock, blocking the calling thread while it waits.
   * An already aborted `signal` throws its reason; it cannot interrupt the wait.
   *
   * @param options Blocking, timeout, poll delays (milliseconds).
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} when the file cannot be opened or locked, or when
   *   waiting forever could only deadlock this thread.
   * @throws {RangeError} for a negative or NaN time.
   */
  acquireSync(options?: AcquireOptions): boolean {
    const handle = this.#file.lockSync(true, parseOptions(options), this.#name);
    return handle !== undefined && this.#hold(handle);
  }

  #hold(handle: Handle): true {
    this.#held = handle;
    this.#turn++;
    return true;
  }

  /**
   * Releases the lock.
   *
   * @throws {LockError} when this object does not hold it.
   */
  release(): void {
    const handle = this.#held;
    if (handle === undefined) {
      throw misuse(this.#name, "release() of a lock that is not held", this.path);
    }
    this.#held = undefined;
    this.#file.unlock(handle, true);
  }

  #guard(): Guard {
    const turn = this.#turn;
    return makeGuard(() => {
      if (this.#turn !== turn || this.#held === undefined) {
        throw misuse(this.#name, "guard released after the lock was released", this.path);
      }
      this.release();
    }, this.#name);
  }

  /**
   * Acquires the lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode InterProcessLock.acquire}.
   * @returns A guard that releases the lock.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async lock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    if (!(await this.acquire(w))) throw timedOut(this.#name, w.timeout, this.path);
    return this.#guard();
  }

  /**
   * Acquires the lock, blocking, and returns a guard for `using`.
   *
   * @param options As for {@linkcode InterProcessLock.acquireSync}.
   * @returns A guard that releases the lock.
   * @throws {LockTimeoutError} when not acquired.
   */
  lockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    if (!this.acquireSync(w)) throw timedOut(this.#name, w.timeout, this.path);
    return this.#guard();
  }

  /**
   * Runs `fn` holding the lock and releases it however `fn` ends. Nested
   * calls on the same file in the same async chain run at once.
   *
   * @param fn The critical section.
   * @param options As for {@linkcode InterProcessLock.acquire}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  withLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    return withLockFile(this.#file, true, () => this.lock(options), fn, this.#name);
  }
}

/**
 * Wraps a function (or decorates a method) so that each call runs holding
 * an {@linkcode InterProcessLock} on `path`; the wrapped function returns a
 * Promise (so a decorated method is declared `async`). Fasteners'
 * `@interprocess_locked(path)`.
 *
 * @example
 * ```ts
 * import { interprocessLocked } from "@fasteners/fasteners";
 *
 * const path = await Deno.makeTempFile();
 * const save = interprocessLocked(path)((n: number) => n * 2);
 * console.log(await save(21)); // 42
 *
 * class Store {
 *   @interprocessLocked(path)
 *   async write(): Promise<string> {
 *     return "written under the lock";
 *   }
 * }
 * console.log(await new Store().write());
 * ```
 *
 * @param path The lock file.
 * @param options Acquire options for every call.
 * @returns A wrapper, usable as a TC39 method decorator.
 */
export function interprocessLocked(path: string | URL, options?: AcquireOptions): LockedWrapper {
  const lock = new InterProcessLock(path);
  return lockedWrapper((fn) => lock.withLock(fn, options));
}
