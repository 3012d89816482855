// Queueing on etcd, shared by both recipes (etcd's Mutex and the recipes'
// RWMutex line up the same way; they differ only in their keys and in which
// earlier key blocks them):
//
// 1. One txn: "if my key does not exist, then [range: the last key before
//    mine that blocks me] and [put my key under the lease]". The range runs
//    before the put, in the same revision, so it names my predecessor
//    without knowing my revision yet. No predecessor: the lock is mine
//    (one round trip when the lease exists).
// 2. Otherwise watch only that predecessor's key for its deletion, from the
//    revision after the txn's (no herd: each waiter watches one key, and a
//    deletion wakes one waiter). Idle waiting sends nothing but the lease's
//    keep-alives. Starting at the *next* revision matters: etcd serves a
//    watch that starts at or below its current revision from a catch-up loop
//    that runs every 100 ms, and one that starts above it at once.
// 3. On its deletion: when it was the only key before mine (the range's
//    count said so), the lock is mine at once, since no key can be created
//    below mine later: a handoff between two clients is the holder's delete
//    and one watch event. Otherwise one txn reads both "the last two blocking
//    keys below my revision" and "my key": none and mine present means held;
//    another one (a waiter before me gave up, or still holds) means watch it.
//
// The fencing token is my key's create revision: etcd's revisions only
// grow, and a holder's key was created after every earlier holder's.
//
// A `false`, timeout, abort or error deletes the key before the promise
// settles; when even that delete finds no endpoint, the acquisition fails
// "UNAVAILABLE" (not `false`), and the delete goes on in the background
// (the key also goes when the lease expires).

import { type LockError, remoteError } from "../errors.ts";
import { MAX_TIMER, type Waiting } from "../locks/_options.ts";
import type { Lease, Session } from "./_session.ts";
import {
  decodeKey,
  encodeKey,
  int,
  type KeyValue,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type TxnResponse,
} from "./_wire.ts";

/**
 * How long the delete of a key that must not stay (timeout, abort, false)
 * may take before the acquisition settles anyway with "UNAVAILABLE": short,
 * since the caller's timeout has already passed.
 */
const CLEANUP_MS = 500;
/**
 * A hold's deletion watch starts this long after the hold (from the hold's
 * revision, so a deletion in between is still reported): a lock released
 * sooner costs no watch request at all.
 */
const DELETE_WATCH_DELAY_MS = 25;

/** What a recipe says about its place in line. */
export interface Recipe {
  /** Names the lock in messages, e.g. `EtcdLock("jobs")`. */
  readonly label: string;
  /** The key to create under `lease` (`attempt` counts retries after a collision). */
  key(lease: Lease, attempt: number): string;
  /** True when the key is per lease (etcd's Mutex): a foreign value there is our own stale key. */
  readonly perLease: boolean;
  /** True when my own key lies in my blockers' range (the Mutex, a writer), sorting after them. */
  readonly ownInRange: boolean;
  /** The range of keys that block mine; with `below`, only those with a revision below it. */
  blockers(below?: bigint): RangeRequest;
}

/** A held lock: its key, token, lost-lock signal, and release. */
export class Hold {
  readonly key: string;
  readonly token: bigint;
  readonly #session: Session;
  readonly #lease: Lease;
  readonly #controller = new AbortController();
  readonly #onEnd: () => void;
  readonly #onLost: (error: LockError) => void;
  #timer: { cancel(): void } | undefined;
  #watch: { stop(): void } | undefined;
  #ended = false;

