/**
 * {@linkcode InterProcessSemaphore}: at most N holders at once on a file,
 * between processes, Workers, semaphore objects and async tasks.
 *
 * @module
 */

import { badArgument, misuse, timedOut } from "../../errors.ts";
import { type Guard, makeGuard } from "../guard.ts";
import { type AcquireOptions, parseOptions } from "../_options.ts";
import { lockFilePath } from "./_file_lock.ts";
import { type HeldSlot, SemaphoreFile } from "./_semaphore_file.ts";

/** The most slots a semaphore may have. */
export const MAX_SEMAPHORE_SLOTS = 1024;

/**
 * Checks a slot count: an integer from 1 to 1024.
 *
 * @throws {TypeError} when `slots` is not a number.
 * @throws {RangeError} when it is not an integer from 1 to 1024.
 * @internal
 */
export function checkSlots(slots: unknown): number {
  if (typeof slots !== "number") {
    throw badArgument("type", "slots", slots, `an integer from 1 to ${MAX_SEMAPHORE_SLOTS}`);
  }
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SEMAPHORE_SLOTS) {
    throw badArgument("range", "slots", slots, `an integer from 1 to ${MAX_SEMAPHORE_SLOTS}`);
  }
  return slots;
}

/**
 * A counting semaphore on a file: at most `slots` holders at once, across
 * processes, with the shape of {@linkcode InterProcessLock}. Python's
 * `BoundedSemaphore` between processes; GNU parallel's `sem -j N`.
 *
 * Contract:
 * - Starts with every slot free. Each acquisition takes one slot through a
 *   file descriptor of its own, so processes, Workers, semaphore objects and
 *   concurrent async tasks on one object all count as separate holders.
 * - Slot k is an exclusive lock on byte k of the file (Linux OFD `fcntl`,
 *   Windows `LockFileEx`); on macOS, whose `flock` has no byte ranges, it is
 *   the file `<path>.slot-<k>` beside it. The file is never written.
 * - **Every user of a path must pass the same `slots`**: the count is not
 *   stored anywhere, and a user that thinks there are more slots takes bytes
 *   the others never look at. Do not take an {@linkcode InterProcessLock} on
 *   a semaphore's file (it would conflict with slot 0, or with every slot).
 * - {@linkcode InterProcessSemaphore.held} counts the slots this object
 *   holds. `release()` gives back the most recent slot taken by `acquire()`
 *   or `acquireSync()` that it still holds; a guard or
 *   {@linkcode InterProcessSemaphore.withLock} gives back its own, and
 *   `release()` never takes a guard's slot. Not
 *   reentrant: a nested `withLock` takes another slot. Release from the
 *   thread (Worker) that acquired.
 * - When a holding process dies, even by SIGKILL, the kernel frees its slot
 *   and a waiter takes it at its next poll.
 * - Waiting: when every slot is busy, one waiter per isolate queues in the
 *   kernel on a turnstile (byte 1024) and, once it holds it, polls the slots
 *   every millisecond or less; the other waiters of the isolate queue behind
 *   it (see `_semaphore_file.ts`). A wait with a timeout or signal polls with
 *   its own backoff and leaves nothing behind when it gives up.
 *
 * Needs `--allow-ffi`, and `--allow-write` when the file or its folders must
 * be created.
 *
 * @example
 * ```ts
 * import { InterProcessSemaphore } from "@fasteners/fasteners";
 * import assert from "node:assert/strict";
 *
 * const jobs = new InterProcessSemaphore(await Deno.makeTempFile(), 2);
 * await jobs.withLock(() => {
 *   // At most two processes at a time run this.
 * });
 * assert.equal(jobs.acquireSync(), true);
 * assert.equal(jobs.acquireSync(), true);
 * assert.equal(jobs.acquireSync({ blocking: false }), false); // both slots are taken
 * jobs.release();
 * jobs.release();
 * ```
 */
export class InterProcessSemaphore {
  /** The semaphore file, absolute. */
  readonly path: string;
  /** How many holders it admits at once. */
  readonly slots: number;
  readonly #file: SemaphoreFile;
  readonly #name: string;
  /** Slots taken by acquire()/acquireSync() and not yet given back, oldest first: what release() gives back. */
  readonly #bare: HeldSlot[] = [];
  /** How many slots guards and withLock() callbacks of this object hold. */
  #guarded = 0;

