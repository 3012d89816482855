/**
 * {@linkcode EtcdClient}: the connection to an etcd cluster that
 * {@linkcode EtcdLock} and {@linkcode EtcdReaderWriterLock} lock through.
 *
 * @module
 */

import { badArgument } from "../errors.ts";
import { Session } from "./_session.ts";

/** Options of {@linkcode EtcdClient}. */
export interface EtcdClientOptions {
  /**
   * The cluster's client URLs (`http://host:2379`); a call that gets no
   * answer from one moves on to the next.
   */
  endpoints: string | string[];
  /**
   * The lease's time to live in milliseconds: how long after this process
   * stops renewing (killed, paused, cut off) its locks are freed. Rounded up
   * to whole seconds (etcd's unit). Default 10 000, at least 2 000.
   */
  ttl?: number;
  /** The etcd user, when the cluster has authentication on. */
  username?: string;
  /** The etcd user's password. */
  password?: string;
}

/** The default lease ttl (ms): etcd's own `concurrency.Session` default is 60 s; locks want a quicker takeover. */
export const DEFAULT_TTL = 10_000;
/** The shortest ttl (ms): a renewal every ttl/3 must still fit in a slow round trip. */
export const MIN_TTL = 2_000;
/** The longest ttl (ms): etcd's own limit (`MaxLeaseTTL`, 9 000 000 000 s) is more than anyone needs. */
const MAX_TTL = 9_000_000_000_000;

const sessions = new WeakMap<EtcdClient, Session>();

/**
 * The session behind a client.
 *
 * @internal
 */
export function sessionOf(client: EtcdClient, what: string): Session {
  const session = client instanceof EtcdClient ? sessions.get(client) : undefined;
  if (session === undefined) throw badArgument("type", what, client, "an EtcdClient");
  return session;
}

/**
 * A connection to an etcd v3 cluster (3.4 or later), through its JSON
 * gateway with `fetch`: no dependency. It owns one lease for all the locks
 * made on it, granted on first use and renewed every ttl/3 while any of them
 * is held or waited for; every key of a lock is attached to it, so when the
 * process dies or stops renewing, its locks are freed after the ttl.
 *
 * Needs `--allow-net` for the endpoints' hosts and ports (e.g.
 * `--allow-net=10.0.0.1:2379,10.0.0.2:2379`). Close it when done: `close()`
 * (or `await using`) revokes the lease, which frees every lock of the client
 * at once (their `acquired` turns `false`, their signals abort), and stops
 * everything it runs in the background.
 *
 * @example
 * ```ts ignore
 * import { EtcdClient, EtcdLock } from "@fasteners/fasteners/etcd";
 *
 * await using etcd = new EtcdClient({ endpoints: "http://127.0.0.1:2379", ttl: 10_000 });
 * const lock = new EtcdLock(etcd, "jobs/nightly");
 * await lock.withLock(async ({ fencingToken, signal }) => {
 *   // Pass fencingToken to what the lock guards; stop when signal aborts.
 * });
 * ```
 */
export class EtcdClient implements AsyncDisposable {
  /** The endpoints, as given (normalised, without a trailing `/`). */
  readonly endpoints: readonly string[];
  /** The lease ttl in milliseconds, rounded up to whole seconds. */
  readonly ttl: number;

  /**
   * Makes a client. Nothing is sent until a lock is first acquired.
   *
   * @example Bad options throw at once, naming the value
   * ```ts
   * import { EtcdClient } from "@fasteners/fasteners/etcd";
   * import assert from "node:assert/strict";
   *
   * assert.throws(() => new EtcdClient({ endpoints: "10.0.0.1:2379" }), TypeError);
   * assert.throws(() => new EtcdClient({ endpoints: "http://10.0.0.1:2379", ttl: 500 }), RangeError);
   * ```
   *
   * @param options Endpoints, ttl (ms), credentials.
   * @throws {TypeError} for a missing or malformed endpoint, or a field of the wrong type.
   * @throws {RangeError} for a ttl below 2 000 ms or not a finite number.
   */
  constructor(options: EtcdClientOptions) {
    if (options === null || typeof options !== "object") {
      throw badArgument("type", "options", options, "an object with endpoints");
    }
    const { ttl = DEFAULT_TTL, username, password } = options;
    const list = typeof options.endpoints === "string" ? [options.endpoints] : options.endpoints;
    if (!Array.isArray(list) || list.length === 0) {
      throw badArgument(
        "type",
        "options.endpoints",
        options.endpoints,
        "a URL or a non-empty array of URLs",
      );
    }
    const endpoints = list.map((endpoint, i) => parseEndpoint(endpoint, `options.endpoints[${i}]`));
    if (typeof ttl !== "number") {
      throw badArgument("type", "options.ttl", ttl, "a number of milliseconds");
    }
    if (!Number.isFinite(ttl) || ttl < MIN_TTL || ttl > MAX_TTL) {
      throw badArgument("range", "options.ttl", ttl, `a number of milliseconds from ${MIN_TTL}`);
    }
    if (username !== undefined && typeof username !== "string") {
      throw badArgument("type", "options.username", username, "a string");
    }
    if (password !== undefined && typeof password !== "string") {
      throw badArgument("type", "options.password", "(hidden)", "a string");
    }
    const session = new Session(endpoints, ttl, username, password);
    sessions.set(this, session);
    this.endpoints = endpoints;
    this.ttl = session.ttlMs;
  }

  /** Whether {@linkcode EtcdClient.close} was called. */
  get closed(): boolean {
    return sessions.get(this)!.closed;
  }

  /**
   * Requests sent so far, by gateway path (`/v3/kv/txn`, `/v3/watch`, …):
   * what a lock costs, for tests and measurements.
   *
   * @returns A copy of the counts.
   */
  requestCounts(): Record<string, number> {
    return Object.fromEntries(sessions.get(this)!.counts);
  }

  /**
   * Revokes the lease and stops: held locks end (`acquired` turns `false`,
   * their signals abort with a `LockError` `"LEASE_EXPIRED"`), waiting
   * acquisitions reject with a `LockError` `"CLOSED"`, and nothing keeps
   * running. Later acquisitions reject with `"CLOSED"`. Calling it again
   * returns the same promise.
   *
   * @example
   * ```ts
   * import { EtcdClient } from "@fasteners/fasteners/etcd";
   * import assert from "node:assert/strict";
   *
   * const etcd = new EtcdClient({ endpoints: "http://127.0.0.1:2379" });
   * await etcd.close(); // nothing was sent: no lease to revoke
   * assert.equal(etcd.closed, true);
   * ```
   *
   * @returns When everything has stopped.
   */
  close(): Promise<void> {
    return sessions.get(this)!.close();
  }

  /**
   * Same as {@linkcode EtcdClient.close}, for `await using`.
   *
   * @returns When everything has stopped.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function parseEndpoint(endpoint: unknown, name: string): string {
  if (typeof endpoint !== "string") throw badArgument("type", name, endpoint, "a URL string");
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw badArgument("type", name, endpoint, "an http:// or https:// URL");
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
    throw badArgument("type", name, endpoint, "an http:// or https:// URL without query");
  }
  return url.origin + url.pathname.replace(/\/+$/, "");
}
