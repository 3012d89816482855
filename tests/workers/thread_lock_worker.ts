// A Worker that takes a Lock or a ReaderWriterLock on request, for the thread-lock tests.
// Requests: { seq, op, ...args }; replies { seq, result } or { seq, error }.
// Events it posts by itself: { event: "waiting" | "locked" | "released" | … }.

import { Lock } from "../../locks/thread/lock.ts";
import { ReaderWriterLock } from "../../locks/thread/reader_writer_lock.ts";

declare const self: Worker;

let lock: Lock | undefined;
let rw: ReaderWriterLock | undefined;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const event = (name: string) => self.postMessage({ event: name });

type Request = { seq: number; op: string; [key: string]: unknown };

/** Holds the lock, counting into the shared `counters`: [value, inside, overlaps]. */
async function hammer(counters: Int32Array, iterations: number, lockIt: Lock): Promise<void> {
  for (let i = 0; i < iterations; i++) {
    const mode = i % 4;
    if (mode === 0 || mode === 1) {
      lockIt.acquireSync();
    } else {
      await lockIt.acquire();
    }
    try {
      if (Atomics.add(counters, 1, 1) !== 0) Atomics.add(counters, 2, 1);
      const seen = counters[0];
      if (mode === 2) await Promise.resolve();
      if (mode === 3) await new Promise((r) => setTimeout(r, 0));
      counters[0] = seen + 1;
      Atomics.sub(counters, 1, 1);
    } finally {
      lockIt.release();
    }
  }
}

/**
 * Readers check that no writer is in; writers that nobody else is in, and add
 * one to counters[0] non-atomically. counters: [value, readers in, writers in, violations].
 */
async function hammerRw(counters: Int32Array, iterations: number, lockIt: ReaderWriterLock) {
  for (let i = 0; i < iterations; i++) {
    const write = i % 3 === 0;
    const mode = i % 4;
    const sync = mode < 2;
    if (write) {
      if (sync) lockIt.acquireWriteLockSync();
      else await lockIt.acquireWriteLock();
      if (Atomics.add(counters, 2, 1) !== 0 || Atomics.load(counters, 1) !== 0) {
        Atomics.add(counters, 3, 1);
      }
      const seen = counters[0];
      if (mode === 2) await Promise.resolve();
      if (mode === 3) await new Promise((r) => setTimeout(r, 0));
      if (Atomics.load(counters, 1) !== 0) Atomics.add(counters, 3, 1);
      counters[0] = seen + 1;
      Atomics.sub(counters, 2, 1);
      lockIt.releaseWriteLock();
    } else {
      if (sync) lockIt.acquireReadLockSync();
      else await lockIt.acquireReadLock();
      Atomics.add(counters, 1, 1);
      if (Atomics.load(counters, 2) !== 0) Atomics.add(counters, 3, 1);
      if (mode === 3) await new Promise((r) => setTimeout(r, 0));
      if (Atomics.load(counters, 2) !== 0) Atomics.add(counters, 3, 1);
      Atomics.sub(counters, 1, 1);
      lockIt.releaseReadLock();
    }
  }
}