  constructor(session: Session, lease: Lease, key: string, token: bigint, onEnd: () => void) {
    this.#session = session;
    this.#lease = lease;
    this.key = key;
    this.token = token;
    this.#onEnd = onEnd;
    this.#onLost = (error) => this.lose(error);
    lease.listeners.add(this.#onLost);
    this.#timer = session.later(() => {
      this.#timer = undefined;
      this.#watchFrom(token + 1n);
    }, DELETE_WATCH_DELAY_MS);
  }

  /** Aborts when the hold can no longer be trusted (reason: a `LockError`). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True once released or lost. */
  get ended(): boolean {
    return this.#ended;
  }

  #watchFrom(revision: bigint): void {
    if (this.#ended) return;
    this.#watch = this.#session.watchDelete(this.key, revision, Infinity, (outcome) => {
      this.#watch = undefined;
      if (outcome === "deleted") {
        this.lose(remoteError(
          "KEY_DELETED",
          `${this.key}: the lock's key was deleted by someone else: the lock is lost`,
        ));
      } else if (outcome === "reset") {
        // History was compacted: look at the key itself, then watch on.
        this.#session.track(this.#recheck());
      }
    });
  }

  async #recheck(): Promise<void> {
    const range = await this.#session.request<{ header?: { revision?: string }; kvs?: KeyValue[] }>(
      "/v3/kv/range",
      { key: encodeKey(this.key), keys_only: true },
      { deadline: performance.now() + this.#session.ttlMs },
    ).catch(() => undefined);
    if (range === undefined || this.#ended) return;
    if (range.kvs?.length && int(range.kvs[0].create_revision) === this.token) {
      this.#watchFrom(int(range.header?.revision) + 1n);
    } else {
      this.lose(
        remoteError("KEY_DELETED", `${this.key}: the lock's key is gone: the lock is lost`),
      );
    }
  }

  /** Marks the hold ended; returns its deletion watch, for the caller to stop. */
  #end(): { stop(): void } | undefined {
    this.#ended = true;
    this.#timer?.cancel();
    const watch = this.#watch;
    this.#watch = undefined;
    this.#lease.listeners.delete(this.#onLost);
    return watch;
  }

  /** Ends the hold as lost: aborts the signal with `error`. */
  lose(error: LockError): void {
    if (this.#ended) return;
    this.#end()?.stop();
    this.#controller.abort(error);
    this.#session.unretain(this.#lease);
    this.#onEnd();
  }

  /** Deletes the key (nothing when the hold was lost: the loss was reported by the signal). */
  async release(): Promise<void> {
    if (this.#ended) return;
    // The deletion watch is stopped after the delete, not before: closing a
    // watch stream just before the delete measurably delays the delete (and
    // so the handoff); the DELETE event it may still see is ignored, since
    // the hold has ended.
    const watch = this.#end();
    try {
      if (this.#lease.lost === undefined) {
        await this.#session.request("/v3/kv/deleterange", { key: encodeKey(this.key) }, {
          deadline: performance.now() + this.#session.ttlMs,
        });
      }
    } catch (error) {
      if (!this.#session.closed) throw error;
    } finally {
      watch?.stop();
      this.#session.unretain(this.#lease);
      this.#onEnd();
    }
  }
}

let nonces = 0;
const NONCE_PREFIX = crypto.randomUUID().slice(0, 8);

const TIMED_OUT = Symbol("timed out");

/**
 * Lines up on etcd as `recipe` says and waits as `w` says.
 *
 * @returns The hold, or `undefined` when busy (non-blocking) or timed out.
 * @throws {LockError} "UNAVAILABLE", "LEASE_EXPIRED", "KEY_DELETED", "AUTH", "CLOSED".
 */
