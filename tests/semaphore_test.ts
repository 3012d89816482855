import assert from "node:assert/strict";
import { Lock, locked, LockError, LockTimeoutError, Semaphore, tryLock } from "../mod.ts";
import { Driven, pause, until } from "./workers/driver.ts";

/** A Worker running semaphore_worker.ts, driven by numbered requests. */
class SemWorker extends Driven {
  constructor() {
    super(new URL("./workers/semaphore_worker.ts", import.meta.url));
  }
}

/** The WAITERS word of a semaphore buffer (after the 4 header words and COUNT): sync | async << 16. */
const waiters = (sem: Semaphore) => Atomics.load(new Int32Array(sem.buffer), 5);

/** Counts a holder in: [inside, most seen inside, entries] (as semaphore_worker.ts does). */
function enter(counters: Int32Array): void {
  const now = Atomics.add(counters, 0, 1) + 1;
  for (let most = Atomics.load(counters, 1); now > most;) {
    const seen = Atomics.compareExchange(counters, 1, most, now);
    if (seen === most) break;
    most = seen;
  }
  Atomics.add(counters, 2, 1);
}

/** Shared counters for holders: [inside, most seen inside, entries]. */
const newCounters = () => new Int32Array(new SharedArrayBuffer(12));

Deno.test("new Semaphore(n) starts with n free slots; acquire and release move them", async () => {
  const sem = new Semaphore(3);
  assert.equal(sem.slots, 3);
  assert.equal(sem.available, 3);
  assert.equal(sem.acquireSync(), true);
  assert.equal(await sem.acquire(), true);
  assert.equal(sem.available, 1);
  assert.equal(sem.held, 2);
  sem.release();
  sem.release();
  assert.equal(sem.available, 3);
  assert.equal(sem.held, 0);
});

Deno.test("Semaphore admits exactly slots holders: the next try fails", () => {
  const sem = new Semaphore(2);
  assert.equal(sem.acquireSync({ blocking: false }), true);
  assert.equal(sem.acquireSync({ blocking: false }), true);
  assert.equal(sem.acquireSync({ blocking: false }), false);
  assert.equal(sem.available, 0);
  sem.release();
  assert.equal(sem.acquireSync({ blocking: false }), true);
  sem.release();
  sem.release();
});

Deno.test("Semaphore.release() with nothing held throws LockError (bounded)", () => {
  const sem = new Semaphore(2);
  assert.throws(() => sem.release(), LockError);
  sem.acquireSync();
  // Another attachment holds nothing, so it cannot give back this one's slot.
  assert.throws(() => Semaphore.from(sem.buffer).release(), /no slot held/);
  sem.release();
  assert.throws(() => sem.release(), LockError);
  assert.equal(sem.available, 2);
});

Deno.test("Semaphore.release() gives back a slot of acquire()/acquireSync(), never a guard's", async () => {
  const sem = new Semaphore(3);
  const guard = sem.lockSync();
  await sem.acquire();
  await using _withLock = await sem.lock();
  assert.equal(sem.held, 3);
  sem.release();
  assert.throws(() => sem.release(), /no slot held from acquire\(\) or acquireSync\(\)/);
  guard.release(); // its own slot is still there to give back
  assert.equal(sem.held, 1);
  assert.equal(await sem.withLock(() => sem.held), 2);
});

Deno.test("new Semaphore() refuses bad slot counts, naming the value", () => {
  for (const bad of [0, -1, 1.5, 1025, NaN, Infinity]) {
    assert.throws(() => new Semaphore(bad), (e: Error) => {
      assert.ok(e instanceof RangeError, `${bad}: ${e}`);
      assert.match(e.message, new RegExp(`got ${String(bad).replace(".", "\\.")}`));
      return true;
    });
  }
  for (const bad of ["3", undefined, null, 3n, {}]) {
    assert.throws(() => new Semaphore(bad as unknown as number), TypeError);
  }
  assert.throws(() => new Semaphore("3" as unknown as number), /got "3"/);
  assert.equal(new Semaphore(1).slots, 1);
  assert.equal(new Semaphore(1024).slots, 1024);
});

