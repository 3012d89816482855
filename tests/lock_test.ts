// Lock: the Atomics mutex shared between Workers. Runs without --allow-ffi:
//   deno test --allow-read tests/lock_test.ts

import assert from "node:assert/strict";
import { Lock } from "../locks/thread/lock.ts";
import { LockError, LockTimeoutError } from "../errors.ts";
import { Driven, pause, until } from "./workers/driver.ts";

/** A Worker that took `lock` and was terminated while holding it; returns its attachment id. */
async function terminatedHolder(lock: Lock): Promise<number> {
  const w = new Driven();
  try {
    const id = await w.call("attachLock", { buffer: lock.buffer }) as number;
    await w.call("acquireSync");
    await w.expect("waiting");
    await w.expect("locked");
    return id;
  } finally {
    w.worker.terminate();
  }
}

/**
 * Until `n` sync waiters are counted on `lock` and its lock word has LOOK set
 * (layout 4 of locks/thread/_raw_lock.ts: STATE is word 4, LOOK its bit 30, the
 * sync waiter count bits 0..15 of word 20): they are about to sleep or asleep.
 */
function sleepersCounted(lock: Lock, n: number): Promise<void> {
  const words = new Int32Array(lock.buffer);
  return until(
    () => (Atomics.load(words, 4) & (1 << 30)) !== 0 && (Atomics.load(words, 20) & 0xffff) === n,
    `${n} sync waiter(s) counted with LOOK set`,
  );
}

Deno.test("new Lock() starts unlocked and acquireSync()/release() toggle locked", () => {
  const lock = new Lock();
  assert.equal(lock.locked, false);
  assert.equal(lock.acquireSync(), true);
  assert.equal(lock.locked, true);
  lock.release();
  assert.equal(lock.locked, false);
});

Deno.test("Lock.release() of an unlocked lock throws LockError", () => {
  const lock = new Lock();
  assert.throws(() => lock.release(), LockError);
  lock.acquireSync();
  lock.release();
  assert.throws(() => lock.release(), /not locked/);
});

Deno.test("Lock is not reentrant: the holder's try and timed acquire return false", async () => {
  const lock = new Lock();
  lock.acquireSync();
  assert.equal(lock.acquireSync({ blocking: false }), false);
  assert.equal(lock.acquireSync({ timeout: 20 }), false);
  assert.equal(await lock.acquire({ blocking: false }), false);
  assert.equal(await lock.acquire({ timeout: 20 }), false);
  assert.equal(lock.locked, true);
  lock.release();
});

Deno.test("Lock may be released by another attachment than the one that acquired it", () => {
  const lock = new Lock();
  const other = Lock.from(lock.buffer);
  other.acquireSync();
  assert.equal(lock.locked, true);
  lock.release();
  assert.equal(other.locked, false);
});

Deno.test("Lock.from() refuses a buffer that is not a Lock buffer with TypeError", () => {
  const good = new Lock().buffer;
  assert.throws(() => Lock.from(new SharedArrayBuffer(good.byteLength)), TypeError);
  assert.throws(() => Lock.from(new SharedArrayBuffer(8)), /bytes/);
  assert.throws(
    () => Lock.from(new ArrayBuffer(good.byteLength) as unknown as SharedArrayBuffer),
    TypeError,
  );
  assert.throws(() => Lock.from(undefined as unknown as SharedArrayBuffer), TypeError);
  const copy = new SharedArrayBuffer(good.byteLength);
  new Int32Array(copy).set(new Int32Array(good));
  new Int32Array(copy)[1] = 99; // another layout version
  assert.throws(() => Lock.from(copy), /layout version 99/);
});

Deno.test("Lock acquire options are checked: bad types and values throw", async () => {
  const lock = new Lock();
  assert.throws(() => lock.acquireSync({ timeout: -1 }), RangeError);
  assert.throws(() => lock.acquireSync({ blocking: "no" as unknown as boolean }), TypeError);
  await assert.rejects(lock.acquire({ timeout: NaN }), RangeError);
  await assert.rejects(lock.withLock(42 as unknown as () => void), TypeError);
  assert.equal(lock.locked, false);
});

Deno.test("Lock.lockSync() and lock() return guards released at the end of a using block", async () => {
  const lock = new Lock();
  {
    using _guard = lock.lockSync();
    assert.equal(lock.locked, true);
    assert.throws(() => lock.lockSync({ blocking: false }), LockTimeoutError);
  }
  assert.equal(lock.locked, false);
  {
    await using _guard = await lock.lock();
    assert.equal(lock.locked, true);
    await assert.rejects(lock.lock({ timeout: 5 }), LockTimeoutError);
  }
  assert.equal(lock.locked, false);
  const guard = lock.lockSync();
  guard.release();
  assert.throws(() => guard.release(), LockError);
});

