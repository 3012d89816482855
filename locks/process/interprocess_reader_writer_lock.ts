/**
 * {@linkcode InterProcessReaderWriterLock}: shared and exclusive locks on a
 * file, between processes, Workers, lock objects and async tasks.
 *
 * @module
 */

import { misuse, timedOut } from "../../errors.ts";
import { mechanism } from "../../ffi/mod.ts";
import { type Guard, type LockedWrapper, lockedWrapper, makeGuard } from "../guard.ts";
import {
  type AcquireOptions,
  parseOptions,
  sleep,
  type Waiting,
  waitsForever,
} from "../_options.ts";
import { type Handle, LockFile, lockFilePath, withLockFile } from "./_file_lock.ts";

// Writer preference between processes: the gate.
//
// The kernel alone prefers readers: Linux grants a read lock whenever no
// write lock is held, even while a writer waits, so readers that come and go
// starve it. So the lock takes two bytes of the file (where the OS has byte
// ranges: Linux OFD fcntl, Windows LockFileEx):
//   DATA_BYTE  readers hold it shared, a writer exclusively: the exclusion.
//   GATE_BYTE  a writer holds it exclusively from the start of its wait to its
//              release; a reader that finds it held waits for it (locks it
//              shared, takes DATA_BYTE, unlocks it), so a reader that arrives
//              once a writer waits waits behind that writer.
// A reader first looks at the gate where the OS can look without locking
// (Linux: one F_OFD_GETLK): when no writer holds it, the reader takes
// DATA_BYTE shared at once and never touches the gate, so an uncontended read
// costs two calls (test, lock) and its release one (unlock DATA_BYTE); only
// a reader that found a writer there ever holds the gate (briefly, shared,
// once that writer has left). Releasing a read unlocks DATA_BYTE alone.
// The race: a writer that takes the gate just after a reader looked finds
// that reader in DATA_BYTE (or about to be) and waits for it as for the
// readers already in: one read hold more, once; readers that look after it
// wait at the gate. (When the writer takes DATA_BYTE first, the reader's lock
// fails and it waits at the gate like a later one.)
// Windows has no test call (a try on the gate would be a lock and an unlock):
// its readers always pass the gate, three calls.
// A writer first tries both bytes as one range in one call (Linux: l_len 2),
// which succeeds only when nobody is in and no writer waits: it then holds
// the gate and DATA_BYTE exactly as if it had taken them one by one, and
// releases both in one call. Otherwise (and on Windows) it takes the gate,
// then DATA_BYTE, as below.
// A writer holding the gate waits only for the readers already in, and none
// can join them: that wait is short. A writer that waits forever parks it in
// the kernel (LockFile.lockBounded); one with a timeout or signal, which must
// be able to leave, polls (after 0.25, 0.5 and 0.75 ms, then every 1 ms:
// POLL_STEP_MS). The gate orders; DATA_BYTE alone
// excludes, so a process that ignores the gate is never let in wrongly.
// A writer SIGKILLed while waiting loses the gate with its descriptors.
// Between writers the kernel does not queue: when a writer leaves, the gate
// goes to whichever waiter runs first, a writer waiting for it or readers
// that arrived meanwhile (they pass it and hold DATA_BYTE once each, which
// the next writer then waits for). Readers that arrive once a writer holds
// the gate always wait for it.
//
// Python fasteners locks the whole file with lockf on Linux, which conflicts
// with both bytes: its writers exclude ours and readers of both kinds, and
// its readers wait for our writers' gate too (our readers see its writer on
// the gate and wait there). On Windows it locks byte 0, DATA_BYTE: it is
// excluded as before but does not see the gate. macOS flock has no ranges:
// there DATA_BYTE is the whole file and there is no gate.

/** The byte the exclusion is on: fasteners' byte on Windows, inside its whole-file lock on Linux. */
const DATA_BYTE = 0;
/** The byte a waiting or holding writer keeps exclusively and a reader passes. */
const GATE_BYTE = 1;

/**
 * A timed or abortable writer that holds the gate polls DATA_BYTE after
 * 0.25 ms, then 0.5 and 0.75 ms more, then every POLL_MAX_MS: the readers it
 * waits for are only those already in, often about to leave, so the first
 * polls come soon; a reader that holds on costs it one poll a millisecond.
 */
const POLL_STEP_MS = 0.25;
/** The longest pause between a timed writer's polls of DATA_BYTE. */
const POLL_MAX_MS = 1;