const ops: Record<string, (r: Request) => unknown> = {
  attachLock: (r) => {
    lock = Lock.from(r.buffer as SharedArrayBuffer);
    return lock.id;
  },
  acquireSync: (r) => {
    event("waiting");
    const got = lock!.acquireSync(r.options as undefined);
    if (got) event("locked");
    return got;
  },
  acquire: async (r) => {
    event("waiting");
    const got = await lock!.acquire(r.options as undefined);
    if (got) event("locked");
    return got;
  },
  release: () => lock!.release(),
  /**
   * Starts an async acquire (left pending), then blocks in acquireSync() with
   * a timeout of `ms`: returns how long the sync acquire took, after both
   * acquisitions have taken and released the lock.
   */
  asyncThenSync: async (r) => {
    const pending = lock!.acquire();
    event("waiting");
    const start = performance.now();
    const got = lock!.acquireSync({ timeout: r.ms as number });
    const took = performance.now() - start;
    if (got) lock!.release();
    const asyncGot = await pending;
    if (asyncGot) lock!.release();
    return { got, took, asyncGot };
  },
  /**
   * Churns until terminated: takes and releases the Lock (when `lock`) and the
   * ReaderWriterLock (when `rw`) with sync tries and timed async waits mixed,
   * holding some across a task boundary, and yields to the event loop every
   * round: Deno stops a terminated Worker only when its event loop turns, so
   * that is where terminate() lands (holding, queued, waiting or idle). No
   * sync wait: terminate() does not interrupt Atomics.wait. Adds 1 to
   * `beat[0]` per round and posts "churning" once it has gone round once.
   */
  churn: async (r) => {
    const beat = new Int32Array(r.beat as SharedArrayBuffer);
    for (let i = 0;; i++) {
      const kind = i % 4;
      if (r.lock) {
        const got = kind < 2
          ? lock!.acquireSync({ blocking: false })
          : await lock!.acquire({ timeout: 2 });
        if (got) {
          if (kind === 3) await new Promise((resolve) => setTimeout(resolve, 0));
          lock!.release();
        }
      }
      if (r.rw) {
        const write = (i >> 1) % 3 === 0;
        const got = kind < 2
          ? (write
            ? rw!.acquireWriteLockSync({ blocking: false })
            : rw!.acquireReadLockSync({ blocking: false }))
          : await (write
            ? rw!.acquireWriteLock({ timeout: 2 })
            : rw!.acquireReadLock({ timeout: 2 }));
        if (got) {
          if (kind === 3) await new Promise((resolve) => setTimeout(resolve, 0));
          if (write) rw!.releaseWriteLock();
          else rw!.releaseReadLock();
        }
      }
      Atomics.add(beat, 0, 1);
      if (i === 0) event("churning");
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  },
  attachRw: (r) => {
    rw = ReaderWriterLock.from(r.buffer as SharedArrayBuffer);
    return rw.id;
  },
  /** { write, sync, options }: takes a read or write lock; posts "waiting" then "locked". */
  rwAcquire: async (r) => {
    event("waiting");
    const opts = r.options as undefined;
    const got = r.write
      ? (r.sync ? rw!.acquireWriteLockSync(opts) : await rw!.acquireWriteLock(opts))
      : (r.sync ? rw!.acquireReadLockSync(opts) : await rw!.acquireReadLock(opts));
    if (got) event("locked");
    return got;
  },
  rwRelease: (r) => r.write ? rw!.releaseWriteLock() : rw!.releaseReadLock(),
  rwTryRead: () => {
    const got = rw!.acquireReadLockSync({ blocking: false });
    if (got) rw!.releaseReadLock();
    return got;
  },
  /** Waits for the write lock, then records `tag` in `order` and releases. */
  rwWriteAndRecord: async (r) => {
    event("waiting");
    const order = new Int32Array(r.order as SharedArrayBuffer);
    if (r.sync) rw!.acquireWriteLockSync();
    else await rw!.acquireWriteLock();
    order[Atomics.add(order, 0, 1) + 1] = r.tag as number;
    rw!.releaseWriteLock();
  },
  hammerRw: (r) =>
    hammerRw(new Int32Array(r.counters as SharedArrayBuffer), r.iterations as number, rw!),
  /** Takes the lock, holds it `ms`, blocking the thread, and releases. */
  holdFor: (r) => {
    lock!.acquireSync();
    event("locked");
    Atomics.wait(sleeper, 0, 0, r.ms as number);
    lock!.release();
  },
  hammerLock: (r) =>
    hammer(new Int32Array(r.counters as SharedArrayBuffer), r.iterations as number, lock!),
  /**
   * Tight loop, as a contended benchmark runs it: acquire (sync or async), plain
   * increment of counters[0], release, `iterations` times; counters[1] counts the
   * Workers that have started, and each starts once `starters` have, so the loops overlap.
   */
  hammerTight: async (r) => {
    const counters = new Int32Array(r.counters as SharedArrayBuffer);
    Atomics.add(counters, 1, 1);
    while (Atomics.load(counters, 1) < (r.starters as number)) Atomics.wait(counters, 1, 1, 1);
    for (let i = 0; i < (r.iterations as number); i++) {
      if (r.sync) lock!.acquireSync();
      else await lock!.acquire();
      counters[0]++;
      lock!.release();
    }
  },
  /** Records in `order` (an Int32Array) the arrival of this worker's `tag` once acquired. */
  acquireAndRecord: async (r) => {
    event("waiting");
    const order = new Int32Array(r.order as SharedArrayBuffer);
    if (r.sync) lock!.acquireSync();
    else await lock!.acquire();
    order[Atomics.add(order, 0, 1) + 1] = r.tag as number;
    lock!.release();
  },
};

self.onmessage = async (e: MessageEvent<Request>) => {
  const request = e.data;
  try {
    const result = await ops[request.op](request);
    self.postMessage({ seq: request.seq, result });
  } catch (error) {
    self.postMessage({ seq: request.seq, error: String((error as Error)?.stack ?? error) });
  }
};
