// Many async waiters on one thread lock (issue 13), in one isolate and spread
// over three (main + 2 real Workers):
//   deno test --allow-read tests/thread_waiters_test.ts
//
// Checked: exclusion (a shared "inside" count), arrival order per isolate,
// every waiter served, at most one async wait per isolate registered on the
// shared words while thousands wait (a release wakes O(isolates)), and total
// time linear in the number of waiters (a generous bound: 10,000 waiters took
// 48 s when every release woke every waiter; the bench has the real figure).

import assert from "node:assert/strict";
import { Lock } from "../locks/thread/lock.ts";
import { ReaderWriterLock } from "../locks/thread/reader_writer_lock.ts";
import { LockError } from "../errors.ts";
import { pause, until } from "./workers/driver.ts";
import {
  COUNTER_WORDS,
  INSIDE,
  type Kind,
  OVERLAPS,
  PASSED,
  passThrough,
  SYNC_WAITING,
  type Tally,
} from "./workers/waiters_common.ts";

/** Word indices, as documented at the top of locks/thread/_raw_lock.ts and _raw_rwlock.ts. */
const LOCK_WAITERS = 20;
const LOCK_WOKEN = 21;
const RW_R_SLEEPERS = 8;
const RW_W_SLEEPERS = 9;

/** Generous bound on the time for N waiters to pass: linear, with room for a loaded machine. */
const boundMs = (n: number) => 2_000 + n * 0.5;

type AnyLock = Lock | ReaderWriterLock;
const make = (kind: Kind): AnyLock => kind === "lock" ? new Lock() : new ReaderWriterLock();
const hold = (lock: AnyLock) =>
  lock instanceof Lock ? lock.acquireSync() : lock.acquireWriteLockSync();
const release = (lock: AnyLock) => lock instanceof Lock ? lock.release() : lock.releaseWriteLock();

/** Async waits registered on the shared words: watchers (Lock) or sleepers (ReaderWriterLock). */
function asyncRegistrations(lock: AnyLock): number {
  const v = new Int32Array(lock.buffer);
  return lock instanceof Lock
    ? Atomics.load(v, LOCK_WAITERS) >>> 16
    : Atomics.load(v, RW_R_SLEEPERS) + Atomics.load(v, RW_W_SLEEPERS);
}

/** Every count at rest once nothing waits (the watchers end at their next wake-up). */
async function atRest(lock: AnyLock): Promise<void> {
  const v = new Int32Array(lock.buffer);
  const words = lock instanceof Lock ? [LOCK_WAITERS, LOCK_WOKEN] : [RW_R_SLEEPERS, RW_W_SLEEPERS];
  await until(() => words.every((i) => Atomics.load(v, i) === 0), "the waiter counts are 0");
  if (lock instanceof ReaderWriterLock) assert.equal(lock.hasPendingWriters, false);
  assert.equal(lock instanceof Lock ? lock.locked : lock.owner !== null, false);
}

/** A Worker of waiters_worker.ts and the events it posts. */
class WaiterWorker implements AsyncDisposable {
  readonly #worker = new Worker(new URL("./workers/waiters_worker.ts", import.meta.url), {
    type: "module",
  });
  readonly #events: Record<string, unknown>[] = [];
  #wake: (() => void) | undefined;
  #failure: Error | undefined;

  constructor() {
    this.#worker.onmessage = (e) => {
      this.#events.push(e.data);
      this.#wake?.();
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#failure = new Error(`worker failed: ${e.message}`);
      this.#wake?.();
    };
  }

  send(request: Record<string, unknown>): void {
    this.#worker.postMessage(request);
  }

  async expect(event: string): Promise<Record<string, unknown>> {
    while (this.#events.length === 0) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((r) => (this.#wake = r));
    }
    const got = this.#events.shift()!;
    assert.equal(got.event, event, `expected "${event}", got ${JSON.stringify(got)}`);
    return got;
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#worker.terminate();
    return Promise.resolve();
  }
}

