/**
 * {@linkcode ReaderWriterLock}: fasteners' reader-writer lock, shared between
 * Workers through a SharedArrayBuffer.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { badArgument, misuse, timedOut } from "../../errors.ts";
import { type Guard, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions, type Waiting } from "../_options.ts";
import { RawRwLock } from "./_raw_rwlock.ts";

/**
 * One holder's view of the lock: the calling thread's sync calls, one
 * `with…` callback chain, or one guard / bare async acquisition.
 * Invariant: `write > 0` means this holder has the shared write hold;
 * `sharedRead` means it has one shared read hold; reads nested under its own
 * write hold are counted in `read` but hold nothing shared.
 */
class Holder {
  read = 0;
  write = 0;
  sharedRead = false;
  /** Write acquisitions of this holder now waiting. */
  pendingWrite = 0;
  /** Whether this is an async holder (counted for self-deadlock detection). */
  readonly async: boolean;
  constructor(async: boolean) {
    this.async = async;
  }
}

/** Set by `ReaderWriterLock.from()` for the constructor it calls. */
let attaching: SharedArrayBuffer | undefined;

/**
 * A reader-writer lock shared between Workers (and the main thread) through a
 * `SharedArrayBuffer`, with the semantics of fasteners' `ReaderWriterLock`.
 * Pure TypeScript on `Atomics`: no permission is needed.
 *
 * Contract:
 * - Initial state: `new ReaderWriterLock()` is free;
 *   `ReaderWriterLock.from(buffer)` attaches to an existing lock as it is.
 * - Many readers or one writer. Writer preference: once a writer waits, new
 *   readers wait behind it; waiting writers are served in arrival order (FIFO)
 *   across all Workers. Readers can starve under a steady stream of writers.
 * - Holders. The sync methods (`…Sync`) act for the calling thread: it is
 *   reentrant for reads and writes, a writer may also take read locks (and
 *   releasing the write lock while still reading downgrades to a read hold),
 *   and a reader asking for the write lock gets a {@linkcode LockError} at
 *   once (no upgrade). Each async acquisition is a holder of its own, so
 *   concurrent async tasks exclude each other as Workers do; inside the
 *   callback of `withReadLock()`/`withWriteLock()`, the same async chain is
 *   one holder, reentrant as a thread is (tracked with `AsyncLocalStorage`).
 * - No silent self-deadlock: a blocking sync acquire that only this thread's
 *   own async holders could let through, or that would wait behind this
 *   attachment's own queued async writers (FIFO and writer preference put
 *   them first, and they cannot run while the thread is blocked), throws a
 *   `LockError` instead of freezing the Worker.
 * - Only a holder releases its hold. `release…()` releases, in this order,
 *   the hold of the enclosing `with…` callback, the thread's sync hold, then
 *   one bare async acquisition of this attachment; guards release exactly
 *   what they took.
 * - Async waiters of one attachment queue in arrival order (readers and
 *   writers apart), and one watcher per queue waits on the shared memory
 *   for all of them: a release wakes at most two async waits per
 *   attachment, however many tasks wait. A writer leaving lets every queued
 *   reader of an attachment in at once (one compare-and-swap), and hands
 *   the lock straight to the next writer when that writer is queued in the
 *   same attachment.
 * - Reads scale across cores: once the lock has seen a run of reads with no
 *   writer, each of the first 64 attachments takes read locks in a slot of
 *   its own (a read writes no memory another reader writes); the next writer
 *   revokes that bias and waits for those readers as for any other, so
 *   writer preference and FIFO order are kept. The bias comes back after 512
 *   reads through the shared word by one attachment; a write with the bias
 *   off costs what it did before.
 * - Sync waits block the thread with `Atomics.wait`; async waits use
 *   `Atomics.waitAsync` and never block the event loop. An `AbortSignal` ends
 *   async waits; sync calls only check it before waiting.
 * - When a holder dies: a Worker terminated while reading, writing or waiting
 *   to write leaves its holds and its place in the writer queue behind. Each
 *   attachment has an {@linkcode ReaderWriterLock.id}, recorded in shared
 *   memory with its holds and tickets; have each Worker report its `id`, and
 *   when one dies call {@linkcode ReaderWriterLock.forceRelease} with it.
 *   Limits: read holds are recorded only for attachment ids 1–256 (the first
 *   256 attachments made of a buffer, in any Worker; biased ones in ids 1–64's
 *   slots), and write holds taken
 *   without waiting only for ids 1–32767; holds of later attachments cannot
 *   be recovered. A Worker terminated while blocked in a sync acquire is not
 *   stopped (see {@linkcode ReaderWriterLock.forceRelease}).
 *
 * @example
 * ```ts
 * import { ReaderWriterLock } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const rw = new ReaderWriterLock();
 * {
 *   using _r = rw.readLockSync();
 *   assert.equal(rw.owner, "r");
 *   assert.equal(rw.isReader(), true);
 * }
 * await rw.withWriteLock(async () => {
 *   assert.equal(rw.isWriter(), true);
 *   await rw.withReadLock(() => assert.equal(rw.owner, "w")); // a writer may read
 * });
 * assert.equal(rw.owner, null);
 * ```
 */
