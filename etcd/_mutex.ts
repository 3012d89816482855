// etcd's `concurrency.Mutex` (client/v3/concurrency/mutex.go), key for key,
// so that `etcdctl lock <name>` and Go's `concurrency.NewMutex` exclude with
// us on the same name:
//
//   key      <name>/<lease id in lowercase hex>, created in a txn only if absent
//   holder   the key with the lowest create revision under the prefix <name>/
//   waiter   watches only the key created just before its own (the last key
//            under the prefix with a create revision below its own)
//
// Since the key is per lease, two lock objects or async tasks of one client
// on one name would share it: they first line up in a queue inside the client
// (`LocalQueue`), so only one of them at a time has a key in etcd.

import type { Waiting } from "../locks/_options.ts";
import { type Hold, queue, type Recipe } from "./_hold.ts";
import type { Session } from "./_session.ts";
import { encodeKey, prefixEnd, type RangeRequest } from "./_wire.ts";

/** A FIFO of the acquisitions of one client on one name; the head may use the etcd key. */
class LocalQueue {
  busy = false;
  readonly waiters: (() => void)[] = [];

  /** Waits for the head; `false` when `signal` says to stop (then it is not in line any more). */
  enter(signal: AbortSignal): Promise<boolean> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const turn = () => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(turn);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      };
      this.waiters.push(turn);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Hands the head to the next in line, or frees it. */
  leave(): void {
    const next = this.waiters.shift();
    if (next === undefined) this.busy = false;
    else next();
  }
}

const queues = new WeakMap<Session, Map<string, LocalQueue>>();

function localQueue(session: Session, name: string): LocalQueue {
  let byName = queues.get(session);
  if (byName === undefined) queues.set(session, byName = new Map());
  let q = byName.get(name);
  if (q === undefined) byName.set(name, q = new LocalQueue());
  return q;
}

function forget(session: Session, name: string, q: LocalQueue): void {
  if (!q.busy && q.waiters.length === 0) queues.get(session)?.delete(name);
}

/** The Mutex's place in line: its per-lease key, blocked by the last key created before it. */
export function mutexRecipe(name: string, label: string): Recipe {
  const prefix = name + "/";
  const key = encodeKey(prefix);
  const end = prefixEnd(prefix);
  return {
    label,
    perLease: true,
    ownInRange: true,
    key: (lease) => prefix + lease.hex,
    blockers(below?: bigint): RangeRequest {
      const range: RangeRequest = {
        key,
        range_end: end,
        sort_order: "DESCEND",
        sort_target: "CREATE",
        limit: "1",
        keys_only: true,
      };
      if (below !== undefined) range.max_create_revision = String(below - 1n);
      return range;
    },
  };
}

/**
 * Acquires the Mutex `name` for this client: first the client's own queue,
 * then etcd's.
 *
 * @returns The hold, or `undefined` when busy (non-blocking) or timed out.
 */
export async function lockMutex(
  session: Session,
  name: string,
  recipe: Recipe,
  w: Waiting,
  onEnd: () => void,
): Promise<Hold | undefined> {
  session.throwIfClosed();
  w.signal?.throwIfAborted();
  const q = localQueue(session, name);
  const started = performance.now();
  if (q.busy && (!w.blocking || w.timeout === 0)) return undefined;
  if (q.busy) {
    const stop = new AbortController();
    const signals = [stop.signal, session.closeSignal];
    if (w.signal !== undefined) signals.push(w.signal);
    const timer = w.timeout === Infinity
      ? undefined
      : setTimeout(() => stop.abort(), Math.min(w.timeout, 0x7fffffff));
    try {
      if (!(await q.enter(AbortSignal.any(signals)))) {
        forget(session, name, q);
        session.throwIfClosed();
        w.signal?.throwIfAborted();
        return undefined;
      }
    } finally {
      clearTimeout(timer);
    }
  } else {
    q.busy = true;
  }
  const left = w.timeout === Infinity
    ? Infinity
    : Math.max(0, w.timeout - (performance.now() - started));
  const leave = () => {
    q.leave();
    forget(session, name, q);
  };
  try {
    const hold = await queue(session, recipe, { ...w, timeout: left }, () => {
      leave();
      onEnd();
    });
    if (hold === undefined) leave();
    return hold;
  } catch (error) {
    leave();
    throw error;
  }
}