Deno.test("Semaphore.from() refuses a buffer that is not a semaphore's with TypeError", () => {
  const bad: unknown[] = [
    new Lock().buffer,
    new SharedArrayBuffer(8),
    new SharedArrayBuffer(64),
    new ArrayBuffer(40),
    "buffer",
    undefined,
  ];
  for (const buffer of bad) {
    assert.throws(() => Semaphore.from(buffer as SharedArrayBuffer), TypeError, String(buffer));
  }
  // The right size and count but the magic of another primitive.
  const forged = new Int32Array(new SharedArrayBuffer(new Semaphore(2).buffer.byteLength));
  forged[4] = 2;
  assert.throws(() => Semaphore.from(forged.buffer as SharedArrayBuffer), /not made by Semaphore/);
  const sem = new Semaphore(5);
  assert.equal(Semaphore.from(sem.buffer).slots, 5);
});

Deno.test("Semaphore.lock({ blocking: false }) and lockSync() on a full semaphore throw LockTimeoutError", async () => {
  const sem = new Semaphore(1);
  using _slot = sem.lockSync();
  await assert.rejects(sem.lock({ blocking: false }), LockTimeoutError);
  assert.throws(() => sem.lockSync({ blocking: false }), LockTimeoutError);
  assert.throws(() => sem.lockSync({ timeout: 5 }), LockTimeoutError);
  await assert.rejects(sem.withLock(() => 1, { timeout: 5 }), LockTimeoutError);
  assert.throws(() => sem.withLockSync(() => 1, { blocking: false }), LockTimeoutError);
  assert.equal(sem.held, 1);
});

Deno.test("Semaphore guards give back their own slot, however the block ends", async () => {
  const sem = new Semaphore(2);
  {
    await using _a = await sem.lock();
    using _b = sem.lockSync();
    assert.equal(sem.available, 0);
  }
  assert.equal(sem.available, 2);
  await assert.rejects(sem.withLock(() => Promise.reject(new Error("boom"))), /boom/);
  assert.throws(() =>
    sem.withLockSync(() => {
      throw new Error("bang");
    }), /bang/);
  assert.equal(sem.available, 2);
  const guard = sem.lockSync();
  guard.release();
  assert.throws(() => guard.release(), LockError);
  assert.equal(sem.held, 0);
});

Deno.test("Semaphore: timeouts, blocking:false and aborted signals leave nothing taken, and later waiters are served", async () => {
  const sem = new Semaphore(2);
  sem.acquireSync();
  sem.acquireSync();
  assert.equal(await sem.acquire({ timeout: 10 }), false);
  assert.equal(await sem.acquire({ blocking: false }), false);
  assert.equal(sem.acquireSync({ timeout: 5 }), false);
  assert.equal(sem.acquireSync({ blocking: false }), false);
  const controller = new AbortController();
  const aborted = sem.acquire({ signal: controller.signal });
  const timed = sem.acquire({ timeout: 5 });
  const patient = sem.acquire();
  const aborted2 = sem.lock({ signal: controller.signal });
  controller.abort(new Error("cancelled"));
  await assert.rejects(aborted, /cancelled/);
  await assert.rejects(aborted2, /cancelled/);
  assert.equal(await timed, false);
  assert.throws(() => sem.acquireSync({ signal: controller.signal }), /cancelled/);
  await assert.rejects(sem.acquire({ signal: controller.signal }), /cancelled/);
  assert.equal(sem.held, 2);
  assert.equal(sem.available, 0);
  sem.release();
  assert.equal(await patient, true);
  assert.equal(sem.held, 2);
  sem.release();
  sem.release();
  assert.equal(sem.available, 2);
  await until(() => waiters(sem) === 0, "the waiter counts go back to 0");
});

