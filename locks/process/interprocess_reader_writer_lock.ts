/**
 * {@linkcode InterProcessReaderWriterLock}: shared and exclusive locks on a
 * file, between processes, Workers, lock objects and async tasks.
 *
 * @module
 */

import { misuse, timedOut } from "../../errors.ts";
import { type Guard, type LockedWrapper, lockedWrapper, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions, type Waiting } from "../_options.ts";
import { type Handle, LockFile, lockFilePath, withLockFile } from "./_file_lock.ts";

/**
 * A reader-writer lock on a file: many readers, or one writer. The
 * counterpart of Python fasteners' `InterProcessReaderWriterLock`, in
 * milliseconds.
 *
 * Contract:
 * - Starts unlocked. Each acquisition locks through a file descriptor of its
 *   own, so readers and writers exclude each other between processes,
 *   Workers, lock objects and async tasks alike.
 * - Not reentrant and not upgradable, except that nested `with…` callbacks
 *   in one async chain run at once when what is held covers them (a read
 *   inside a write); a write inside a read is refused with
 *   {@linkcode LockError}. A blocking sync acquisition with no timeout that
 *   this thread's own holders block throws instead of freezing the thread.
 * - Preference is the kernel's: on Linux a new reader joins readers even
 *   while a writer waits, so a steady stream of readers can starve a writer
 *   (use a timeout). Within one isolate, async readers queue in arrival
 *   order, and so do async writers; when a writer leaves, every reader
 *   queued in the isolate gets in at once.
 * - Release from the thread (Worker) that acquired.
 * - The kernel frees every lock of a process that dies, even by SIGKILL.
 * - The file is made when missing, never truncated, written or deleted.
 *
 * Needs `--allow-ffi` (and `--allow-write` to create the file). On Linux
 * it interoperates with Python fasteners' `InterProcessReaderWriterLock`.
 *
 * @example
 * ```ts
 * import { InterProcessReaderWriterLock } from "@fasteners/fasteners";
 *
 * const rw = new InterProcessReaderWriterLock(await Deno.makeTempFile());
 * await rw.withReadLock(() => {
 *   // Many readers, in any process, may be here at once.
 * });
 * await rw.withWriteLock(() => {
 *   // One writer alone.
 * });
 * ```
 */
export class InterProcessReaderWriterLock {
  /** The lock file, absolute. */
  readonly path: string;
  readonly #file: LockFile;
  readonly #name: string;
  #writer: Handle | undefined;
  /** Read acquisitions held by this object, each with its turn number. */
  readonly #readers: Map<number, Handle> = new Map();
  /** The turns of those held by a guard or a `withReadLock()` callback. */
  readonly #guarded: Set<number> = new Set();
  #turn = 0;

  /**
   * Makes a reader-writer lock on `path`. Nothing is opened or created until
   * the first acquisition.
   *
   * @param path The lock file, as a path (relative to the working folder) or `file:` URL.
   * @throws {TypeError} for an empty path, a NUL byte, or another URL scheme.
   */
  constructor(path: string | URL) {
    this.path = lockFilePath(path);
    this.#name = `InterProcessReaderWriterLock('${this.path}')`;
    this.#file = LockFile.for(this.path, this);
  }

  /** Whether this object holds the write lock. */
  get writeAcquired(): boolean {
    return this.#writer !== undefined;
  }

  /** How many read locks this object holds. */
  get readAcquired(): number {
    return this.#readers.size;
  }

  /**
   * Acquires a read (shared) lock without blocking the event loop.
   *
   * @param options Blocking, timeout, poll delays (milliseconds), abort signal.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) when the file cannot be opened or locked.
   */
  async acquireReadLock(options?: AcquireOptions): Promise<boolean> {
    return await this.#read(parseOptions(options)) > 0;
  }

