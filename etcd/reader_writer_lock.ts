/**
 * {@linkcode EtcdReaderWriterLock}: a shared/exclusive lock held in etcd.
 *
 * @module
 */

import { badArgument, misuse, timedOut } from "../errors.ts";
import { type AcquireOptions, parseOptions, type Waiting } from "../locks/_options.ts";
import { type EtcdClient, sessionOf } from "./client.ts";
import { type EtcdGuard, type EtcdHeld, makeEtcdGuard, runHeld } from "./_guard.ts";
import { type Hold, queue, type Recipe } from "./_hold.ts";
import { checkName } from "./lock.ts";
import { rwRecipe } from "./_rwmutex.ts";
import type { Session } from "./_session.ts";

/**
 * A reader-writer lock held in etcd, with the key scheme of etcd's
 * `contrib/recipes` RWMutex: readers share it, a writer holds it alone.
 *
 * Contract:
 * - FIFO across clients: each acquisition takes its place in line when it
 *   starts, so a writer is never starved by a stream of readers (readers
 *   coming after a waiting writer wait behind it, and a reader's
 *   `blocking: false` try while a writer waits gets `false`).
 * - Not reentrant; one object may hold several read locks at once (from
 *   several async tasks), released newest first by `releaseReadLock()`.
 * - Guards and callbacks carry the hold's `fencingToken` (its key's create
 *   revision: a writer's is greater than every earlier holder's) and a
 *   lost-lock `signal`, as {@linkcode EtcdLock}'s.
 * - Network I/O: there are no `*Sync` methods.
 *
 * @example
 * ```ts ignore
 * import { EtcdClient, EtcdReaderWriterLock } from "@fasteners/fasteners/etcd";
 *
 * await using etcd = new EtcdClient({ endpoints: "http://127.0.0.1:2379" });
 * const rw = new EtcdReaderWriterLock(etcd, "config");
 * const value = await rw.withReadLock(() => "read while no writer holds it");
 * await rw.withWriteLock(async ({ fencingToken }) => {
 *   // alone here; pass fencingToken along with the write
 * });
 * ```
 */
export class EtcdReaderWriterLock {
  /** The lock's name: its keys are `<name>/read/<n>` and `<name>/write/<n>`. */
  readonly name: string;
  readonly #session: Session;
  readonly #read: Recipe;
  readonly #write: Recipe;
  readonly #label: string;
  readonly #reads: Hold[] = [];
  #writeHold: Hold | undefined;

  /**
   * Makes a lock object. Nothing is sent until it is acquired.
   *
   * @param client The client to lock through.
   * @param name The lock's name (an etcd key prefix, without the trailing `/`).
   * @throws {TypeError} when `client` is not an `EtcdClient` or `name` not a string.
   * @throws {RangeError} for an empty name.
   */
  constructor(client: EtcdClient, name: string) {
    this.#session = sessionOf(client, "client");
    this.name = checkName(name);
    this.#label = `EtcdReaderWriterLock(${JSON.stringify(name)})`;
    this.#read = rwRecipe(name, false, this.#label);
    this.#write = rwRecipe(name, true, this.#label);
  }

  /** Whether this object holds the write lock. */
  get writeAcquired(): boolean {
    return this.#writeHold !== undefined && !this.#writeHold.ended;
  }

  /** How many read locks this object holds (lost ones not counted). */
  get readAcquired(): number {
    return this.#reads.filter((hold) => !hold.ended).length;
  }

  async #acquire(write: boolean, w: Waiting): Promise<Hold | undefined> {
    const hold = await queue(this.#session, write ? this.#write : this.#read, w, () => {});
    if (hold !== undefined) {
      if (write) this.#writeHold = hold;
      else this.#reads.push(hold);
    }
    return hold;
  }

  #release = (hold: Hold): Promise<void> => {
    if (this.#writeHold === hold) this.#writeHold = undefined;
    const i = this.#reads.indexOf(hold);
    if (i >= 0) this.#reads.splice(i, 1);
    return hold.release();
  };

  /**
   * Acquires a read lock: shared with other readers, after every writer
   * that lined up earlier.
   *
   * @param options `blocking`, `timeout` (ms), `signal`.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) as {@linkcode EtcdLock.acquire}.
   */
  async acquireReadLock(options?: AcquireOptions): Promise<boolean> {
    return (await this.#acquire(false, parseOptions(options))) !== undefined;
  }

  /**
   * Acquires the write lock: alone, after every acquisition that lined up earlier.
   *
   * @param options `blocking`, `timeout` (ms), `signal`.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) as {@linkcode EtcdLock.acquire}.
   */
  async acquireWriteLock(options?: AcquireOptions): Promise<boolean> {
    return (await this.#acquire(true, parseOptions(options))) !== undefined;
  }

  /**
   * Releases the newest read lock this object holds (resolves after a loss).
   *
   * @returns When its key is deleted.
   * @throws {LockError} (as a rejection) when this object holds no read lock.
   */
  releaseReadLock(): Promise<void> {
    const hold = this.#reads.at(-1);
    if (hold === undefined) {
      return Promise.reject(misuse(this.#label, "releaseReadLock() without a read lock"));
    }
    return this.#release(hold);
  }

  /**
   * Releases the write lock (resolves after a loss).
   *
   * @returns When its key is deleted.
   * @throws {LockError} (as a rejection) when this object does not hold it.
   */
  releaseWriteLock(): Promise<void> {
    const hold = this.#writeHold;
    if (hold === undefined) {
      return Promise.reject(misuse(this.#label, "releaseWriteLock() without the write lock"));
    }
    return this.#release(hold);
  }

  async #guard(write: boolean, options: AcquireOptions | undefined): Promise<EtcdGuard> {
    const w = parseOptions(options);
    const hold = await this.#acquire(write, w);
    if (hold === undefined) {
      throw timedOut(`${this.#label} (${write ? "write" : "read"})`, w.blocking ? w.timeout : 0);
    }
    return makeEtcdGuard(hold, this.#release, this.#label);
  }

  /**
   * Acquires a read lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode EtcdReaderWriterLock.acquireReadLock}.
   * @returns A guard with the hold's `fencingToken` and `signal`.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  readLock(options?: AcquireOptions): Promise<EtcdGuard> {
    return this.#guard(false, options);
  }

  /**
   * Acquires the write lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode EtcdReaderWriterLock.acquireWriteLock}.
   * @returns A guard with the hold's `fencingToken` and `signal`.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  writeLock(options?: AcquireOptions): Promise<EtcdGuard> {
    return this.#guard(true, options);
  }

  /**
   * Runs `fn` holding a read lock, released however `fn` ends.
   *
   * @param fn The reading section; gets `fencingToken` and `signal`.
   * @param options As for {@linkcode EtcdReaderWriterLock.acquireReadLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async withReadLock<T>(
    fn: (held: EtcdHeld) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    return await runHeld(await this.readLock(options), fn);
  }

  /**
   * Runs `fn` holding the write lock, released however `fn` ends.
   *
   * @param fn The writing section; gets `fencingToken` and `signal`.
   * @param options As for {@linkcode EtcdReaderWriterLock.acquireWriteLock}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async withWriteLock<T>(
    fn: (held: EtcdHeld) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    return await runHeld(await this.writeLock(options), fn);
  }
}