Deno.test("Semaphore: aborting half of the queued waiters leaves the rest served in arrival order", async () => {
  const sem = new Semaphore(1);
  sem.acquireSync();
  const order: number[] = [];
  const controllers = Array.from({ length: 20 }, () => new AbortController());
  const waits = controllers.map((c, i) =>
    sem.acquire({ signal: c.signal }).then(() => {
      order.push(i);
      sem.release();
    }, () => "aborted")
  );
  for (let i = 0; i < 20; i += 2) controllers[i].abort();
  sem.release();
  await Promise.all(waits);
  assert.deepEqual(order, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  assert.equal(sem.available, 1);
  await until(() => waiters(sem) === 0, "the waiter counts go back to 0");
});

Deno.test("Semaphore: when every queued waiter times out, the attachment's async wait ends (counters back to 0)", async () => {
  const sem = new Semaphore(1);
  const other = Semaphore.from(sem.buffer);
  other.acquireSync();
  const timedOut = [sem.acquire({ timeout: 5 }), sem.acquire({ timeout: 10 })];
  assert.equal(waiters(sem) >>> 16, 1);
  assert.deepEqual(await Promise.all(timedOut), [false, false]);
  await until(() => waiters(sem) === 0, "the pump's wait ends without a release");
  other.release();
  assert.equal(sem.available, 1);
});

Deno.test("locked(semaphore) and tryLock(semaphore) work with a Semaphore", async () => {
  const sem = new Semaphore(2);
  let inside = 0, most = 0;
  const work = locked(sem)(async (n: number) => {
    most = Math.max(most, ++inside);
    await pause(1);
    inside--;
    return n * 2;
  });
  assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map(work)), [2, 4, 6, 8, 10]);
  assert.equal(most, 2);
  class Pool {
    _lock = new Semaphore(1);
    @locked
    async busy() {
      await Promise.resolve();
      return this._lock.available;
    }
  }
  assert.equal(await new Pool().busy(), 0);
  {
    using a = tryLock(sem);
    using b = tryLock(sem);
    using c = tryLock(sem);
    assert.deepEqual([a.acquired, b.acquired, c.acquired], [true, true, false]);
  }
  assert.equal(sem.available, 2);
});

Deno.test("Semaphore: a Worker blocked in acquireSync() gets the slot when the main thread releases", async () => {
  const sem = new Semaphore(1);
  await using w = new SemWorker();
  await w.call("attach", { buffer: sem.buffer });
  sem.acquireSync();
  const got = w.call("acquireSync");
  await w.expect("waiting");
  await until(() => (waiters(sem) & 0xffff) === 1, "the Worker counts itself as a sync waiter");
  await pause(10); // let it block; the assertion holds however long this is
  sem.release();
  await w.expect("locked");
  assert.equal(await got, true);
  assert.equal(sem.acquireSync({ blocking: false }), false);
  await w.call("release");
  assert.equal(sem.available, 1);
});

