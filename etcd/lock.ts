/**
 * {@linkcode EtcdLock}: an exclusive lock held in etcd, between processes on
 * any number of machines.
 *
 * @module
 */

import { badArgument, misuse, timedOut } from "../errors.ts";
import { type AcquireOptions, parseOptions } from "../locks/_options.ts";
import { type EtcdClient, sessionOf } from "./client.ts";
import { type EtcdGuard, type EtcdHeld, makeEtcdGuard, runHeld } from "./_guard.ts";
import type { Hold, Recipe } from "./_hold.ts";
import { lockMutex, mutexRecipe } from "./_mutex.ts";
import type { Session } from "./_session.ts";

/**
 * An exclusive lock held in etcd: etcd's own `concurrency.Mutex`, so it
 * excludes with `etcdctl lock <name>` and Go's `concurrency.NewMutex` on
 * the same name.
 *
 * Contract:
 * - Starts unlocked. Exclusion holds between clients anywhere, and between
 *   lock objects and async tasks of one client (they line up inside the
 *   client first). Not reentrant. Waiters are served in order (FIFO); each
 *   watches only the key just before its own, so a release wakes one waiter.
 * - Every hold has a {@linkcode EtcdLock.fencingToken} that strictly grows
 *   from one holder to the next, and a {@linkcode EtcdLock.signal} that aborts
 *   (reason: a `LockError`) when the hold can no longer be trusted:
 *   `"LEASE_EXPIRED"` when the lease could not be renewed in time or was
 *   revoked, `"KEY_DELETED"` when someone deleted the key. A lock can be lost
 *   like this (a pause longer than the ttl is enough), so pass the token to
 *   the resource and have it reject tokens older than the last it saw.
 * - When the holding process dies, its lease expires after the client's ttl
 *   and the next waiter gets the lock.
 * - Its keys live under `<name>/`, so do not nest lock names (`jobs` and
 *   `jobs/nightly` would contend with each other), exactly as with `etcdctl lock`.
 * - Network I/O: there are no `*Sync` methods.
 *
 * @example
 * ```ts ignore
 * import { EtcdClient, EtcdLock } from "@fasteners/fasteners/etcd";
 *
 * await using etcd = new EtcdClient({ endpoints: "http://127.0.0.1:2379" });
 * const lock = new EtcdLock(etcd, "jobs/nightly");
 * await lock.withLock(async ({ fencingToken, signal }) => {
 *   await fetch("http://store/write", { method: "POST", body: `${fencingToken}`, signal });
 * });
 * if (await lock.acquire({ timeout: 1_000 })) {
 *   try {
 *     // ...
 *   } finally {
 *     await lock.release();
 *   }
 * }
 * ```
 */
export class EtcdLock {
  /** The lock's name: its keys are `<name>/<lease id in hex>`. */
  readonly name: string;
  readonly #session: Session;
  readonly #recipe: Recipe;
  readonly #label: string;
  #hold: Hold | undefined;

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
    this.#label = `EtcdLock(${JSON.stringify(name)})`;
    this.#recipe = mutexRecipe(name, this.#label);
  }

  /** Whether this object holds the lock (`false` again once the hold was lost). */
  get acquired(): boolean {
    return this.#hold !== undefined && !this.#hold.ended;
  }

  /** The current hold's fencing token, or `undefined` when not held. */
  get fencingToken(): bigint | undefined {
    return this.acquired ? this.#hold!.token : undefined;
  }

  /** The current hold's lost-lock signal, or `undefined` when not held. */
  get signal(): AbortSignal | undefined {
    return this.acquired ? this.#hold!.signal : undefined;
  }

  /**
   * Acquires the lock, waiting as the options say. A `false`, a timeout or
   * an abort leaves no key in etcd.
   *
   * @param options `blocking`, `timeout` (ms), `signal`.
   * @returns `true` when acquired, `false` when busy (non-blocking) or timed out.
   * @throws {LockError} (as a rejection) `"UNAVAILABLE"` when no endpoint answered
   *   for a whole ttl (at once for `blocking: false`), `"AUTH"`, `"CLOSED"`, or the
   *   lease's loss while waiting.
   * @throws {RangeError} (as a rejection) for a negative or NaN time.
   */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const hold = await lockMutex(
      this.#session,
      this.name,
      this.#recipe,
      parseOptions(options),
      () => {},
    );
    if (hold === undefined) return false;
    this.#hold = hold;
    return true;
  }

  /**
   * Releases the lock. After a loss (reported by the signal) it resolves.
   *
   * @returns When the key is deleted.
   * @throws {LockError} (as a rejection) when this object does not hold the lock,
   *   or `"UNAVAILABLE"` when the delete found no endpoint (the key then goes
   *   with the lease).
   */
  release(): Promise<void> {
    const hold = this.#hold;
    if (hold === undefined) {
      return Promise.reject(misuse(this.#label, "release() of a lock that is not held"));
    }
    return this.#release(hold);
  }

  #release = (hold: Hold): Promise<void> => {
    if (this.#hold === hold) this.#hold = undefined;
    return hold.release();
  };

  /**
   * Acquires the lock and returns a guard for `await using`.
   *
   * @param options As for {@linkcode EtcdLock.acquire}.
   * @returns A guard with the hold's `fencingToken` and `signal`.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async lock(options?: AcquireOptions): Promise<EtcdGuard> {
    const w = parseOptions(options);
    const hold = await lockMutex(this.#session, this.name, this.#recipe, w, () => {});
    if (hold === undefined) throw timedOut(this.#label, w.blocking ? w.timeout : 0);
    this.#hold = hold;
    return makeEtcdGuard(hold, this.#release, this.#label);
  }

  /**
   * Runs `fn` holding the lock and releases it however `fn` ends. `fn` gets
   * the hold's `fencingToken` and `signal`; a loss does not mask its result.
   *
   * @param fn The critical section.
   * @param options As for {@linkcode EtcdLock.acquire}.
   * @returns What `fn` returns.
   * @throws {LockTimeoutError} (as a rejection) when not acquired.
   */
  async withLock<T>(fn: (held: EtcdHeld) => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
    return await runHeld(await this.lock(options), fn);
  }
}

/**
 * Checks a lock name.
 *
 * @internal
 */
export function checkName(name: unknown): string {
  if (typeof name !== "string") throw badArgument("type", "name", name, "a string");
  if (name === "") throw badArgument("range", "name", name, "a non-empty string");
  return name;
}