function checkTally(tally: Tally, n: number, where: string): void {
  assert.equal(tally.got, n, `${where}: every waiter got the lock`);
  assert.equal(tally.outOfOrder, 0, `${where}: waiters got in out of arrival order`);
  assert.equal(tally.gaveUp, 0, `${where}: no waiter gave up`);
}

for (const kind of ["lock", "rw"] as const) {
  const name = kind === "lock" ? "Lock" : "ReaderWriterLock (writers)";

  Deno.test(`${name}: 10 / 1,000 / 10,000 async waiters of one isolate pass one at a time, in arrival order, in linear time`, async () => {
    for (const n of [10, 1_000, 10_000]) {
      const lock = make(kind);
      const counters = new Int32Array(new SharedArrayBuffer(COUNTER_WORDS * 4));
      hold(lock);
      const tally = passThrough(lock, counters, n);
      assert.ok(asyncRegistrations(lock) <= 1, `${n} waiters: one watcher, not one wait each`);
      const t0 = performance.now();
      release(lock);
      checkTally(await tally, n, `${n} waiters`);
      const ms = performance.now() - t0;
      assert.ok(ms < boundMs(n), `${n} waiters took ${ms.toFixed(0)} ms`);
      assert.equal(Atomics.load(counters, OVERLAPS), 0);
      assert.equal(Atomics.load(counters, PASSED), n);
      await atRest(lock);
    }
  });

  Deno.test(`${name}: 10 / 1,000 / 10,000 async waiters spread over 3 isolates pass one at a time, in arrival order per isolate`, async () => {
    await using a = new WaiterWorker();
    await using b = new WaiterWorker();
    for (const n of [10, 1_000, 10_000]) {
      const lock = make(kind);
      const counters = new Int32Array(new SharedArrayBuffer(COUNTER_WORDS * 4));
      const each = Math.floor(n / 3);
      const mine = n - 2 * each;
      hold(lock);
      for (const w of [a, b]) {
        w.send({ op: "queue", kind, buffer: lock.buffer, counters: counters.buffer, n: each });
      }
      await a.expect("queued");
      await b.expect("queued");
      const tally = passThrough(lock, counters, mine);
      // One async wait per isolate at most (and per kind for the RW lock).
      assert.ok(asyncRegistrations(lock) <= 3, `${asyncRegistrations(lock)} async waits`);
      const t0 = performance.now();
      release(lock);
      checkTally(await tally, mine, "main");
      for (const w of [a, b]) {
        const done = await w.expect("done") as unknown as Tally;
        checkTally(done, each, "Worker");
      }
      const ms = performance.now() - t0;
      assert.ok(ms < boundMs(n) * 2, `${n} waiters over 3 isolates took ${ms.toFixed(0)} ms`);
      assert.equal(Atomics.load(counters, OVERLAPS), 0);
      assert.equal(Atomics.load(counters, INSIDE), 0);
      assert.equal(Atomics.load(counters, PASSED), n);
      await atRest(lock);
    }
  });

  Deno.test(`${name}: aborting and timing out half of 1,000 async waiters midway leaves the rest served in order, and nothing behind`, async () => {
    const lock = make(kind);
    const counters = new Int32Array(new SharedArrayBuffer(COUNTER_WORDS * 4));
    const n = 1_000;
    const controller = new AbortController();
    hold(lock);
    // Waiters 1, 5, 9, … abort; 3, 7, 11, … have a timeout that runs out
    // while the lock is held; the even ones wait for good.
    const live: Tally = { got: 0, outOfOrder: 0, gaveUp: 0 };
    const tally = passThrough(lock, counters, n, {
      tally: live,
      options: (i) =>
        i % 4 === 1 ? { signal: controller.signal } : i % 4 === 3 ? { timeout: 30 } : undefined,
    });
    await until(() => live.gaveUp === n / 4, "the timeouts ran out while the lock is held");
    controller.abort(new Error("cancelled"));
    release(lock);
    const t = await tally;
    assert.equal(t.got, n / 2);
    assert.equal(t.gaveUp, n / 2);
    assert.equal(t.outOfOrder, 0);
    assert.equal(Atomics.load(counters, OVERLAPS), 0);
    await atRest(lock);
  });

  Deno.test(`${name}: waiters aborted while the queue is being served midway leave the rest served in order`, async () => {
    const lock = make(kind);
    const counters = new Int32Array(new SharedArrayBuffer(COUNTER_WORDS * 4));
    const n = 1_000;
    const controller = new AbortController();
    hold(lock);
    // Odd waiters are aborted by the waiter that gets in as the 250th.
    let passed = 0;
    const tally = passThrough(lock, counters, n, {
      options: (i) => i % 2 === 1 ? { signal: controller.signal } : undefined,
      inside: () => {
        if (++passed === n / 4) controller.abort(new Error("cancelled"));
      },
    });
    release(lock);
    const t = await tally;
    // Waiters 0..249 got in before the abort; of 250..999, the even ones get in.
    assert.equal(t.got, n / 4 + (3 * n / 4) / 2, "the even waiters after the abort all got in");
    assert.equal(t.gaveUp, (3 * n / 4) / 2, "every odd waiter still queued was aborted");
    assert.equal(t.outOfOrder, 0);
    assert.equal(Atomics.load(counters, OVERLAPS), 0);
    await atRest(lock);
  });

  Deno.test(
    `${name}: a Worker blocked in a sync acquire behind its own 100 queued async ${
      kind === "lock" ? "waiters" : "readers"
    } is woken, and they all pass`,
    async () => {
      const lock = make(kind);
      const counters = new Int32Array(new SharedArrayBuffer(COUNTER_WORDS * 4));
      await using w = new WaiterWorker();
      hold(lock);
      w.send({ op: "syncBehindOwn", kind, buffer: lock.buffer, counters: counters.buffer, n: 100 });
      await w.expect("queued");
      await until(() => Atomics.load(counters, SYNC_WAITING) === 1, "the Worker is about to block");
      await pause(50); // let it block; the assertions hold however long this is
      release(lock);
      const done = await w.expect("done");
      assert.equal(done.syncGot, true, "the sync waiter got the lock");
      checkTally(done as unknown as Tally, 100, "Worker");
      assert.equal(Atomics.load(counters, OVERLAPS), 0);
      await atRest(lock);
    },
  );
}