/**
 * Pauses `ms` (fractions too) between polls: on a pool thread where the OS
 * layer can (Deno's smallest `setTimeout` takes about 2 ms), else on a timer.
 * An abort is seen when the pause ends (within POLL_MAX_MS), or at once on a timer.
 */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  const osPause = mechanism().pause;
  if (osPause === undefined) return await sleep(ms, signal);
  await osPause(ms);
  signal?.throwIfAborted();
}

/** Whether this OS has byte ranges, so the gate (and writer preference) exists. */
function gated(): boolean {
  return mechanism().byteRanges;
}

/** What a writer holds: the gate (undefined without byte ranges) and DATA_BYTE. */
interface WriteHold {
  readonly gate: Handle | undefined;
  readonly data: Handle;
  /** Both bytes were taken in one call, through `data` (the gate is then undefined). */
  readonly pair: boolean;
}

/** `w` with its timeout reduced by the time spent since `start`. */
function rest(w: Waiting, start: number): Waiting {
  if (w.timeout === Infinity || w.timeout === 0) return w;
  return { ...w, timeout: Math.max(0, w.timeout - (performance.now() - start)) };
}

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
 * - Writers are preferred on Linux and Windows: once a writer waits (in any
 *   process, Worker or lock object, with or without a timeout), new readers
 *   wait behind it, so a stream of readers cannot starve it; readers
 *   already in finish first. On macOS (flock: whole files only) preference
 *   is the kernel's, and a stream of readers can starve a writer (use a
 *   timeout). Within one isolate, async readers queue in arrival order, and
 *   so do async writers; when a writer leaves, every reader queued in the
 *   isolate gets in at once.
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
  /** DATA_BYTE, and GATE_BYTE (see the top of the file). */
  readonly #data: LockFile;
  readonly #gate: LockFile;
  readonly #name: string;
  #writer: WriteHold | undefined;
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
    this.#data = LockFile.for(this.path, this, DATA_BYTE);
    this.#gate = LockFile.for(this.path, this, GATE_BYTE);
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
    const handle = await this.#lockRead(w);
    return handle === undefined ? 0 : this.#holdRead(handle);
  }

  #readSync(w: Waiting): number {
    const handle = this.#lockReadSync(w);
    return handle === undefined ? 0 : this.#holdRead(handle);
  }

  /**
   * Fast path of a read where the OS can look at the gate (see the top of the
   * file): no writer on the gate, so DATA_BYTE shared at once. @returns its
   * handle, or undefined when a writer is at the gate or holds DATA_BYTE.
   */
  #readPastGate(): Handle | undefined {
    return this.#gate.wouldLock(false) === true ? this.#data.tryLock(false) : undefined;
  }

  /** Passes the gate, then takes DATA_BYTE shared. @returns its handle, or undefined. */
  async #lockRead(w: Waiting): Promise<Handle | undefined> {
    if (!gated()) return await this.#data.lock(false, w);
    w.signal?.throwIfAborted();
    const direct = this.#readPastGate();
    if (direct !== undefined) return direct;
    const start = performance.now();
    const pass = await this.#gate.lock(false, w);
    if (pass === undefined) return undefined;
    try {
      // Busy only while a process that ignores the gate writes (fasteners on Windows).
      return this.#data.tryLock(false) ?? await this.#data.lock(false, rest(w, start));
    } finally {
      this.#gate.unlock(pass, false);
    }
  }

  #lockReadSync(w: Waiting): Handle | undefined {
    if (!gated()) return this.#data.lockSync(false, w, this.#name);
    w.signal?.throwIfAborted();
    const direct = this.#readPastGate();
    if (direct !== undefined) return direct;
    const start = performance.now();
    const pass = this.#gate.lockSync(false, w, this.#name);
    if (pass === undefined) return undefined;
    try {
      return this.#data.lockSync(false, rest(w, start), this.#name);
    } finally {
      this.#gate.unlock(pass, false);
    }
  }

  /**
   * Fast path of a write where the OS locks two bytes in one call: nobody in
   * and no writer at the gate, so the gate and DATA_BYTE at once (one call to
   * take, one to release, instead of two each). @returns the hold, or undefined.
   */
  #writePair(): WriteHold | undefined {
    const both = this.#data.tryLockPair(true, this.#gate);
    return both === null || both === undefined
      ? undefined
      : { gate: undefined, data: both, pair: true };
  }

  /** Takes the gate, then DATA_BYTE exclusively. @returns both, or undefined. */
  async #lockWrite(w: Waiting): Promise<WriteHold | undefined> {
    if (!gated()) {
      const data = await this.#data.lock(true, w);
      return data === undefined ? undefined : { gate: undefined, data, pair: false };
    }
    w.signal?.throwIfAborted();
    // Not past writers of this isolate already queued for the gate.
    const pair = this.#gate.queued(true) ? undefined : this.#writePair();
    if (pair !== undefined) return pair;
    const start = performance.now();
    const gate = await this.#gate.lock(true, w);
    if (gate === undefined) return undefined;
    let data: Handle | undefined;
    try {
      data = this.#data.tryLock(true);
    } catch (error) {
      this.#gate.unlock(gate, true);
      throw error;
    }
    if (data !== undefined) return { gate, data, pair: false };
    if (!w.blocking || w.timeout === 0) {
      this.#gate.unlock(gate, true);
      return undefined;
    }
    // Holding the gate: only the readers already in hold DATA_BYTE, and none can join them.
    if (waitsForever(w)) {
      try {
        return { gate, data: await this.#data.lockBounded(true), pair: false };
      } catch (error) {
        this.#gate.unlock(gate, true);
        throw error;
      }
    }
    // A timed or abortable writer cannot park a wait it might leave: it polls
    // (its readers leave within their holds), finely (see POLL_STEP_MS).
    const deadline = start + w.timeout;
    try {
      for (let n = 1;; n++) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        await pause(Math.min(POLL_STEP_MS * n, POLL_MAX_MS, left), w.signal);
        data = this.#data.tryLock(true);
        if (data !== undefined) return { gate, data, pair: false };
      }
      // A last try at the deadline.
      data = this.#data.tryLock(true);
    } finally {
      if (data === undefined) this.#gate.unlock(gate, true);
    }
    return data === undefined ? undefined : { gate, data, pair: false };
  }

  #lockWriteSync(w: Waiting): WriteHold | undefined {
    if (!gated()) {
      const data = this.#data.lockSync(true, w, this.#name);
      return data === undefined ? undefined : { gate: undefined, data, pair: false };
    }
    w.signal?.throwIfAborted();
    const pair = this.#writePair();
    if (pair !== undefined) return pair;
    const start = performance.now();
    const gate = this.#gate.lockSync(true, w, this.#name);
    if (gate === undefined) return undefined;
    let data: Handle | undefined;
    try {
      const left = rest(w, start);
      // Holding the gate, the wait is short: a timed wait polls finely (see POLL_STEP_MS).
      data = this.#data.lockSync(
        true,
        left.timeout === Infinity ? left : { ...left, delay: POLL_STEP_MS, maxDelay: POLL_MAX_MS },
        this.#name,
      );
    } finally {
      if (data === undefined) this.#gate.unlock(gate, true);
    }
    return data === undefined ? undefined : { gate, data, pair: false };
  }

  /**
   * Acquires the write (exclusive) lock without blocking the event loop.
   *
   * @param options Blocking, timeout, poll delays (milliseconds), abort signal.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) when the file cannot be opened or locked.
   */
  async acquireWriteLock(options?: AcquireOptions): Promise<boolean> {
    const hold = await this.#lockWrite(parseOptions(options));
    return hold !== undefined && this.#holdWrite(hold);
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
    const hold = this.#lockWriteSync(parseOptions(options));
    return hold !== undefined && this.#holdWrite(hold);
  }

  #holdRead(handle: Handle): number {
    this.#readers.set(++this.#turn, handle);
    return this.#turn;
  }

  #holdWrite(hold: WriteHold): true {
    this.#writer = hold;
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
    this.#data.unlock(handle, false);
  }

  /**
   * Releases the write lock.
   *
   * @throws {LockError} when this object does not hold it.
   */
  releaseWriteLock(): void {
    const hold = this.#writer;
    if (hold === undefined) {
      throw misuse(this.#name, "releaseWriteLock() without the write lock held", this.path);
    }
    this.#writer = undefined;
    if (hold.pair) return this.#data.unlockPair(hold.data, true, this.#gate);
    try {
      this.#data.unlock(hold.data, true);
    } finally {
      if (hold.gate !== undefined) this.#gate.unlock(hold.gate, true);
    }
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
    return withLockFile(this.#data, false, () => this.readLock(options), fn, this.#name);
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
    return withLockFile(this.#data, true, () => this.writeLock(options), fn, this.#name);
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
