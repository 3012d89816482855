/**
 * {@linkcode Semaphore}: a counting semaphore shared between Workers through a
 * SharedArrayBuffer.
 *
 * @module
 */

import { badArgument, misuse, timedOut } from "../../errors.ts";
import { type Guard, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions, WAIT_FOREVER } from "../_options.ts";
import { FORCED, MAX_SLOTS, RawSemaphore } from "./_raw_semaphore.ts";

/** Set by `Semaphore.from()` for the constructor it calls. */
let attaching: SharedArrayBuffer | undefined;

/**
 * A bounded counting semaphore: at most `slots` holders at once, across every
 * Worker (and the main thread) that shares its `SharedArrayBuffer`. Pure
 * TypeScript on `Atomics`: no permission is needed.
 *
 * Contract:
 * - Initial state: `new Semaphore(n)` has all `n` slots free (1..1024);
 *   `Semaphore.from(buffer)` attaches to an existing semaphore in whatever
 *   state it is.
 * - Each acquisition takes one slot, recorded in shared memory under the
 *   attachment's {@linkcode Semaphore.id}. A slot is given back through the
 *   attachment that took it: `release()` gives back the most recent slot
 *   this attachment took with `acquire()`/`acquireSync()`, a guard or
 *   `withLock()` gives back its own slot.
 *   Bounded, like Python's `BoundedSemaphore`: a `release()` with nothing held
 *   is a `LockError`, so the count can never exceed `slots`.
 * - Not reentrant: a holder that acquires again takes a second slot.
 * - Order: threads blocked in `acquireSync()` are woken one per freed slot in
 *   arrival order, and the async waiters of one attachment are served in
 *   arrival order. A freed slot is not reserved for them: a newcomer's try
 *   (`acquireSync()`, `blocking: false`, or `acquire()` while its attachment
 *   has nobody queued) may take it first, and the woken waiter waits again.
 *   When an attachment's own async waiters are the only waiters anywhere, a
 *   release through it hands the slot straight to the next of them.
 * - Many async waiters cost one `Atomics.waitAsync` per attachment, not one
 *   each, and are served in time linear in their number; a release wakes
 *   the attachments that have waiters, not every waiting task.
 * - Sync waits block the thread with `Atomics.wait`; async waits never block
 *   the event loop. An `AbortSignal` can end async waits only.
 * - When a holder dies: a Worker terminated while holding slots keeps them.
 *   Have each Worker report its `id`, and when one dies call
 *   {@linkcode Semaphore.forceRelease} with it: every slot bearing that id is
 *   freed, each exactly once. Same caveat as `Lock`: `Worker.terminate()`
 *   does not interrupt `Atomics.wait`, so a Worker terminated while blocked
 *   in `acquireSync()` may still take a slot when woken.
 *
 * @example Two at a time
 * ```ts
 * import { Semaphore } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const sem = new Semaphore(2);
 * let inside = 0, most = 0;
 * await Promise.all(Array.from({ length: 6 }, () =>
 *   sem.withLock(async () => {
 *     most = Math.max(most, ++inside);
 *     await new Promise((r) => setTimeout(r, 1));
 *     inside--;
 *   })
 * ));
 * assert.equal(most, 2);
 * assert.equal(sem.available, 2);
 * ```
 *
 * @example Shared with a Worker
 * ```ts ignore
 * // main.ts
 * import { Semaphore } from "@fasteners/fasteners";
 *
 * const sem = new Semaphore(4);
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage(sem.buffer);
 *
 * // worker.ts
 * self.onmessage = (e: MessageEvent<SharedArrayBuffer>) => {
 *   const sem = Semaphore.from(e.data);
 *   using _slot = sem.lockSync();
 *   // at most 4 threads run this at once
 * };
 * ```
 */
export class Semaphore {
  readonly #raw: RawSemaphore;
  /** Slots taken by acquire()/acquireSync() and not yet given back, oldest first: what release() gives back. */
  readonly #bare: number[] = [];

