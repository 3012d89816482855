/**
 * Locks beyond one machine, held in an etcd v3 cluster (3.4 or later):
 * {@linkcode EtcdLock} (etcd's own `concurrency.Mutex`, so it excludes with
 * `etcdctl lock` and Go programs) and {@linkcode EtcdReaderWriterLock}
 * (the `contrib/recipes` RWMutex: FIFO, writers never starved), both made on
 * an {@linkcode EtcdClient} that owns one lease for all of them.
 *
 * They speak to etcd's JSON gateway with `fetch` (no dependency), so they
 * need `--allow-net=host:port` for each endpoint, and have no `*Sync`
 * methods. Every hold carries a fencing token (strictly increasing from one
 * holder to the next) and a signal that aborts the moment the hold can no
 * longer be trusted: pass the token to what the lock guards, and have it
 * reject tokens older than the last it accepted.
 *
 * @example
 * ```ts ignore
 * import { EtcdClient, EtcdLock } from "@fasteners/fasteners/etcd";
 *
 * await using etcd = new EtcdClient({
 *   endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
 *   ttl: 10_000,
 * });
 * const lock = new EtcdLock(etcd, "jobs/nightly");
 * await lock.withLock(async ({ fencingToken, signal }) => {
 *   // Only one process on any machine runs this at a time.
 * });
 * ```
 *
 * @module
 */

export { DEFAULT_TTL, EtcdClient, type EtcdClientOptions, MIN_TTL } from "./client.ts";
export { EtcdLock } from "./lock.ts";
export { EtcdReaderWriterLock } from "./reader_writer_lock.ts";
export type { EtcdGuard, EtcdHeld } from "./_guard.ts";
export type { AcquireOptions } from "../locks/_options.ts";
export { LockError, LockTimeoutError } from "../errors.ts";