Deno.test("Lock.acquireSync() with an already aborted signal throws its reason", async () => {
  const lock = new Lock();
  const reason = new Error("stop");
  assert.throws(() => lock.acquireSync({ signal: AbortSignal.abort(reason) }), reason);
  await assert.rejects(lock.acquire({ signal: AbortSignal.abort(reason) }), reason);
  assert.equal(lock.locked, false);
});

Deno.test("Lock: async tasks of one thread exclude each other", async () => {
  const lock = new Lock();
  let inside = 0;
  let most = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let i = 0; i < 20; i++) {
      await lock.withLock(async () => {
        most = Math.max(most, ++inside);
        await pause(0);
        inside--;
      });
    }
  }));
  assert.equal(most, 1);
  assert.equal(lock.locked, false);
});

Deno.test("Lock.withLock() is reentrant for its own async chain, not for other tasks", async () => {
  const lock = new Lock();
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => entered = resolve);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  const held = lock.withLock(async () => {
    assert.equal(await lock.acquire({ blocking: false }), true); // nested hold
    lock.release(); // undoes the nested hold only
    assert.equal(lock.locked, true);
    {
      await using _inner = await lock.lock();
    }
    entered();
    await gate;
    return await lock.withLock(() => "inner");
  });
  await inside;
  assert.equal(await lock.acquire({ blocking: false }), false); // this task is not the holder
  open();
  assert.equal(await held, "inner");
  assert.equal(lock.locked, false);
});