  /**
   * Makes a new semaphore with `slots` free slots, in a `SharedArrayBuffer`
   * of its own.
   *
   * @param slots How many holders at once: an integer from 1 to 1024.
   * @throws {TypeError} when `slots` is not a number.
   * @throws {RangeError} when `slots` is not an integer from 1 to 1024.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Semaphore(3).available, 3);
   * assert.throws(() => new Semaphore(0), RangeError);
   * ```
   */
  constructor(slots: number) {
    const buffer = attaching;
    attaching = undefined;
    if (buffer !== undefined) {
      this.#raw = new RawSemaphore(buffer);
      return;
    }
    if (typeof slots !== "number") {
      throw badArgument("type", "slots", slots, `an integer from 1 to ${MAX_SLOTS}`);
    }
    if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
      throw badArgument("range", "slots", slots, `an integer from 1 to ${MAX_SLOTS}`);
    }
    this.#raw = new RawSemaphore(slots);
  }

  /**
   * Attaches to the semaphore whose {@linkcode Semaphore.buffer} another
   * Worker sent.
   *
   * @param buffer The `buffer` of a `Semaphore`, received through `postMessage`.
   * @returns A `Semaphore` sharing its slots with every other attachment of `buffer`.
   * @throws {TypeError} when `buffer` is not a `SharedArrayBuffer` made by
   * `Semaphore` with this library's layout version.
   *
   * @example
   * ```ts
   * import { Lock, Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * const same = Semaphore.from(sem.buffer);
   * sem.acquireSync();
   * assert.equal(same.available, 1);
   * assert.throws(() => Semaphore.from(new Lock().buffer), TypeError);
   * ```
   */
  static from(buffer: SharedArrayBuffer): Semaphore {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw badArgument("type", "Semaphore.from() buffer", buffer, "a SharedArrayBuffer");
    }
    attaching = buffer;
    try {
      return new Semaphore(0);
    } finally {
      attaching = undefined;
    }
  }

  /**
   * The shared memory of the semaphore: send it with `postMessage` and attach
   * with {@linkcode Semaphore.from}.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.ok(new Semaphore(2).buffer instanceof SharedArrayBuffer);
   * ```
   */
  get buffer(): SharedArrayBuffer {
    return this.#raw.view.buffer as SharedArrayBuffer;
  }

  /**
   * How many holders the semaphore admits at once.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Semaphore(5).slots, 5);
   * ```
   */
  get slots(): number {
    return this.#raw.slots;
  }

  /**
   * How many slots are free now, in all Workers (a snapshot: it may change
   * as soon as it is read).
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * using _slot = sem.lockSync();
   * assert.equal(sem.available, 1);
   * ```
   */
  get available(): number {
    return this.#raw.available;
  }

  /**
   * How many slots this attachment holds now.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(3);
   * sem.acquireSync();
   * sem.acquireSync();
   * assert.equal(sem.held, 2);
   * assert.equal(Semaphore.from(sem.buffer).held, 0);
   * ```
   */
  get held(): number {
    return this.#raw.held;
  }

  /**
   * This attachment's holder id: unique among the attachments of the buffer,
   * recorded in every slot this attachment holds. Send it to whoever
   * supervises this Worker, for {@linkcode Semaphore.forceRelease}.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * assert.notEqual(Semaphore.from(sem.buffer).id, sem.id);
   * ```
   */
  get id(): number {
    return this.#raw.id;
  }

  /**
   * Takes a slot, waiting with `Atomics.waitAsync`: the event loop goes on
   * while it waits. Waiters of this attachment are served in arrival order.
   *
   * @param options `blocking: false` or `timeout` to give up, `signal` to abort.
   * @returns `true` once a slot is taken; `false` when none was free in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts (the promise rejects).
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(1);
   * assert.equal(await sem.acquire(), true);
   * assert.equal(await sem.acquire({ timeout: 10 }), false);
   * sem.release();
   * ```
   */
  acquire(options?: AcquireOptions): Promise<boolean> {
    try {
      const w = parseOptions(options);
      w.signal?.throwIfAborted();
      return this.#raw.acquireAsync(w).then((k) => k >= 0 && this.#bare.push(k) > 0);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Takes a slot, blocking the thread with `Atomics.wait`.
   *
   * @param options `blocking: false` or `timeout` to give up. A `signal` is
   * checked once before waiting: a blocked thread cannot see it fire.
   * @returns `true` once a slot is taken; `false` when none was free in time.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal was already aborted.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(1);
   * assert.equal(sem.acquireSync(), true);
   * assert.equal(sem.acquireSync({ timeout: 5 }), false);
   * sem.release();
   * ```
   */
  acquireSync(options?: AcquireOptions): boolean {
    // Fast path: one CAS (RawSemaphore's take), no options to parse.
    const k = options === undefined
      ? this.#raw.acquireSync(WAIT_FOREVER)
      : this.#acquireSyncWith(options);
    return k >= 0 && this.#bare.push(k) > 0;
  }

  /**
   * Gives back the most recent slot that `acquire()` or `acquireSync()` of
   * this attachment took and that was not given back yet. (Slots of guards
   * and `withLock()` callbacks are given back by them, never by `release()`,
   * so tasks that share an attachment cannot give back each other's guarded
   * slot.)
   *
   * @throws {LockError} when no such slot is held (releasing more than was
   * taken), or when the slot was taken from this attachment by `forceRelease()`.
   *
   * @example
   * ```ts
   * import { LockError, Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * sem.acquireSync();
   * sem.release();
   * assert.throws(() => sem.release(), LockError);
   * ```
   */
  release(): void {
    const k = this.#bare.pop();
    if (k === undefined) {
      throw misuse(this.#name, "release() with no slot held from acquire() or acquireSync()");
    }
    this.#check(this.#raw.release(k));
  }

  /**
   * Takes a slot and returns a guard for `using` / `await using` that gives
   * back that slot.
   *
   * @param options As for {@linkcode Semaphore.acquire}.
   * @returns A guard whose disposal (or `release()`) gives the slot back.
   * @throws {LockTimeoutError} when no slot was free in time, or `blocking` is
   * false and every slot is taken.
   * @throws {TypeError|RangeError} on bad options.
   * @throws {unknown} `options.signal.reason` when the signal aborts.
   *
   * @example
   * ```ts
   * import { LockTimeoutError, Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(1);
   * {
   *   await using _slot = await sem.lock();
   *   await assert.rejects(sem.lock({ blocking: false }), LockTimeoutError);
   * }
   * assert.equal(sem.available, 1);
   * ```
   */
  async lock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const k = await this.#raw.acquireAsync(w);
    if (k < 0) throw timedOut(this.#name, w.timeout);
    return makeGuard(() => this.#releaseSlot(k), this.#name);
  }

  /**
   * Takes a slot, blocking the thread, and returns a guard for `using`.
   *
   * @param options As for {@linkcode Semaphore.acquireSync}.
   * @returns A guard whose disposal (or `release()`) gives the slot back.
   * @throws {LockTimeoutError} when no slot was free in time, or `blocking` is
   * false and every slot is taken.
   * @throws {TypeError|RangeError} on bad options.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * {
   *   using _slot = sem.lockSync({ timeout: 100 });
   *   assert.equal(sem.available, 1);
   * }
   * assert.equal(sem.available, 2);
   * ```
   */
  lockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const k = this.#raw.acquireSync(w);
    if (k < 0) throw timedOut(this.#name, w.timeout);
    return makeGuard(() => this.#releaseSlot(k), this.#name);
  }

  /**
   * Runs `fn` holding a slot, and gives the slot back however `fn` ends.
   *
   * @param fn The work to do holding a slot; may be async.
   * @param options As for {@linkcode Semaphore.acquire}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} when no slot was free in time.
   * @throws {TypeError|RangeError} on bad options or when `fn` is not a function.
   * @throws {unknown} What `fn` throws, or `options.signal.reason`.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(2);
   * assert.equal(await sem.withLock(() => sem.available), 1);
   * assert.equal(sem.available, 2);
   * ```
   */
  async withLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    const k = await this.#raw.acquireAsync(w);
    if (k < 0) throw timedOut(this.#name, w.timeout);
    try {
      return await fn();
    } finally {
      this.#releaseSlot(k);
    }
  }

  /**
   * Runs `fn` holding a slot taken with {@linkcode Semaphore.acquireSync},
   * and gives the slot back however `fn` ends.
   *
   * @param fn The synchronous work to do holding a slot.
   * @param options As for {@linkcode Semaphore.acquireSync}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} when no slot was free in time.
   * @throws {TypeError|RangeError} on bad options or when `fn` is not a function.
   * @throws {unknown} What `fn` throws.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(1);
   * assert.equal(sem.withLockSync(() => sem.available), 0);
   * assert.equal(sem.available, 1);
   * ```
   */
  withLockSync<T>(fn: () => T, options?: AcquireOptions): T {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    using _slot = this.lockSync(options);
    return fn();
  }

  /**
   * Recovers from a Worker that died holding slots: frees every slot that the
   * attachment with holder id `id` holds now (one compare-and-swap per slot
   * from `id` to free, so a second call frees nothing). See the class
   * contract for Workers terminated while blocked in `acquireSync()`.
   *
   * @param id The {@linkcode Semaphore.id} of the dead Worker's attachment.
   * @returns How many slots were freed.
   * @throws {TypeError} when `id` is not an integer.
   *
   * @example
   * ```ts
   * import { Semaphore } from "@fasteners/fasteners";
   * import assert from "node:assert/strict";
   *
   * const sem = new Semaphore(3);
   * const other = Semaphore.from(sem.buffer); // stands for a Worker's attachment
   * other.acquireSync();
   * other.acquireSync();
   * assert.equal(sem.forceRelease(other.id), 2);
   * assert.equal(sem.forceRelease(other.id), 0);
   * assert.equal(sem.available, 3);
   * ```
   */
  forceRelease(id: number): number {
    if (!Number.isInteger(id)) throw badArgument("type", "id", id, "an integer holder id");
    return this.#raw.forceRelease(id);
  }

  #acquireSyncWith(options: AcquireOptions): number {
    const w = parseOptions(options);
    w.signal?.throwIfAborted();
    return this.#raw.acquireSync(w);
  }

  get #name(): string {
    return `Semaphore#${this.#raw.id}`;
  }

  #releaseSlot(k: number): void {
    this.#check(this.#raw.release(k));
  }

  #check(outcome: number): void {
    if (outcome === FORCED) {
      throw misuse(this.#name, "release() of a slot that forceRelease() had already freed");
    }
  }
}