Deno.test("ReaderWriterLock: 1,000 async readers of one isolate queued behind a writer all get in together when it leaves", async () => {
  const rw = new ReaderWriterLock();
  rw.acquireWriteLockSync();
  const n = 1_000;
  let inside = 0;
  let most = 0;
  const readers = Array.from({ length: n }, async () => {
    assert.equal(await rw.acquireReadLock(), true);
    most = Math.max(most, ++inside);
  });
  assert.ok(asyncRegistrations(rw) <= 1, "one reader watcher, not one wait each");
  rw.releaseWriteLock();
  await Promise.all(readers);
  // Every reader is in before any leaves: the writer's release let them all in at once.
  assert.equal(most, n);
  const state = Atomics.load(new Int32Array(rw.buffer), 4);
  assert.equal(state & 0xffff, n, "STATE counts every read hold");
  for (let i = 0; i < n; i++) rw.releaseReadLock();
  await atRest(rw);
});

Deno.test("ReaderWriterLock: a sync acquire behind this attachment's own queued async writer throws LockError instead of deadlocking", async () => {
  const rw = new ReaderWriterLock();
  const other = ReaderWriterLock.from(rw.buffer); // stands for another Worker's attachment
  other.acquireWriteLockSync();
  const queued = rw.acquireWriteLock();
  // FIFO and writer preference put the queued async writer first, and it
  // cannot run while this thread is blocked: both sync waits would deadlock.
  assert.throws(() => rw.acquireWriteLockSync({ timeout: 1_000 }), LockError);
  assert.throws(() => rw.acquireReadLockSync({ timeout: 1_000 }), /deadlock/);
  other.releaseWriteLock();
  assert.equal(await queued, true);
  rw.releaseWriteLock();
  await atRest(rw);
});