  /**
   * Makes a semaphore of `slots` slots on `path`. Nothing is opened or
   * created until the first acquisition.
   *
   * @param path The semaphore file, as a path (relative to the working folder) or `file:` URL.
   * @param slots How many holders at once: an integer from 1 to 1024, the same for every user.
   * @throws {TypeError} for an empty path, a NUL byte, another URL scheme, or
   *   a `slots` that is not a number.
   * @throws {RangeError} for a `slots` that is not an integer from 1 to 1024.
   */
  constructor(path: string | URL, slots: number) {
    this.path = lockFilePath(path);
    this.slots = checkSlots(slots);
    this.#name = `InterProcessSemaphore('${this.path}', ${this.slots})`;
    this.#file = SemaphoreFile.for(this.path, this.slots, this);
  }

  /** How many slots this object holds now. */
  get held(): number {
    return this.#bare.length + this.#guarded;
  }

  /**
   * Takes a slot, waiting as the options say, without blocking the event
   * loop.
   *
   * @param options Blocking, timeout, poll delays (milliseconds), abort signal.
   * @returns `true` when a slot was taken, `false` when all are busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) when the file cannot be opened or locked.
   * @throws {RangeError} (as a rejection) for a negative or NaN time.
   */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const held = await this.#file.acquire(parseOptions(options));
    if (held === undefined) return false;
    this.#bare.push(held);
    return true;
  }

  /**
   * Takes a slot, blocking the calling thread while it waits. An already
   * aborted `signal` throws its reason; it cannot interrupt the wait.
   *
   * @param options Blocking, timeout, poll delays (milliseconds).
   * @returns `true` when a slot was taken, `false` when all are busy (non-blocking) or timed out.
   * @throws {LockError} when the file cannot be opened or locked, or when
   *   waiting forever could only deadlock this thread (it holds every slot).
   * @throws {RangeError} for a negative or NaN time.
   */
  acquireSync(options?: AcquireOptions): boolean {
    const held = this.#file.acquireSync(parseOptions(options), this.#name);
    if (held === undefined) return false;
    this.#bare.push(held);
    return true;
  }

  /**
   * Gives back the most recent slot this object took with `acquire()` or
   * `acquireSync()` and still holds (guards give back their own).
   *
   * @throws {LockError} when it holds none of those.
   */
  release(): void {
    const held = this.#bare.pop();
    if (held === undefined) {
      throw misuse(
        this.#name,
        this.#guarded > 0
          ? "release() with no slot held from acquire() or acquireSync() (guards and withLock() give back their own)"
          : "release() with no slot held",
        this.path,
      );
    }
    this.#file.release(held);
  }

  #guard(held: HeldSlot): Guard {
    this.#guarded++;
    return makeGuard(() => {
      this.#guarded--;
      this.#file.release(held);
    }, this.#name);
  }

  /**
   * Takes a slot and returns a guard for `await using` that gives back that slot.
   *
   * @param options As for {@linkcode InterProcessSemaphore.acquire}.
   * @returns A guard that releases its own slot.
   * @throws {LockTimeoutError} (as a rejection) when no slot was taken.
   */
  async lock(options?: AcquireOptions): Promise<Guard> {
    const w = parseOptions(options);
    const held = await this.#file.acquire(w);
    if (held === undefined) throw timedOut(this.#name, w.timeout, this.path);
    return this.#guard(held);
  }

  /**
   * Takes a slot, blocking, and returns a guard for `using` that gives back that slot.
   *
   * @param options As for {@linkcode InterProcessSemaphore.acquireSync}.
   * @returns A guard that releases its own slot.
   * @throws {LockTimeoutError} when no slot was taken.
   */
  lockSync(options?: AcquireOptions): Guard {
    const w = parseOptions(options);
    const held = this.#file.acquireSync(w, this.#name);
    if (held === undefined) throw timedOut(this.#name, w.timeout, this.path);
    return this.#guard(held);
  }

  /**
   * Runs `fn` holding a slot and gives that slot back however `fn` ends.
   *
   * @param fn The section that at most `slots` holders run at once.
   * @param options As for {@linkcode InterProcessSemaphore.acquire}.
   * @returns What `fn` returns.
   * @throws {TypeError} (as a rejection) when `fn` is not a function.
   * @throws {LockTimeoutError} (as a rejection) when no slot was taken.
   */
  async withLock<T>(fn: () => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    const guard = await this.lock(options);
    try {
      return await fn();
    } finally {
      guard.release();
    }
  }
}