export async function queue(
  session: Session,
  recipe: Recipe,
  w: Waiting,
  onEnd: () => void,
): Promise<Hold | undefined> {
  session.throwIfClosed();
  w.signal?.throwIfAborted();
  if (w.timeout === 0) w = { ...w, blocking: false };
  const stop = new AbortController();
  const signal = stop.signal;
  const onAbort = () => stop.abort(w.signal?.reason);
  w.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = w.blocking && w.timeout !== Infinity
    ? setTimeout(() => stop.abort(TIMED_OUT), Math.min(w.timeout, MAX_TIMER))
    : undefined;
  // How long a call may go unanswered before it fails "UNAVAILABLE".
  const patience = () => w.blocking ? performance.now() + session.ttlMs : 0;
  const nonce = encodeKey(`${NONCE_PREFIX}-${++nonces}`);
  const onLost = (error: LockError) => stop.abort(error);
  // Requests take the signal only when something may cut them short mid-way
  // (the caller's signal, a timeout): a request without one costs less, and a
  // lease loss interrupts the waits between requests anyway.
  const requestSignal = w.signal === undefined && timer === undefined ? undefined : signal;
  let lease: Lease | undefined;
  let key: string | undefined;
  let sent = false;
  let myRev = 0n;
  const hold = (): Hold => {
    if (signal.aborted) throw signal.reason; // lost, aborted or timed out during the last request
    lease!.listeners.delete(onLost);
    const held = new Hold(session, lease!, key!, myRev, onEnd);
    lease = undefined; // now the hold's
    return held;
  };
  try {
    let blocker: string | undefined;
    let from = 0n;
    // True when the blocker is the only key before mine: its deletion alone
    // makes the lock mine (no key can be created below mine later), so the
    // waiter needs no check after it.
    let decisive = false;
    // Set when a serializable check met a member behind my own key.
    let stale = false;
    for (let attempt = 0; myRev === 0n; attempt++) {
      if (attempt > 3) throw remoteError("ETCD", `${recipe.label}: could not create a key`);
      if (lease === undefined) {
        lease = await session.lease(requestSignal, patience());
        session.retain(lease);
        lease.listeners.add(onLost);
        if (lease.lost !== undefined) throw lease.lost;
      }
      key = recipe.key(lease, attempt);
      const encoded = encodeKey(key);
      const blockers: RequestOp = { request_range: recipe.blockers() };
      sent = true;
      let txn: TxnResponse;
      try {
        txn = await session.request<TxnResponse>("/v3/kv/txn", {
          compare: [{ result: "EQUAL", target: "CREATE", key: encoded, create_revision: "0" }],
          success: [blockers, {
            request_put: { key: encoded, value: nonce, lease: String(lease.id) },
          }],
          failure: [{ request_range: { key: encoded } }],
        }, { signal: requestSignal, deadline: patience() });
      } catch (error) {
        if ((error as LockError).code !== "LEASE_EXPIRED" || attempt > 0) throw error;
        // The lease expired while unused: nothing was created; take a new one.
        sent = false;
        lease.listeners.delete(onLost);
        session.unretain(lease);
        session.lose(lease, error as LockError, false);
        lease = undefined;
        continue;
      }
      const responses = txn.responses ?? [];
      if (txn.succeeded) {
        myRev = int(txn.header?.revision);
        const kvs = responses[0]?.response_range?.kvs ?? [];
        if (kvs.length === 0) return hold();
        blocker = decodeKey(kvs[0].key);
        from = myRev + 1n;
        // `count` counts every key the range matched, before its limit.
        decisive = int(responses[0]?.response_range?.count) === 1n;
        continue;
      }
      const mine = responses[0]?.response_range?.kvs?.[0];
      if (mine !== undefined && mine.value === nonce) {
        // Our own txn, retried after a lost answer: it did apply.
        myRev = int(mine.create_revision);
      } else if (recipe.perLease) {
        // A key of this lease left by an earlier hold whose delete failed: it
        // must not lend its old revision to this hold.
        await session.request("/v3/kv/deleterange", { key: encoded }, {
          signal: requestSignal,
          deadline: patience(),
        });
      }
    }
    for (;;) {
      if (blocker !== undefined) {
        if (!w.blocking) {
          await cleanup();
          return undefined;
        }
        if ((await waitDelete(blocker, from)) === "deleted" && decisive) return hold();
      }
      // Who blocks me now (the last two blocking keys below mine), and is my
      // key still there?
      let kvs: KeyValue[];
      let revision: bigint;
      let mine: boolean;
      if (recipe.ownInRange) {
        // My key sorts first in my own blockers' range: one range answers
        // both. Serializable (read on the member, no Raft round): a state at
        // or after my key's revision that shows no key below mine is final,
        // since no key can be created below mine later; an older state (a
        // lagging member) is asked again linearizably.
        const range = await session.request<RangeResponse>("/v3/kv/range", {
          ...recipe.blockers(myRev + 1n),
          limit: "3",
          serializable: !stale,
        }, { signal: requestSignal, deadline: patience() });
        revision = int(range.header?.revision);
        const found = range.kvs ?? [];
        mine = found.length > 0 && decodeKey(found[0].key) === key;
        kvs = mine ? found.slice(1) : found;
        if (!mine && revision < myRev && !stale) {
          stale = true;
          blocker = undefined; // check again at once
          continue;
        }
      } else {
        const check = await session.request<TxnResponse>("/v3/kv/txn", {
          success: [
            { request_range: { ...recipe.blockers(myRev), limit: "2" } },
            { request_range: { key: encodeKey(key!), keys_only: true } },
          ],
        }, { signal: requestSignal, deadline: patience() });
        const responses = check.responses ?? [];
        revision = int(check.header?.revision);
        mine = (responses[1]?.response_range?.kvs?.length ?? 0) > 0;
        kvs = responses[0]?.response_range?.kvs ?? [];
      }
      if (!mine) {
        throw lease!.lost ??
          remoteError("KEY_DELETED", `${recipe.label}: its key was deleted while it waited`);
      }
      if (kvs.length === 0) return hold();
      blocker = decodeKey(kvs[0].key);
      from = revision + 1n;
      decisive = kvs.length === 1;
    }
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    let unavailable: LockError | undefined;
    if (sent && lease !== undefined && lease.lost === undefined && !session.closed) {
      unavailable = await cleanup().catch((e) => e);
    }
    if (session.closed) throw session.closeSignal.reason;
    if (unavailable !== undefined) throw unavailable;
    if (reason === TIMED_OUT) return undefined;
    const cause = (reason as LockError | undefined)?.cause;
    if ((cause as LockError | undefined)?.code === "UNAVAILABLE") throw cause;
    throw reason;
  } finally {
    clearTimeout(timer);
    w.signal?.removeEventListener("abort", onAbort);
    if (lease !== undefined) {
      lease.listeners.delete(onLost);
      session.unretain(lease);
    }
  }

  /** Deletes our key; when no endpoint answers soon, keeps trying in the background. */
  async function cleanup(): Promise<void> {
    sent = false;
    const body = { key: encodeKey(key!) };
    try {
      await session.request("/v3/kv/deleterange", body, {
        deadline: performance.now() + CLEANUP_MS,
      });
    } catch (error) {
      // Refused (e.g. "AUTH"), not unanswered: a retry would be refused too.
      if ((error as LockError).code !== "UNAVAILABLE") throw error;
      session.track(
        session.request("/v3/kv/deleterange", body, {
          deadline: performance.now() + session.ttlMs,
        }),
      );
      throw remoteError(
        "UNAVAILABLE",
        `${recipe.label}: gave up, but could not yet delete its key ${key} ` +
          `(it is deleted in the background, or expires with the lease)`,
        error,
      );
    }
  }

  function waitDelete(blocker: string, from: bigint): Promise<"deleted" | "reset"> {
    return new Promise((resolve, reject) => {
      const watch = session.watchDelete(blocker, from, session.ttlMs, (outcome) => {
        signal.removeEventListener("abort", onStop);
        if (typeof outcome === "string") resolve(outcome);
        else reject(outcome);
      });
      const onStop = () => {
        watch.stop();
        reject(signal.reason);
      };
      if (signal.aborted) onStop();
      else signal.addEventListener("abort", onStop, { once: true });
    });
  }
}