  /** @returns the acquisition's turn number, or 0 when not acquired. */
  async #read(w: Waiting): Promise<number> {
    const handle = await this.#file.lock(false, w);
    return handle === undefined ? 0 : this.#holdRead(handle);
  }

  #readSync(w: Waiting): number {
    const handle = this.#file.lockSync(false, w, this.#name);
    return handle === undefined ? 0 : this.#holdRead(handle);
  }

  /**
   * Acquires the write (exclusive) lock without blocking the event loop.
   *
   * @param options Blocking, timeout, poll delays (milliseconds), abort signal.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) when the file cannot be opened or locked.
   */
  async acquireWriteLock(options?: AcquireOptions): Promise<boolean> {
    const handle = await this.#file.lock(true, parseOptions(options));
    return handle !== undefined && this.#holdWrite(handle);
  }

  /**
   * Acquires a read lock, blocking the calling thread while it waits.
   *
   * @param options Blocking, timeout, poll delays (milliseconds).
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} when the file cannot be opened or locked, or when
   *   waiting forever could only deadlock this thread.
   */
  acquireReadLockSync(options?: AcquireOptions): boolean {
    return this.#readSync(parseOptions(options)) > 0;
  }

  /**
   * Acquires the write lock, blocking the calling thread while it waits.
   *
   * @param options Blocking, timeout, poll delays (milliseconds).
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} when the file cannot be opened or locked, or when
   *   waiting forever could only deadlock this thread.
   */
  acquireWriteLockSync(options?: AcquireOptions): boolean {
    const handle = this.#file.lockSync(true, parseOptions(options), this.#name);
    return handle !== undefined && this.#holdWrite(handle);
  }

  #holdRead(handle: Handle): number {
    this.#readers.set(++this.#turn, handle);
    return this.#turn;
  }

  #holdWrite(handle: Handle): true {
    this.#writer = handle;
    this.#turn++;
    return true;
  }

  /**
   * Releases the latest read lock this object took with `acquireReadLock()`
   * or `acquireReadLockSync()`. Read locks held by guards and `withReadLock()`
   * callbacks are theirs to release.
   *
   * @throws {LockError} when this object holds no such read lock.
   */
  releaseReadLock(): void {
    let latest: number | undefined;
    for (const turn of this.#readers.keys()) if (!this.#guarded.has(turn)) latest = turn;
    if (latest === undefined) {
      const problem = this.#readers.size === 0
        ? "releaseReadLock() without a read lock held"
        : "releaseReadLock(): the read locks held belong to guards or withReadLock() callbacks; " +
          "release them there";
      throw misuse(this.#name, problem, this.path);
    }
    this.#releaseRead(latest);
  }

  #releaseRead(turn: number): void {
    const handle = this.#readers.get(turn);
    if (handle === undefined) {
      throw misuse(this.#name, "guard released after its read lock was released", this.path);
    }
    this.#readers.delete(turn);
    this.#guarded.delete(turn);
    this.#file.unlock(handle, false);
  }

  /**
   * Releases the write lock.
   *
   * @throws {LockError} when this object does not hold it.
   */
  releaseWriteLock(): void {
    const handle = this.#writer;
    if (handle === undefined) {
      throw misuse(this.#name, "releaseWriteLock() without the write lock held", this.path);
    }
    this.#writer = undefined;
    this.#file.unlock(handle, true);
  }

  #readGuard(turn: number): Guard {
    this.#guarded.add(turn);
    return makeGuard(() => this.#releaseRead(turn), this.#name);
  }

  #writeGuard(): Guard {
    const turn = this.#turn;
    return makeGuard(() => {
      if (this.#turn !== turn || this.#writer === undefined) {
        throw misuse(this.#name, "guard released after its write lock was released", this.path);
      }
      this.releaseWriteLock();
    }, this.#name);
  }

  /**
   * Acquires a read lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireReadLock}.
   * @returns A guard that releases the read lock.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async readLock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    const turn = await this.#read(w);
    if (turn === 0) throw timedOut(this.#name, w.timeout, this.path);
    return this.#readGuard(turn);
  }

  /**
   * Acquires the write lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireWriteLock}.
   * @returns A guard that releases the write lock.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async writeLock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    if (!(await this.acquireWriteLock(w))) throw timedOut(this.#name, w.timeout, this.path);
    return this.#writeGuard();
  }

  /**
   * Acquires a read lock, blocking, and returns a guard for `using`.
   *
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireReadLockSync}.
   * @returns A guard that releases the read lock.
   * @throws {LockTimeoutError} when not acquired.
   */
  readLockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    const turn = this.#readSync(w);
    if (turn === 0) throw timedOut(this.#name, w.timeout, this.path);
    return this.#readGuard(turn);
  }

  /**
   * Acquires the write lock, blocking, and returns a guard for `using`.
   *
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireWriteLockSync}.
   * @returns A guard that releases the write lock.
   * @throws {LockTimeoutError} when not acquired.
   */
  writeLockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    if (!this.acquireWriteLockSync(w)) throw timedOut(this.#name, w.timeout, this.path);
    return this.#writeGuard();
  }

  /**
   * Runs `fn` holding a read lock, released however `fn` ends.
   *
   * @param fn The reading section.
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireReadLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  withReadLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    return withLockFile(this.#file, false, () => this.readLock(options), fn, this.#name);
  }

  /**
   * Runs `fn` holding the write lock, released however `fn` ends.
   *
   * @param fn The writing section.
   * @param options As for {@linkcode InterProcessReaderWriterLock.acquireWriteLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   * @throws {LockError} (as a rejection) inside a `withReadLock` of the same file.
   */
  withWriteLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    return withLockFile(this.#file, true, () => this.writeLock(options), fn, this.#name);
  }
}

/**
 * Wraps a function (or decorates a method) so that each call runs holding
 * a read lock on `path`. Fasteners' `@interprocess_read_locked(path)`.
 *
 * @example
 * ```ts
 * import { interprocessReadLocked } from "@fasteners/fasteners";
 *
 * const path = await Deno.makeTempFile();
 * const read = interprocessReadLocked(path)(() => "read under a shared lock");
 * console.log(await read());
 * ```
 *
 * @param path The lock file.
 * @param options Acquire options for every call.
 * @returns A wrapper, usable as a TC39 method decorator.
 */
export function interprocessReadLocked(
  path: string | URL,
  options?: AcquireOptions,
): LockedWrapper {
  const lock = new InterProcessReaderWriterLock(path);
  return lockedWrapper((fn) => lock.withReadLock(fn, options));
}

/**
 * Wraps a function (or decorates a method) so that each call runs holding
 * the write lock on `path`. Fasteners' `@interprocess_write_locked(path)`.
 *
 * @example
 * ```ts
 * import { interprocessWriteLocked } from "@fasteners/fasteners";
 *
 * const path = await Deno.makeTempFile();
 * class Config {
 *   @interprocessWriteLocked(path)
 *   async save(): Promise<string> {
 *     return "saved under the exclusive lock";
 *   }
 * }
 * console.log(await new Config().save());
 * ```
 *
 * @param path The lock file.
 * @param options Acquire options for every call.
 * @returns A wrapper, usable as a TC39 method decorator.
 */
export function interprocessWriteLocked(
  path: string | URL,
  options?: AcquireOptions,
): LockedWrapper {
  const lock = new InterProcessReaderWriterLock(path);
  return lockedWrapper((fn) => lock.withWriteLock(fn, options));
}
