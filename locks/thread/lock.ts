/**
 * {@linkcode Lock}: a mutex shared between Workers through a SharedArrayBuffer.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { badArgument, misuse, timedOut } from "../../errors.ts";
import { type Guard, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions, WAIT_FOREVER } from "../_options.ts";
import { RawLock } from "./_raw_lock.ts";

/** The hold of one `withLock()` callback, seen by nested calls through AsyncLocalStorage. */
interface Context {
  /** Holds taken by this async chain: 1 for the callback's own, +1 per nested acquire. 0 once released. */
  depth: number;
}

/** Set by `Lock.from()` for the constructor it calls. */
let attaching: SharedArrayBuffer | undefined;

/**
 * A mutual-exclusion lock with the semantics of Python's `threading.Lock`,
 * shared between Workers (and the main thread) through a `SharedArrayBuffer`.
 * Pure TypeScript on `Atomics`: no permission is needed.
 *
 * Contract:
 * - Initial state: `new Lock()` is unlocked; `Lock.from(buffer)` attaches to
 *   an existing lock in whatever state it is.
 * - Not reentrant: `acquireSync()` by the thread that already holds the lock
 *   waits like any other caller (and with a timeout returns `false` when it
 *   runs out). The one exception: inside a `withLock()` callback, `acquire()`,
 *   `lock()` and `withLock()` of the same lock by the same async chain are
 *   reentrant (tracked with `AsyncLocalStorage`), and each nested hold is
 *   undone by its own `release()`.
 * - Any thread may release the lock, not only the one that took it.
 * - Unfair between Workers: a released lock goes to whoever gets there
 *   first; a woken waiter may lose to a newcomer. Threads blocked in
 *   `acquireSync()` are woken one per release in arrival order.
 * - FIFO within an attachment: async waiters of one attachment queue in
 *   arrival order (a newcomer does not pass them) and one watcher per
 *   attachment waits on the shared word for all of them, so a release wakes
 *   at most one async wait per attachment, however many tasks wait. A
 *   release by an attachment with async waiters queued hands the lock
 *   straight to the oldest of them; after 32 such handoffs in a row while
 *   somebody else (another Worker, a sync waiter) waits, it frees the lock
 *   for everybody instead.
 * - Sync waits block the thread with `Atomics.wait` (allowed on Deno's main
 *   thread too); async waits use `Atomics.waitAsync` and never block the
 *   event loop. An `AbortSignal` can end async waits only: a blocked thread
 *   cannot see its signal fire, so sync calls only check it before waiting.
 * - When a holder dies: a Worker terminated while holding the lock leaves it
 *   locked. Every attachment has an {@linkcode Lock.id}, and the lock word
 *   itself holds the id of its holder (taking the lock and recording who took
 *   it are one atomic step); have each Worker report its `lock.id`, and when
 *   one dies call {@linkcode Lock.forceRelease} with that id, which releases
 *   the lock only if that attachment still holds it. Caveat: in Deno,
 *   `Worker.terminate()` does not interrupt `Atomics.wait`, so a Worker
 *   terminated while blocked in `acquireSync()` lives on as a zombie and, when
 *   woken, may still take the lock (see {@linkcode Lock.forceRelease}).
 *
 * @example Two Workers, one lock
 * ```ts ignore
 * // main.ts
 * import { Lock } from "@fasteners/fasteners";
 *
 * const lock = new Lock();
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage(lock.buffer);
 * await lock.withLock(() => console.log("main holds the lock"));
 *
 * // worker.ts
 * self.onmessage = (e: MessageEvent<SharedArrayBuffer>) => {
 *   const lock = Lock.from(e.data);
 *   using _held = lock.lockSync();
 *   console.log("worker holds the lock");
 * };
 * ```
 *
 * @example
 * ```ts
 * import { Lock } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const lock = new Lock();
 * assert.equal(lock.acquireSync(), true);
 * assert.equal(lock.acquireSync({ blocking: false }), false); // not reentrant
 * lock.release();
 * assert.equal(lock.locked, false);
 * ```
 */
export class Lock {
  readonly #raw: RawLock;
  #storage: AsyncLocalStorage<Context> | undefined;
  /** Number of `withLock()` callbacks of this attachment now running: 0 skips the AsyncLocalStorage lookup. */
  #contexts = 0;

  /**
   * Makes a new, unlocked lock in a `SharedArrayBuffer` of its own.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Lock().locked, false);
   * ```
   */
  constructor() {
    const buffer = attaching;
    attaching = undefined;
    this.#raw = new RawLock(buffer);
  }