export class ReaderWriterLock {
  readonly #raw: RawRwLock;
  /** The calling thread as a holder: every sync call acts for it. */
  readonly #thread = new Holder(false);
  #storage: AsyncLocalStorage<Holder> | undefined;
  /** `with…` callbacks of this attachment now running: 0 skips the AsyncLocalStorage lookup. */
  #contexts = 0;
  /** Async holders of this attachment with a shared hold (they block this thread's sync waits). */
  #asyncHolding = 0;
  /** Bare async read and write acquisitions (no guard, no callback) now held. */
  #bareReads = 0;
  #bareWrites = 0;

  /**
   * Makes a new, free lock in a `SharedArrayBuffer` of its own.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new ReaderWriterLock().owner, null);
   * ```
   */
  constructor() {
    const buffer = attaching;
    attaching = undefined;
    this.#raw = new RawRwLock(buffer);
  }

  /**
   * Attaches to the lock whose {@linkcode ReaderWriterLock.buffer} another Worker sent.
   * Make one attachment per thread: the thread's sync holds are counted per attachment.
   *
   * @param buffer The `buffer` of a `ReaderWriterLock`, received through `postMessage`.
   * @returns A `ReaderWriterLock` sharing state with every other attachment of `buffer`.
   * @throws {TypeError} when `buffer` is not a `SharedArrayBuffer` made by
   * `ReaderWriterLock` with this library's layout version.
   *
   * @example
   * ```ts
   * import { Lock, ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.equal(ReaderWriterLock.from(rw.buffer).owner, null);
   * assert.throws(() => ReaderWriterLock.from(new Lock().buffer), TypeError);
   * ```
   */
  static from(buffer: SharedArrayBuffer): ReaderWriterLock {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw badArgument("type", "ReaderWriterLock.from() buffer", buffer, "a SharedArrayBuffer");
    }
    attaching = buffer;
    try {
      return new ReaderWriterLock();
    } finally {
      attaching = undefined;
    }
  }

  /**
   * The shared memory of the lock: send it with `postMessage` and attach with
   * {@linkcode ReaderWriterLock.from}.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.ok(new ReaderWriterLock().buffer instanceof SharedArrayBuffer);
   * ```
   */
  get buffer(): SharedArrayBuffer {
    return this.#raw.view.buffer as SharedArrayBuffer;
  }

  /**
   * This attachment's holder id, unique among the attachments of the buffer:
   * send it to whoever supervises this Worker, for {@linkcode ReaderWriterLock.forceRelease}.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.notEqual(ReaderWriterLock.from(rw.buffer).id, rw.id);
   * ```
   */
  get id(): number {
    return this.#raw.id;
  }

  /**
   * Who holds the lock now, in any Worker: `"w"` a writer, `"r"` readers, `null` nobody.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * rw.acquireWriteLockSync();
   * assert.equal(rw.owner, "w");
   * rw.releaseWriteLock();
   * assert.equal(rw.owner, null);
   * ```
   */
  get owner(): "r" | "w" | null {
    return this.#raw.owner;
  }

  /**
   * Whether some writer, in any Worker, is waiting for the lock.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new ReaderWriterLock().hasPendingWriters, false);
   * ```
   */
  get hasPendingWriters(): boolean {
    return this.#raw.hasPendingWriters;
  }

  /**
   * Whether the caller holds a read lock: inside a `with…` callback, that
   * callback's chain; elsewhere, the calling thread's sync holds.
   *
   * @returns `true` when the caller holds at least one read lock.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.equal(rw.isReader(), false);
   * await rw.withReadLock(() => assert.equal(rw.isReader(), true));
   * ```
   */
  isReader(): boolean {
    return this.#caller().read > 0;
  }

  /**
   * Whether the caller holds the write lock (or, with `checkPending`, is
   * waiting for it): inside a `with…` callback, that callback's chain;
   * elsewhere, the calling thread's sync holds.
   *
   * @param checkPending Also answer `true` while the caller waits for the write lock.
   * @returns `true` when the caller is the writer (or a pending writer).
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * using _w = rw.writeLockSync();
   * assert.equal(rw.isWriter(), true);
   * ```
   */
  isWriter(checkPending = true): boolean {
    const holder = this.#caller();
    return holder.write > 0 || (checkPending && holder.pendingWrite > 0);
  }

  /**
   * Takes a read lock for a new async holder (or, inside a `with…` callback,
   * for that callback's chain), waiting with `Atomics.waitAsync`.
   *
   * @param options `blocking: false` or `timeout` to give up, `signal` to abort.
   * @returns `true` once held; `false` when not acquired in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.equal(await rw.acquireReadLock(), true);
   * assert.equal(await rw.acquireReadLock(), true); // another holder: readers share
   * assert.equal(await rw.acquireWriteLock({ timeout: 5 }), false);
   * rw.releaseReadLock();
   * rw.releaseReadLock();
   * ```
   */
  async acquireReadLock(options?: AcquireOptions): Promise<boolean> {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const context = this.#context();
    if (context !== undefined) return await this.#enterRead(context, w);
    if (!await this.#raw.readAsync(w)) return false;
    this.#bareReads++;
    this.#asyncHolding++;
    return true;
  }

  /**
   * Takes the write lock for a new async holder (or, inside a `with…`
   * callback, for that callback's chain), waiting with `Atomics.waitAsync`.
   *
   * @param options `blocking: false` or `timeout` to give up, `signal` to abort.
   * @returns `true` once held; `false` when not acquired in time.
   * @throws {LockError} inside a `with…` callback that holds only a read lock (no upgrade).
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.equal(await rw.acquireWriteLock(), true);
   * assert.equal(await rw.acquireWriteLock({ blocking: false }), false); // another holder
   * rw.releaseWriteLock();
   * ```
   */
  async acquireWriteLock(options?: AcquireOptions): Promise<boolean> {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const context = this.#context();
    if (context !== undefined) return await this.#enterWrite(context, w);
    if (!await this.#raw.writeAsync(w)) return false;
    this.#bareWrites++;
    this.#asyncHolding++;
    return true;
  }

  /**
   * Takes a read lock for the calling thread, blocking it with `Atomics.wait`.
   * Reentrant, and granted at once to a thread that holds the write lock.
   *
   * @param options `blocking: false` or `timeout` to give up; a `signal` is
   * checked once before waiting.
   * @returns `true` once held; `false` when not acquired in time.
   * @throws {LockError} when waiting could only end by a release from one of
   * this thread's own async holders (self-deadlock).
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.equal(rw.acquireReadLockSync(), true);
   * assert.equal(rw.acquireReadLockSync(), true); // reentrant
   * rw.releaseReadLock();
   * rw.releaseReadLock();
   * assert.equal(rw.owner, null);
   * ```
   */
  acquireReadLockSync(options?: AcquireOptions): boolean {
    const thread = this.#thread;
    if (thread.read !== 0 || thread.write !== 0) {
      thread.read++;
      return true;
    }
    // Fast path (RawRwLock.tryRead): with the read bias on, a store to this
    // attachment's own slot and a load; else one CAS. No options to parse, nothing allocated.
    if (options === undefined && this.#raw.tryRead()) {
      thread.read = 1;
      thread.sharedRead = true;
      return true;
    }
    return this.#readSyncContended(parseOptions(options));
  }

  /**
   * Takes the write lock for the calling thread, blocking it with `Atomics.wait`.
   * Reentrant for a thread that holds it already.
   *
   * @param options `blocking: false` or `timeout` to give up; a `signal` is
   * checked once before waiting.
   * @returns `true` once held; `false` when not acquired in time.
   * @throws {LockError} at once when the thread holds a read lock (no
   * upgrade), or when waiting could only end by a release from one of this
   * thread's own async holders (self-deadlock).
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { LockError, ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * rw.acquireReadLockSync();
   * assert.throws(() => rw.acquireWriteLockSync(), LockError); // no upgrade
   * rw.releaseReadLock();
   * assert.equal(rw.acquireWriteLockSync(), true);
   * rw.releaseWriteLock();
   * ```
   */
  acquireWriteLockSync(options?: AcquireOptions): boolean {
    const thread = this.#thread;
    if (thread.write !== 0) {
      thread.write++;
      return true;
    }
    // Fast path: one CAS (RawRwLock.tryWrite), no options to parse, nothing allocated.
    if (options === undefined && thread.read === 0 && this.#raw.tryWrite()) {
      thread.write = 1;
      return true;
    }
    return this.#writeSyncContended(parseOptions(options));
  }

  /**
   * Releases one read lock of the caller (see the class doc for which holder).
   *
   * @throws {LockError} when the caller holds no read lock.
   *
   * @example
   * ```ts
   * import { LockError, ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * assert.throws(() => rw.releaseReadLock(), LockError);
   * ```
   */
  releaseReadLock(): void {
    if (this.#contexts !== 0) {
      const context = this.#storage!.getStore();
      if (context !== undefined && context.read > 0) return this.#exitRead(context);
    }
    const thread = this.#thread;
    if (thread.read !== 0) {
      if (--thread.read === 0 && thread.sharedRead) {
        thread.sharedRead = false;
        this.#raw.releaseRead();
      }
      return;
    }
    if (this.#bareReads === 0) {
      throw misuse(this.#name, "releaseReadLock() by a caller that holds no read lock");
    }
    this.#bareReads--;
    this.#asyncHolding--;
    this.#raw.releaseRead();
  }

  /**
   * Releases one write lock of the caller (see the class doc for which holder).
   * A thread that still holds read locks keeps them: the write hold becomes a read hold.
   *
   * @throws {LockError} when the caller holds no write lock.
   *
   * @example
   * ```ts
   * import { LockError, ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * rw.acquireWriteLockSync();
   * rw.acquireReadLockSync();
   * rw.releaseWriteLock(); // downgrade
   * assert.equal(rw.owner, "r");
   * rw.releaseReadLock();
   * assert.throws(() => rw.releaseWriteLock(), LockError);
   * ```
   */
  releaseWriteLock(): void {
    if (this.#contexts !== 0) {
      const context = this.#storage!.getStore();
      if (context !== undefined && context.write > 0) return this.#exitWrite(context);
    }
    const thread = this.#thread;
    if (thread.write !== 0) {
      if (--thread.write === 0) {
        if (thread.read !== 0) {
          thread.sharedRead = true;
          this.#raw.downgrade();
        } else {
          this.#raw.releaseWrite();
        }
      }
      return;
    }
    if (this.#bareWrites === 0) {
      throw misuse(this.#name, "releaseWriteLock() by a caller that holds no write lock");
    }
    this.#bareWrites--;
    this.#asyncHolding--;
    this.#raw.releaseWrite();
  }

  /**
   * Takes a read lock for a new async holder (or the enclosing `with…`
   * callback's chain) and returns a guard for `await using`.
   *
   * @param options As for {@linkcode ReaderWriterLock.acquireReadLock}.
   * @returns A guard releasing exactly this hold.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * {
   *   await using _r = await rw.readLock();
   *   assert.equal(rw.owner, "r");
   * }
   * assert.equal(rw.owner, null);
   * ```
   */
  async readLock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const holder = this.#context() ?? new Holder(true);
    if (!await this.#enterRead(holder, w)) throw timedOut(`${this.#name} (read)`, w.timeout);
    return makeGuard(() => this.#exitRead(holder), this.#name);
  }

  /**
   * Takes the write lock for a new async holder (or the enclosing `with…`
   * callback's chain) and returns a guard for `await using`.
   *
   * @param options As for {@linkcode ReaderWriterLock.acquireWriteLock}.
   * @returns A guard releasing exactly this hold.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {LockError} inside a `with…` callback that holds only a read lock (no upgrade).
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * {
   *   await using _w = await rw.writeLock();
   *   assert.equal(rw.owner, "w");
   * }
   * assert.equal(rw.owner, null);
   * ```
   */
  async writeLock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const holder = this.#context() ?? new Holder(true);
    if (!await this.#enterWrite(holder, w)) throw timedOut(`${this.#name} (write)`, w.timeout);
    return makeGuard(() => this.#exitWrite(holder), this.#name);
  }

  /**
   * Takes a read lock for the calling thread and returns a guard for `using`.
   *
   * @param options As for {@linkcode ReaderWriterLock.acquireReadLockSync}.
   * @returns A guard releasing this hold.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {LockError} on self-deadlock (see `acquireReadLockSync`).
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * using _r = rw.readLockSync({ timeout: 100 });
   * assert.equal(rw.isReader(), true);
   * ```
   */
  readLockSync(options?: AcquireOptions): Guard {
    if (!this.acquireReadLockSync(options)) {
      throw timedOut(`${this.#name} (read)`, parseOptions(options).timeout);
    }
    return makeGuard(() => this.#exitRead(this.#thread), this.#name);
  }

  /**
   * Takes the write lock for the calling thread and returns a guard for `using`.
   *
   * @param options As for {@linkcode ReaderWriterLock.acquireWriteLockSync}.
   * @returns A guard releasing this hold.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {LockError} on upgrade or self-deadlock (see `acquireWriteLockSync`).
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * using _w = rw.writeLockSync();
   * assert.equal(rw.owner, "w");
   * ```
   */
  writeLockSync(options?: AcquireOptions): Guard {
    if (!this.acquireWriteLockSync(options)) {
      throw timedOut(`${this.#name} (write)`, parseOptions(options).timeout);
    }
    return makeGuard(() => this.#exitWrite(this.#thread), this.#name);
  }

  /**
   * Runs `fn` holding a read lock, released however `fn` ends. Inside `fn`,
   * the same async chain is one holder: reentrant, and refused an upgrade.
   * Tasks started inside `fn` share its hold (that is what
   * `AsyncLocalStorage` propagates): do not leave them running after `fn`.
   *
   * @param fn The work to do under the lock; may be async.
   * @param options As for {@linkcode ReaderWriterLock.acquireReadLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {TypeError|RangeError} on bad options or when `fn` is not a function.
   * @throws {unknown} What `fn` throws, or `options.signal.reason`.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * const n = await rw.withReadLock(() => rw.withReadLock(() => 7)); // reentrant
   * assert.equal(n, 7);
   * ```
   */
  withReadLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    return this.#with(fn, options, false);
  }

  /**
   * Runs `fn` holding the write lock, released however `fn` ends. Inside
   * `fn`, the same async chain is one holder: reentrant for reads and writes.
   * Tasks started inside `fn` share its hold: do not leave them running after `fn`.
   *
   * @param fn The work to do under the lock; may be async.
   * @param options As for {@linkcode ReaderWriterLock.acquireWriteLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {LockError} inside a `withReadLock()` callback (no upgrade).
   * @throws {TypeError|RangeError} on bad options or when `fn` is not a function.
   * @throws {unknown} What `fn` throws, or `options.signal.reason`.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * const got = await rw.withWriteLock(async () => {
   *   await rw.withWriteLock(() => {}); // reentrant
   *   return rw.owner;
   * });
   * assert.equal(got, "w");
   * ```
   */
  withWriteLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    return this.#with(fn, options, true);
  }

  /**
   * Recovers from a Worker that died holding or waiting for the lock: releases
   * every read and write hold of the attachment `id` and withdraws its place
   * in the writer queue. Never call it for a live attachment. Each hold and
   * queue place is undone once: a second call for the same id changes nothing.
   *
   * Limits. Read holds are recorded in shared memory only for attachment ids
   * 1–256: the read holds of an attachment with a larger id cannot be found
   * and stay taken (so keep the attachments that may die among the first 256
   * made of a buffer). Write holds taken without waiting are recorded for ids
   * 1–32767; write holds taken after waiting, and queue places, for any id.
   * In Deno, `Worker.terminate()` does not interrupt `Atomics.wait`: a Worker
   * terminated while blocked in a sync acquire stays blocked, and when woken
   * runs on until it returns to its event loop, so it may take the lock again
   * after this call. Recovery is exact only for Workers terminated while not
   * in a sync wait; have Workers mark in shared memory when they enter and
   * leave a sync acquire to tell, or give their sync acquires a timeout.
   *
   * @param id The {@linkcode ReaderWriterLock.id} of the dead Worker's attachment.
   * @returns `true` when something was released or withdrawn.
   * @throws {TypeError} when `id` is not an integer.
   *
   * @example
   * ```ts
   * import { ReaderWriterLock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const rw = new ReaderWriterLock();
   * const dead = ReaderWriterLock.from(rw.buffer); // stands for a Worker's attachment
   * dead.acquireWriteLockSync();
   * assert.equal(rw.forceRelease(dead.id), true);
   * assert.equal(rw.owner, null);
   * ```
   */
  forceRelease(id: number): boolean {
    if (!Number.isInteger(id)) throw badArgument("type", "id", id, "an integer holder id");
    return this.#raw.forceRelease(id) > 0;
  }

  // ---- holders -------------------------------------------------------------

  get #name(): string {
    return `ReaderWriterLock#${this.#raw.id}`;
  }

  /** The holder of the enclosing `with…` callback, if any. */
  #context(): Holder | undefined {
    return this.#contexts === 0 ? undefined : this.#storage!.getStore();
  }

  /** The holder that `isReader()`/`isWriter()` answer for. */
  #caller(): Holder {
    return this.#context() ?? this.#thread;
  }

  #deadlock(what: string): never {
    throw misuse(
      this.#name,
      `${what} would wait for this thread's own async holders to release, or for its own ` +
        "queued async writers to pass: it would deadlock the thread (use the async method, " +
        "or release first)",
    );
  }

  #readSyncContended(w: Waiting): boolean {
    w.signal?.throwIfAborted();
    const thread = this.#thread;
    if (this.#raw.tryRead() || (w.timeout !== 0 && this.#readSyncWait(w))) {
      thread.read = 1;
      thread.sharedRead = true;
      return true;
    }
    return false;
  }

  #readSyncWait(w: Waiting): boolean {
    if (this.#asyncHolding !== 0 || this.#raw.queuedWriters !== 0) {
      this.#deadlock("acquireReadLockSync()");
    }
    return this.#raw.readSync(w);
  }

  #writeSyncContended(w: Waiting): boolean {
    const thread = this.#thread;
    if (thread.read !== 0) {
      throw misuse(
        this.#name,
        "acquireWriteLockSync() by a thread that holds a read lock (no upgrade)",
      );
    }
    w.signal?.throwIfAborted();
    if (this.#raw.tryWrite() || (w.timeout !== 0 && this.#writeSyncWait(w))) {
      thread.write = 1;
      return true;
    }
    return false;
  }

  #writeSyncWait(w: Waiting): boolean {
    if (this.#asyncHolding !== 0 || this.#raw.queuedWriters !== 0) {
      this.#deadlock("acquireWriteLockSync()");
    }
    return this.#raw.writeSync(w);
  }

  async #enterRead(holder: Holder, w: Waiting): Promise<boolean> {
    if (holder.read !== 0 || holder.write !== 0) {
      holder.read++;
      return true;
    }
    if (!await this.#raw.readAsync(w)) return false;
    holder.read = 1;
    holder.sharedRead = true;
    this.#asyncHolding++;
    return true;
  }

  async #enterWrite(holder: Holder, w: Waiting): Promise<boolean> {
    if (holder.write !== 0) {
      holder.write++;
      return true;
    }
    if (holder.read !== 0) {
      throw misuse(this.#name, "write lock asked by a holder of a read lock (no upgrade)");
    }
    holder.pendingWrite++;
    try {
      if (!await this.#raw.writeAsync(w)) return false;
    } finally {
      holder.pendingWrite--;
    }
    holder.write = 1;
    this.#asyncHolding++;
    return true;
  }

  #exitRead(holder: Holder): void {
    if (holder.read === 0) {
      throw misuse(this.#name, "read lock released by a holder that holds none");
    }
    if (--holder.read === 0 && holder.sharedRead) {
      holder.sharedRead = false;
      if (holder.async && holder.write === 0) this.#asyncHolding--;
      this.#raw.releaseRead();
    }
  }

  #exitWrite(holder: Holder): void {
    if (holder.write === 0) {
      throw misuse(this.#name, "write lock released by a holder that holds none");
    }
    if (--holder.write !== 0) return;
    if (holder.read !== 0) {
      holder.sharedRead = true;
      this.#raw.downgrade();
    } else {
      if (holder.async) this.#asyncHolding--;
      this.#raw.releaseWrite();
    }
  }

  /** Drops whatever `holder` still holds (a `with…` callback that leaked nested holds). */
  #drop(holder: Holder): void {
    while (holder.write !== 0) this.#exitWrite(holder);
    while (holder.read !== 0) this.#exitRead(holder);
  }

  async #with<T>(
    fn: () => T | Promise<T>,
    options: AcquireOptions | undefined,
    write: boolean,
  ): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const storage = this.#storage ??= new AsyncLocalStorage<Holder>();
    const outer = this.#context();
    const holder = outer ?? new Holder(true);
    const entered = write ? await this.#enterWrite(holder, w) : await this.#enterRead(holder, w);
    if (!entered) throw timedOut(`${this.#name} (${write ? "write" : "read"})`, w.timeout);
    if (outer !== undefined) {
      try {
        return await fn();
      } finally {
        if (write ? holder.write > 0 : holder.read > 0) {
          if (write) this.#exitWrite(holder);
          else this.#exitRead(holder);
        }
      }
    }
    this.#contexts++;
    try {
      return await storage.run(holder, fn);
    } finally {
      this.#contexts--;
      this.#drop(holder);
    }
  }
}