Deno.test("Semaphore: threads blocked in acquireSync() get the slot in arrival order", async () => {
  const sem = new Semaphore(1);
  const order = new Int32Array(new SharedArrayBuffer(4 * 5));
  const workers = [new SemWorker(), new SemWorker(), new SemWorker(), new SemWorker()];
  try {
    for (const w of workers) await w.call("attach", { buffer: sem.buffer });
    sem.acquireSync();
    const done: Promise<unknown>[] = [];
    for (const [i, w] of workers.entries()) {
      done.push(w.call("syncAndRecord", { order: order.buffer, tag: i + 1 }));
      await w.expect("waiting");
      await until(() => (waiters(sem) & 0xffff) === i + 1, `worker ${i} counts itself`);
      await pause(30); // let it block before the next one arrives (its order is its registration order)
    }
    sem.release();
    await Promise.all(done);
    assert.deepEqual([...order], [4, 1, 2, 3, 4]);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});

Deno.test("Semaphore: a sync waiter is woken even when its thread has an async waiter queued before it", async () => {
  const sem = new Semaphore(1);
  await using w = new SemWorker();
  await w.call("attach", { buffer: sem.buffer });
  sem.acquireSync();
  const timeout = 10_000;
  const result = w.call("asyncThenSync", { ms: timeout });
  await w.expect("waiting");
  await until(() => (waiters(sem) & 0xffff) === 1, "the Worker blocks in acquireSync()");
  await pause(10);
  sem.release();
  const { got, took, asyncGot } = await result as { got: boolean; took: number; asyncGot: boolean };
  assert.equal(got, true);
  assert.equal(asyncGot, true);
  assert.ok(took < timeout / 2, `the sync acquire slept ${took.toFixed(0)} ms of ${timeout} ms`);
  assert.equal(sem.available, 1);
});

Deno.test("Semaphore: 2N holders in Workers and async tasks, sync and async mixed: never more than N inside, and N reached", async () => {
  const slots = 3;
  const sem = new Semaphore(slots);
  const counters = newCounters();
  const rounds = 20, patience = 20;
  const workers = [new SemWorker(), new SemWorker(), new SemWorker()];
  try {
    for (const w of workers) await w.call("attach", { buffer: sem.buffer });
    const common = { counters: counters.buffer, rounds, patience };
    const main = Array.from({ length: 2 }, async () => {
      for (let i = 0; i < rounds; i++) {
        await sem.withLock(async () => {
          enter(counters);
          const deadline = performance.now() + patience;
          while (Atomics.load(counters, 0) < slots && performance.now() < deadline) await pause(0);
          Atomics.sub(counters, 0, 1);
        });
      }
    });
    await Promise.all([
      ...main,
      workers[0].call("hammer", { ...common, mode: "sync" }),
      workers[1].call("hammer", { ...common, mode: "async", tasks: 2 }),
      workers[2].call("hammer", { ...common, mode: "mixed" }),
    ]);
    assert.equal(counters[1], slots, `most inside at once: ${counters[1]}`);
    assert.equal(counters[2], rounds * 2 * slots);
    assert.equal(counters[0], 0);
    assert.equal(sem.available, slots);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});

Deno.test("Semaphore.forceRelease() returns a terminated Worker's slots exactly once, and a waiter gets one", async () => {
  const sem = new Semaphore(3);
  const w = new SemWorker();
  let id: number;
  try {
    id = await w.call("attach", { buffer: sem.buffer }) as number;
    for (let i = 0; i < 2; i++) {
      assert.equal(await w.call("acquireSync"), true);
      await w.expect("waiting");
      await w.expect("locked");
    }
  } finally {
    w.worker.terminate();
  }
  sem.acquireSync();
  assert.equal(sem.available, 0);
  const waiting = sem.acquire();
  assert.equal(sem.forceRelease(sem.id), 1); // would free this attachment's own slot: it is live
  assert.equal(sem.held, 1);
  assert.throws(() => sem.release(), /already freed/);
  assert.equal(await waiting, true);
  sem.release();
  assert.equal(sem.available, 1);
  assert.equal(sem.forceRelease(id), 2);
  assert.equal(sem.forceRelease(id), 0);
  assert.equal(sem.available, 3);
  assert.throws(() => sem.forceRelease(1.5), TypeError);
});

Deno.test("Semaphore: waiters queued on a full semaphore are all served when a terminated Worker's slots are force-released", async () => {
  const sem = new Semaphore(2);
  const w = new SemWorker();
  let id: number;
  try {
    id = await w.call("attach", { buffer: sem.buffer }) as number;
    for (let i = 0; i < 2; i++) await w.call("acquireSync");
  } finally {
    w.worker.terminate();
  }
  const a = sem.acquire(), b = sem.acquire(), c = sem.acquire({ timeout: 10_000 });
  assert.equal(sem.forceRelease(id), 2);
  assert.deepEqual(await Promise.all([a, b]), [true, true]);
  sem.release();
  assert.equal(await c, true);
  sem.release();
  sem.release();
  assert.equal(sem.available, 2);
});

/**
 * Resolves once the Workers counting into `beat` have stopped: Deno gives no
 * signal when a terminated Worker's thread has ended, so this waits until the
 * count has not moved for 50 ms (bounded by `until`). Only the Workers' being
 * gone depends on it, never what the test asserts.
 */
async function stopped(beat: Int32Array): Promise<void> {
  let last = -1, since = performance.now();
  await until(() => {
    const now = Atomics.load(beat, 0);
    if (now !== last) [last, since] = [now, performance.now()];
    return performance.now() - since > 50;
  }, "the terminated Workers stop");
}

Deno.test("Semaphore.forceRelease() recovers every slot from Workers terminated at random points, each once", async () => {
  // Limits as for Lock's test: terminate() lands where a Worker's event loop
  // turns (holding, queued, idle), and no round is sure to hit a given state;
  // what is checked is the invariant once every Worker is gone.
  const slots = 2;
  const sem = new Semaphore(slots);
  let recovered = 0;
  for (let round = 0; round < 6; round++) {
    const workers = [new SemWorker(), new SemWorker(), new SemWorker()];
    try {
      const ids: number[] = [];
      for (const w of workers) ids.push(await w.call("attach", { buffer: sem.buffer }) as number);
      const beat = new Int32Array(new SharedArrayBuffer(4));
      for (const w of workers) w.call("churn", { beat: beat.buffer }).catch(() => {});
      for (const w of workers) await w.expect("churning");
      await pause(round % 3); // a different point of the churn each round; nothing depends on it
      for (const w of workers) w.worker.terminate();
      await stopped(beat);
      const held = slots - sem.available;
      let freed = 0;
      for (const id of ids) freed += sem.forceRelease(id);
      assert.equal(freed, held, `round ${round}: every held slot freed once`);
      recovered += freed;
      for (const id of ids) assert.equal(sem.forceRelease(id), 0);
      assert.equal(sem.available, slots, `round ${round}`);
      using _a = sem.lockSync({ blocking: false });
      using _b = sem.lockSync({ blocking: false });
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  }
  console.log(`slots recovered from terminated Workers over 6 rounds: ${recovered}`);
});

for (const count of [10, 1_000, 10_000]) {
  Deno.test(`Semaphore: ${count} async waiters in one isolate pass in arrival order, at most N at once, in linear time`, async () => {
    const slots = 4;
    const sem = new Semaphore(slots);
    for (let i = 0; i < slots; i++) sem.acquireSync();
    const counters = newCounters();
    const order: number[] = [];
    const waits = Array.from({ length: count }, (_, i) =>
      sem.acquire().then(async () => {
        enter(counters);
        order.push(i);
        if (i % 3 === 0) await Promise.resolve();
        Atomics.sub(counters, 0, 1);
        sem.release();
      }));
    assert.ok(waiters(sem) >>> 16 <= 1, "one async wait for the whole queue");
    const start = performance.now();
    for (let i = 0; i < slots; i++) sem.release();
    await Promise.all(waits);
    const took = performance.now() - start;
    assert.ok(counters[1] <= slots, `most inside: ${counters[1]}`);
    assert.equal(counters[2], count);
    assert.deepEqual(order, Array.from({ length: count }, (_, i) => i));
    // Generous: quadratic wake-ups took 48 s for 10,000 (issue 13); linear takes milliseconds.
    assert.ok(took < 10 + count, `${count} waiters took ${took.toFixed(0)} ms`);
    assert.equal(sem.available, slots);
  });
}

Deno.test("Semaphore: 3 x 1,000 async waiters in three isolates pass, each isolate in arrival order, one async wait per isolate", async () => {
  const slots = 2;
  const sem = new Semaphore(slots);
  for (let i = 0; i < slots; i++) sem.acquireSync();
  const counters = newCounters();
  const count = 1_000;
  const workers = [new SemWorker(), new SemWorker()];
  try {
    for (const w of workers) await w.call("attach", { buffer: sem.buffer });
    const inWorkers = workers.map((w) => w.call("queueMany", { counters: counters.buffer, count }));
    for (const w of workers) await w.expect("queued");
    const order: number[] = [];
    const local = Array.from({ length: count }, (_, i) =>
      sem.acquire().then(() => {
        enter(counters);
        order.push(i);
        Atomics.sub(counters, 0, 1);
        sem.release();
      }));
    await until(() => waiters(sem) >>> 16 === 3, "each isolate registers its wait");
    assert.equal(waiters(sem) >>> 16, 3, "one async wait per isolate, not per waiter");
    const start = performance.now();
    for (let i = 0; i < slots; i++) sem.release();
    const [a, b] = await Promise.all(inWorkers);
    await Promise.all(local);
    const took = performance.now() - start;
    assert.equal(a, true, "worker 0's waiters in arrival order");
    assert.equal(b, true, "worker 1's waiters in arrival order");
    assert.deepEqual(order, Array.from({ length: count }, (_, i) => i));
    assert.ok(counters[1] <= slots, `most inside: ${counters[1]}`);
    assert.equal(counters[2], 3 * count);
    assert.ok(took < 30_000, `3 x ${count} waiters took ${took.toFixed(0)} ms`);
    assert.equal(sem.available, slots);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});