  /**
   * Attaches to the lock whose {@linkcode Lock.buffer} another Worker sent.
   *
   * @param buffer The `buffer` of a `Lock`, received through `postMessage`.
   * @returns A `Lock` sharing state with every other attachment of `buffer`.
   * @throws {TypeError} when `buffer` is not a `SharedArrayBuffer` made by
   * `Lock` with this library's layout version.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * const same = Lock.from(lock.buffer);
   * lock.acquireSync();
   * assert.equal(same.locked, true);
   * same.release(); // any attachment may release
   * assert.throws(() => Lock.from(new SharedArrayBuffer(8)), TypeError);
   * ```
   */
  static from(buffer: SharedArrayBuffer): Lock {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw badArgument("type", "Lock.from() buffer", buffer, "a SharedArrayBuffer");
    }
    attaching = buffer;
    try {
      return new Lock();
    } finally {
      attaching = undefined;
    }
  }

  /**
   * The shared memory of the lock: send it with `postMessage` and attach with
   * {@linkcode Lock.from}.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.ok(new Lock().buffer instanceof SharedArrayBuffer);
   * ```
   */
  get buffer(): SharedArrayBuffer {
    return this.#raw.view.buffer as SharedArrayBuffer;
  }

  /**
   * Whether anyone, in any Worker, holds the lock now.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * lock.acquireSync();
   * assert.equal(lock.locked, true);
   * ```
   */
  get locked(): boolean {
    return this.#raw.locked;
  }

  /**
   * This attachment's holder id: unique among the attachments of the buffer,
   * recorded in shared memory while this attachment holds the lock. Send it
   * to whoever supervises this Worker, for {@linkcode Lock.forceRelease}.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * assert.notEqual(Lock.from(lock.buffer).id, lock.id);
   * ```
   */
  get id(): number {
    return this.#raw.id;
  }

  /**
   * Acquires the lock, waiting with `Atomics.waitAsync`: the event loop goes
   * on while it waits.
   *
   * @param options `blocking: false` or `timeout` to give up, `signal` to abort.
   * @returns `true` once acquired; `false` when not acquired in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts (the promise rejects).
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * assert.equal(await lock.acquire(), true);
   * assert.equal(await lock.acquire({ timeout: 10 }), false);
   * lock.release();
   * ```
   */
  acquire(options?: AcquireOptions): Promise<boolean> {
    try {
      const w = parseOptions(options);
      w.signal?.throwIfAborted();
      if (this.#contexts !== 0) {
        const context = this.#storage!.getStore();
        if (context !== undefined && context.depth > 0) {
          context.depth++;
          return Promise.resolve(true);
        }
      }
      return this.#raw.acquireAsync(w);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Acquires the lock, blocking the thread with `Atomics.wait`. Not reentrant:
   * called by the holder, it waits for somebody else to release.
   *
   * @param options `blocking: false` or `timeout` to give up. A `signal` is
   * checked once before waiting: a blocked thread cannot see it fire.
   * @returns `true` once acquired; `false` when not acquired in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal was already aborted.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * assert.equal(lock.acquireSync(), true);
   * assert.equal(lock.acquireSync({ timeout: 5 }), false);
   * lock.release();
   * ```
   */
  acquireSync(options?: AcquireOptions): boolean {
    // Fast path: one CAS (RawLock.tryAcquire), no options to parse, nothing allocated.
    if (options === undefined) {
      return this.#raw.tryAcquire() || this.#raw.acquireSyncContended(WAIT_FOREVER);
    }
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    return this.#raw.acquireSync(w);
  }

  /**
   * Releases the lock. Any thread may release it, not only the one that
   * acquired it. Inside a `withLock()` callback, undoes a nested hold first.
   *
   * @throws {LockError} when the lock is not locked.
   *
   * @example
   * ```ts
   * import { Lock, LockError } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * lock.acquireSync();
   * lock.release();
   * assert.throws(() => lock.release(), LockError);
   * ```
   */
  release(): void {
    if (this.#contexts !== 0) {
      const context = this.#storage!.getStore();
      if (context !== undefined && context.depth > 0) {
        this.#releaseIn(context);
        return;
      }
    }
    // Not through #releaseShared(): in a handoff this runs once, on a cold
    // thread, where every call on the way to the notify costs µs.
    if (!this.#raw.release()) throw misuse(this.#name, "release() of a lock that is not locked");
  }

  /**
   * Acquires the lock and returns a guard for `using` / `await using`.
   *
   * @param options As for {@linkcode Lock.acquire}.
   * @returns A guard whose disposal (or `release()`) releases the lock.
   * @throws {LockTimeoutError} when not acquired in time or `blocking` is false and the lock is held.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * {
   *   await using _held = await lock.lock();
   *   assert.equal(lock.locked, true);
   * }
   * assert.equal(lock.locked, false);
   * ```
   */
  async lock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    if (this.#contexts !== 0) {
      const context = this.#storage!.getStore();
      if (context !== undefined && context.depth > 0) {
        context.depth++;
        return makeGuard(() => this.#releaseIn(context), this.#name);
      }
    }
    w.signal?.throwIfAborted();
    if (!await this.#raw.acquireAsync(w)) throw timedOut(this.#name, w.timeout);
    return makeGuard(() => this.#releaseShared(), this.#name);
  }

  /**
   * Acquires the lock, blocking the thread, and returns a guard for `using`.
   *
   * @param options As for {@linkcode Lock.acquireSync}.
   * @returns A guard whose disposal (or `release()`) releases the lock.
   * @throws {LockTimeoutError} when not acquired in time or `blocking` is false and the lock is held.
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * {
   *   using _held = lock.lockSync({ timeout: 100 });
   *   assert.equal(lock.locked, true);
   * }
   * assert.equal(lock.locked, false);
   * ```
   */
  lockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    if (!this.#raw.acquireSync(w)) throw timedOut(this.#name, w.timeout);
    return makeGuard(() => this.#releaseShared(), this.#name);
  }

  /**
   * Runs `fn` holding the lock, and releases it however `fn` ends. Inside
   * `fn`, the same async chain may take this lock again (`acquire()`,
   * `lock()`, `withLock()`) without waiting for itself. "The same async
   * chain" is what `AsyncLocalStorage` propagates: tasks started inside `fn`
   * (timers, promises not awaited) share its hold, so do not leave them
   * running after `fn` returns.
   *
   * @param fn The work to do under the lock; may be async.
   * @param options As for {@linkcode Lock.acquire}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} when not acquired in time.
   * @throws {TypeError|RangeError} on bad options or when `fn` is not a function.
   * @throws {unknown} What `fn` throws, or `options.signal.reason`.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * const n = await lock.withLock(async () => {
   *   return await lock.withLock(() => 42); // reentrant inside the callback
   * });
   * assert.equal(n, 42);
   * assert.equal(lock.locked, false);
   * ```
   */
  async withLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    const w = parseOptions(options);
    const storage = this.#storage ??= new AsyncLocalStorage<Context>();
    if (this.#contexts !== 0) {
      const outer = storage.getStore();
      if (outer !== undefined && outer.depth > 0) {
        outer.depth++;
        try {
          return await fn();
        } finally {
          if (outer.depth > 0) this.#releaseIn(outer);
        }
      }
    }
    w.signal?.throwIfAborted();
    if (!await this.#raw.acquireAsync(w)) throw timedOut(this.#name, w.timeout);
    const context: Context = { depth: 1 };
    this.#contexts++;
    try {
      return await storage.run(context, fn);
    } finally {
      this.#contexts--;
      if (context.depth > 0) {
        context.depth = 0;
        this.#releaseShared();
      }
    }
  }

  /**
   * Recovers from a Worker that died holding the lock: releases the lock if
   * the attachment with holder id `id` holds it now (one compare-and-swap of
   * the lock word from `id` to free, so a second call changes nothing).
   *
   * Safe for a Worker that was terminated while not blocked in a sync wait:
   * its thread runs no more code, so whatever it held is released exactly once.
   * Not so for a Worker terminated while blocked in `acquireSync()`: in Deno,
   * `Worker.terminate()` does not interrupt `Atomics.wait`, so its thread stays
   * blocked, keeps the process alive, and when a release wakes it runs on
   * until it returns to its event loop; it may take the lock again, after this
   * call, and hold it until its own code releases it. To tell the two apart,
   * have each Worker mark in shared memory when it enters and leaves a sync
   * acquire (or use only sync calls with a timeout, or async calls, in Workers
   * that may be terminated), and call `forceRelease()` again if the zombie's
   * id turns up as holder later.
   *
   * @param id The {@linkcode Lock.id} of the dead Worker's attachment.
   * @returns `true` when the lock was released, `false` when `id` did not hold it.
   * @throws {TypeError} when `id` is not an integer.
   *
   * @example
   * ```ts
   * import { Lock } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const lock = new Lock();
   * const other = Lock.from(lock.buffer); // stands for a Worker's attachment
   * other.acquireSync();
   * assert.equal(lock.forceRelease(lock.id), false);
   * assert.equal(lock.forceRelease(other.id), true);
   * assert.equal(lock.locked, false);
   * ```
   */
  forceRelease(id: number): boolean {
    if (!Number.isInteger(id)) throw badArgument("type", "id", id, "an integer holder id");
    return this.#raw.forceRelease(id);
  }

  get #name(): string {
    return `Lock#${this.#raw.id}`;
  }

  /** Undoes one hold of a `withLock()` context; the last one releases the lock. */
  #releaseIn(context: Context): void {
    if (context.depth === 0) throw misuse(this.#name, "release() of a lock that is not locked");
    if (--context.depth === 0) this.#releaseShared();
  }

  #releaseShared(): void {
    if (!this.#raw.release()) throw misuse(this.#name, "release() of a lock that is not locked");
  }
}