Deno.test("Lock.withLock() releases when the callback throws", async () => {
  const lock = new Lock();
  await assert.rejects(lock.withLock(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(lock.locked, false);
});

Deno.test("Lock: a Worker blocked in acquireSync() gets the lock when the main thread releases", async () => {
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  lock.acquireSync();
  const got = w.call("acquireSync");
  await w.expect("waiting");
  await pause(20); // let it block; the assertion holds however long this is
  assert.equal(lock.locked, true);
  lock.release();
  await w.expect("locked");
  assert.equal(await got, true);
  assert.equal(lock.acquireSync({ blocking: false }), false);
  await w.call("release");
  assert.equal(lock.locked, false);
});

Deno.test("Lock.acquire() times out, and blocking:false fails, while a Worker holds it", async () => {
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  assert.equal(await w.call("acquireSync"), true);
  await w.expect("waiting");
  await w.expect("locked");
  const t0 = performance.now();
  assert.equal(await lock.acquire({ timeout: 30 }), false);
  assert.ok(performance.now() - t0 >= 25);
  assert.equal(lock.acquireSync({ timeout: 30 }), false);
  assert.equal(lock.acquireSync({ blocking: false }), false);
  assert.equal(await lock.acquire({ blocking: false }), false);
  await w.call("release");
  assert.equal(lock.acquireSync({ timeout: 30 }), true);
  lock.release();
});

Deno.test("Lock.acquire() keeps the event loop running while it waits", async () => {
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  await w.call("acquireSync");
  await w.expect("waiting");
  await w.expect("locked");
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const acquired = lock.acquire();
    const before = ticks;
    while (ticks < before + 5) await pause(1); // timers fire while acquire() waits
    assert.equal(lock.locked, true);
    await w.call("release");
    assert.equal(await acquired, true);
  } finally {
    clearInterval(timer);
  }
  lock.release();
});

Deno.test("Lock.acquire() rejects on abort, and the next waiter is still woken", async () => {
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  await w.call("acquireSync");
  await w.expect("waiting");
  await w.expect("locked");
  const controller = new AbortController();
  const aborted = lock.acquire({ signal: controller.signal });
  const timedOut = lock.acquire({ timeout: 10 });
  const waiting = lock.acquire();
  await pause(5); // let the waits register
  controller.abort(new Error("cancelled"));
  await assert.rejects(aborted, /cancelled/);
  assert.equal(await timedOut, false);
  // Two abandoned waits stand first in the engine's queue: the release must still reach `waiting`.
  await w.call("release");
  assert.equal(await waiting, true);
  lock.release();
});

Deno.test("Lock: a sync waiter is woken by a release even when its thread has an async waiter queued before it", async () => {
  // The Worker's async wait is registered on the lock word first, then its
  // thread blocks in acquireSync(). A release that woke only the oldest waiter
  // would hand the wake-up to the async wait, which cannot run while its thread
  // is blocked: the sync waiter would sleep until its timeout.
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  lock.acquireSync();
  const timeout = 10_000;
  const result = w.call("asyncThenSync", { ms: timeout });
  await w.expect("waiting");
  await pause(50); // let it block; the assertion holds however long this is
  lock.release();
  const { got, took, asyncGot } = await result as { got: boolean; took: number; asyncGot: boolean };
  assert.equal(got, true);
  assert.equal(asyncGot, true);
  assert.ok(
    took < timeout / 2,
    `the sync acquire slept ${took.toFixed(0)} ms of its ${timeout} ms timeout`,
  );
  assert.equal(lock.locked, false);
});

Deno.test("Lock.forceRelease() frees a lock held by a terminated Worker", async () => {
  const lock = new Lock();
  const id = await terminatedHolder(lock);
  assert.equal(lock.locked, true);
  assert.equal(lock.forceRelease(lock.id), false);
  assert.equal(lock.forceRelease(id), true);
  assert.equal(lock.locked, false);
  assert.equal(lock.forceRelease(id), false);
});

Deno.test("Lock: Workers hammering with sync and async acquires never overlap nor lose increments", async () => {
  const lock = new Lock();
  const counters = new Int32Array(new SharedArrayBuffer(12)); // value, inside, overlaps
  const workers = Array.from({ length: 4 }, () => new Driven());
  try {
    await Promise.all(workers.map((w) => w.call("attachLock", { buffer: lock.buffer })));
    const iterations = 400;
    const main = (async () => {
      for (let i = 0; i < iterations; i++) {
        await lock.withLock(async () => {
          if (Atomics.add(counters, 1, 1) !== 0) Atomics.add(counters, 2, 1);
          const seen = counters[0];
          if (i % 2) await Promise.resolve();
          counters[0] = seen + 1;
          Atomics.sub(counters, 1, 1);
        });
      }
    })();
    await Promise.all([
      main,
      ...workers.map((w) => w.call("hammerLock", { counters: counters.buffer, iterations })),
    ]);
    assert.equal(counters[2], 0, "two holders overlapped");
    assert.equal(counters[0], iterations * 5);
    assert.equal(lock.locked, false);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});

for (const sync of [true, false]) {
  const how = sync ? "acquireSync()" : "await acquire()";
  Deno.test(`Lock: 2 Workers hammering ${how} in tight loops lose no increment`, async () => {
    const lock = new Lock();
    const counters = new Int32Array(new SharedArrayBuffer(8)); // value, started
    const workers = [new Driven(), new Driven()];
    try {
      await Promise.all(workers.map((w) => w.call("attachLock", { buffer: lock.buffer })));
      const iterations = 200_000;
      await Promise.all(
        workers.map((w) =>
          w.call("hammerTight", { counters: counters.buffer, iterations, sync, starters: 2 })
        ),
      );
      assert.equal(counters[0], 2 * iterations);
      assert.equal(lock.locked, false);
      // WAITERS and WOKEN (words 20 and 21, locks/thread/_raw_lock.ts) back to 0: no count
      // left behind (a watcher ends at its next wake-up, hence the wait).
      const words = new Int32Array(lock.buffer);
      await until(
        () => Atomics.load(words, 20) === 0 && Atomics.load(words, 21) === 0,
        "WAITERS and WOKEN are 0",
      );
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  });
}

/**
 * Resolves once the Workers counting into `beat` have stopped: Deno gives no
 * signal when a terminated Worker's thread has ended, so this waits until the
 * count has not moved for 50 ms (bounded by `until`). Only the Workers' being
 * gone depends on it, never what the test asserts about the lock.
 */
async function stopped(beat: Int32Array): Promise<void> {
  let last = -1, since = performance.now();
  await until(() => {
    const now = Atomics.load(beat, 0);
    if (now !== last) [last, since] = [now, performance.now()];
    return performance.now() - since > 50;
  }, "the terminated Workers stop");
}

Deno.test("Lock.forceRelease() recovers the lock from Workers terminated at random points of acquire and release", async () => {
  // Limits: Deno stops a terminated Worker only when its event loop turns, so
  // terminate() lands between tasks (holding, waiting, idle), never inside a
  // synchronous step, and no round is sure to hit a given state. What
  // is checked is the invariant: once every Worker is gone and force-released,
  // the lock is free and can be taken. The Workers make no sync waits (terminate() does not interrupt
  // Atomics.wait, and a Worker woken after it would run on).
  const lock = new Lock();
  for (let round = 0; round < 8; round++) {
    const workers = [new Driven(), new Driven()];
    try {
      const ids: number[] = [];
      for (const w of workers) {
        ids.push(await w.call("attachLock", { buffer: lock.buffer }) as number);
      }
      const beat = new Int32Array(new SharedArrayBuffer(4));
      for (const w of workers) w.call("churn", { lock: true, beat: beat.buffer }).catch(() => {});
      for (const w of workers) await w.expect("churning");
      await pause(round % 4); // a different point of the churn each round; nothing depends on it
      for (const w of workers) w.worker.terminate();
      await stopped(beat);
      for (const id of ids) lock.forceRelease(id);
      assert.equal(lock.locked, false, `round ${round}`);
      for (const id of ids) assert.equal(lock.forceRelease(id), false);
      assert.equal(lock.acquireSync({ blocking: false }), true);
      lock.release();
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  }
});

Deno.test("Lock: an async waiter served by a Worker's release keeps the lock when its signal aborts at once, and its listener is removed", async () => {
  // serve() resolves the waiter first and clears its timer, abort listener and
  // keep-alive one microtask later (after the waiter's own continuation): an
  // abort in that continuation must change nothing, and the clean-up must
  // still happen (the listener's removal is watched on the signal itself).
  const lock = new Lock();
  await using w = new Driven();
  await w.call("attachLock", { buffer: lock.buffer });
  await w.call("acquireSync");
  await w.expect("waiting");
  await w.expect("locked");
  const controller = new AbortController();
  const signal = controller.signal;
  const removed: string[] = [];
  const remove = signal.removeEventListener.bind(signal);
  signal.removeEventListener = (type: string, ...rest: [EventListener]) => {
    removed.push(type);
    remove(type, ...rest);
  };
  const first = lock.acquire({ timeout: 60_000, signal });
  const second = lock.acquire(); // patient: holds the keep-alive while queued
  await pause(5); // let the watcher register; the assertions hold however long this is
  await w.call("release");
  assert.equal(await first, true);
  controller.abort(new Error("too late")); // may run before the deferred clean-up
  assert.equal(lock.acquireSync({ blocking: false }), false);
  await pause(0); // a later task: the clean-up ran, the lock is still ours
  assert.deepEqual(removed, ["abort"]);
  assert.equal(lock.locked, true);
  lock.release(); // direct handoff to `second`, served the same way
  assert.equal(await second, true);
  lock.release();
  assert.equal(lock.locked, false);
});

Deno.test("Lock: two Workers asleep in acquireSync() both get the lock, one after the other, from one release", async () => {
  // The first sleeper to be woken takes the lock with LOOK set in the lock
  // word (the other one may still sleep): without it, its own release would
  // read no other word and leave the second sleeper asleep until its timeout.
  const lock = new Lock();
  await using w1 = new Driven();
  await using w2 = new Driven();
  for (const w of [w1, w2]) await w.call("attachLock", { buffer: lock.buffer });
  lock.acquireSync();
  const options = { timeout: 10_000 };
  const got = [w1, w2].map((w, i) => w.call("acquireSync", { options }).then((ok) => ({ ok, i })));
  await w1.expect("waiting");
  await w2.expect("waiting");
  await sleepersCounted(lock, 2);
  lock.release(); // wakes one sleeper
  const first = await Promise.race(got);
  assert.equal(first.ok, true);
  const [winner, loser] = first.i === 0 ? [w1, w2] : [w2, w1];
  const t0 = performance.now();
  await winner.call("release"); // must wake the other sleeper
  const second = await got[1 - first.i];
  const took = performance.now() - t0;
  // Woken, not timed out: a sleeper that times out takes the free lock too, but only at 10 s.
  assert.equal(second.ok, true);
  assert.ok(took < options.timeout / 2, `the second sleeper got the lock only after ${took} ms`);
  await loser.call("release");
  assert.equal(lock.locked, false);
});

Deno.test("Lock.forceRelease() of a terminated holder wakes a Worker asleep in acquireSync()", async () => {
  // The sleeper set LOOK on the dead holder's lock word: forceRelease() must
  // match the holder's id under that bit, and wake the sleeper.
  const lock = new Lock();
  const id = await terminatedHolder(lock);
  await using sleeper = new Driven();
  await sleeper.call("attachLock", { buffer: lock.buffer });
  const options = { timeout: 10_000 };
  const got = sleeper.call("acquireSync", { options });
  await sleeper.expect("waiting");
  await sleepersCounted(lock, 1);
  assert.equal(lock.forceRelease(lock.id), false);
  const t0 = performance.now();
  assert.equal(lock.forceRelease(id), true);
  assert.equal(await got, true);
  const took = performance.now() - t0;
  assert.ok(took < options.timeout / 2, `the sleeper got the lock only after ${took} ms`);
  assert.equal(lock.forceRelease(id), false);
  await sleeper.call("release");
  assert.equal(lock.locked, false);
});
