// ReaderWriterLock: the Atomics reader-writer lock shared between Workers. Runs without --allow-ffi:
//   deno test --allow-read tests/reader_writer_lock_test.ts

import assert from "node:assert/strict";
import { ReaderWriterLock } from "../locks/thread/reader_writer_lock.ts";
import { Lock } from "../locks/thread/lock.ts";
import { LockError, LockTimeoutError } from "../errors.ts";
import { Driven, pause, until } from "./workers/driver.ts";
import { BIASED, REBIAS_AFTER, SLOT_IDS, STATE } from "../locks/thread/_raw_rwlock.ts";

/** Queued writers, read from the state word (layout 3: word 4, bits 17..28). White-box, for ordering tests. */
function queuedWriters(rw: ReaderWriterLock): number {
  return (Atomics.load(new Int32Array(rw.buffer), 4) >> 17) & 0xfff;
}

/** The state word (white-box, for the read-bias tests). */
const stateOf = (rw: ReaderWriterLock) => Atomics.load(new Int32Array(rw.buffer), STATE);
/** Whether readers with a slot take read holds in it now. */
const isBiased = (rw: ReaderWriterLock) => (stateOf(rw) & BIASED) !== 0;
/** Turns the read bias on the way the protocol does: REBIAS_AFTER read pairs through STATE. */
function bias(rw: ReaderWriterLock): void {
  for (let i = 0; i <= REBIAS_AFTER && !isBiased(rw); i++) {
    rw.acquireReadLockSync();
    rw.releaseReadLock();
  }
  assert.equal(isBiased(rw), true, "the bias is on");
}

async function attached(rw: ReaderWriterLock): Promise<Driven> {
  const w = new Driven();
  await w.call("attachRw", { buffer: rw.buffer });
  return w;
}

Deno.test("new ReaderWriterLock() starts free with no pending writers", () => {
  const rw = new ReaderWriterLock();
  assert.equal(rw.owner, null);
  assert.equal(rw.hasPendingWriters, false);
  assert.equal(rw.isReader(), false);
  assert.equal(rw.isWriter(), false);
});

Deno.test("ReaderWriterLock sync holds are reentrant for readers and writers", () => {
  const rw = new ReaderWriterLock();
  assert.equal(rw.acquireReadLockSync(), true);
  assert.equal(rw.acquireReadLockSync({ blocking: false }), true);
  rw.releaseReadLock();
  assert.equal(rw.owner, "r");
  rw.releaseReadLock();
  assert.equal(rw.owner, null);
  assert.equal(rw.acquireWriteLockSync(), true);
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
  assert.equal(rw.acquireReadLockSync(), true); // a writer may read
  assert.equal(rw.isWriter(), true);
  assert.equal(rw.isReader(), true);
  rw.releaseReadLock();
  rw.releaseWriteLock();
  assert.equal(rw.owner, "w");
  rw.releaseWriteLock();
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock: releasing the write lock while reading downgrades to a read hold", () => {
  const rw = new ReaderWriterLock();
  const other = ReaderWriterLock.from(rw.buffer);
  rw.acquireWriteLockSync();
  rw.acquireReadLockSync();
  rw.releaseWriteLock();
  assert.equal(rw.owner, "r");
  assert.equal(other.acquireReadLockSync({ blocking: false }), true);
  other.releaseReadLock();
  assert.equal(other.acquireWriteLockSync({ blocking: false }), false);
  rw.releaseReadLock();
  assert.equal(other.acquireWriteLockSync({ blocking: false }), true);
  other.releaseWriteLock();
});

Deno.test("ReaderWriterLock refuses an upgrade at once with LockError", async () => {
  const rw = new ReaderWriterLock();
  rw.acquireReadLockSync();
  assert.throws(() => rw.acquireWriteLockSync(), /no upgrade/);
  assert.throws(() => rw.acquireWriteLockSync({ blocking: false }), LockError);
  rw.releaseReadLock();
  await rw.withReadLock(async () => {
    await assert.rejects(rw.acquireWriteLock(), /no upgrade/);
    await assert.rejects(rw.withWriteLock(() => {}), LockError);
  });
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock release without a hold throws LockError", () => {
  const rw = new ReaderWriterLock();
  assert.throws(() => rw.releaseReadLock(), LockError);
  assert.throws(() => rw.releaseWriteLock(), LockError);
  rw.acquireReadLockSync();
  assert.throws(() => rw.releaseWriteLock(), /holds no write lock/);
  rw.releaseReadLock();
});

Deno.test("ReaderWriterLock.from() refuses a foreign or wrong buffer with TypeError", () => {
  const rw = new ReaderWriterLock();
  assert.throws(() => ReaderWriterLock.from(new Lock().buffer), TypeError);
  assert.throws(() => Lock.from(rw.buffer), TypeError);
  assert.throws(
    () => ReaderWriterLock.from(new SharedArrayBuffer(rw.buffer.byteLength)),
    /not made/,
  );
  assert.throws(() => ReaderWriterLock.from({} as SharedArrayBuffer), TypeError);
  const copy = new SharedArrayBuffer(rw.buffer.byteLength);
  new Int32Array(copy).set(new Int32Array(rw.buffer));
  new Int32Array(copy)[1] = 99; // another layout version
  assert.throws(() => ReaderWriterLock.from(copy), /layout version 99/);
});

Deno.test("ReaderWriterLock async acquisitions are separate holders that exclude each other", async () => {
  const rw = new ReaderWriterLock();
  assert.equal(await rw.acquireWriteLock(), true);
  assert.equal(await rw.acquireWriteLock({ blocking: false }), false);
  assert.equal(await rw.acquireReadLock({ timeout: 10 }), false);
  rw.releaseWriteLock();
  const counters = { readers: 0, writers: 0, bad: 0 };
  await Promise.all(Array.from({ length: 6 }, async (_, task) => {
    for (let i = 0; i < 20; i++) {
      if ((i + task) % 3 === 0) {
        await rw.withWriteLock(async () => {
          if (counters.writers++ !== 0 || counters.readers !== 0) counters.bad++;
          await pause(0);
          counters.writers--;
        });
      } else {
        await using _r = await rw.readLock();
        counters.readers++;
        if (counters.writers !== 0) counters.bad++;
        await pause(0);
        counters.readers--;
      }
    }
  }));
  assert.equal(counters.bad, 0);
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock with… callbacks are reentrant for their own async chain", async () => {
  const rw = new ReaderWriterLock();
  const result = await rw.withWriteLock(async () => {
    assert.equal(rw.isWriter(), true);
    const inner = await rw.withReadLock(async () => {
      assert.equal(rw.isReader(), true);
      return await rw.withWriteLock(() => "nested");
    });
    assert.equal(await rw.acquireWriteLock({ blocking: false }), true);
    rw.releaseWriteLock();
    {
      await using _r = await rw.readLock({ blocking: false });
    }
    return inner;
  });
  assert.equal(result, "nested");
  assert.equal(rw.owner, null);
  assert.equal(rw.isWriter(), false);
  await rw.withReadLock(() => rw.withReadLock(() => assert.equal(rw.owner, "r")));
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock with… callbacks release however the callback ends", async () => {
  const rw = new ReaderWriterLock();
  await assert.rejects(rw.withWriteLock(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(rw.owner, null);
  await rw.withReadLock(async () => {
    await rw.acquireReadLock(); // a nested hold left behind is dropped with the callback's
  });
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock guards release at the end of a using block", async () => {
  const rw = new ReaderWriterLock();
  {
    using _w = rw.writeLockSync();
    assert.equal(rw.owner, "w");
    await assert.rejects(rw.readLock({ blocking: false }), LockTimeoutError);
  }
  {
    using _r = rw.readLockSync();
    await using _r2 = await rw.readLock();
    assert.equal(rw.owner, "r");
    await assert.rejects(rw.writeLock({ timeout: 5 }), LockTimeoutError);
  }
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock: a sync acquire that only this thread's async holder could grant throws", async () => {
  const rw = new ReaderWriterLock();
  assert.equal(await rw.acquireReadLock(), true); // an async holder of this thread
  assert.throws(() => rw.acquireWriteLockSync(), /deadlock/);
  assert.throws(() => rw.acquireWriteLockSync({ timeout: 50 }), LockError);
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), false);
  await using w = await attached(rw);
  const writer = w.call("rwAcquire", { write: true, sync: true });
  await w.expect("waiting");
  await until(() => rw.hasPendingWriters, "the Worker's writer queues");
  assert.throws(() => rw.acquireReadLockSync(), /deadlock/); // behind a writer that waits for us
  rw.releaseReadLock();
  await w.expect("locked");
  assert.equal(await writer, true);
  await w.call("rwRelease", { write: true });
});

Deno.test("ReaderWriterLock: a waiting writer in another Worker makes new readers wait", async () => {
  const rw = new ReaderWriterLock();
  await using writer = await attached(rw);
  await using reader = await attached(rw);
  rw.acquireReadLockSync();
  const got = writer.call("rwAcquire", { write: true, sync: true });
  await writer.expect("waiting");
  await until(() => rw.hasPendingWriters, "the writer queues");
  assert.equal(await reader.call("rwTryRead"), false);
  assert.equal(await rw.acquireReadLock({ blocking: false }), false); // a new holder
  assert.equal(rw.acquireReadLockSync({ blocking: false }), true); // reentrant: never refused
  rw.releaseReadLock();
  assert.equal(rw.owner, "r");
  rw.releaseReadLock();
  await writer.expect("locked");
  assert.equal(await got, true);
  assert.equal(rw.owner, "w");
  assert.equal(await reader.call("rwTryRead"), false);
  await writer.call("rwRelease", { write: true });
  assert.equal(await reader.call("rwTryRead"), true);
});

Deno.test("ReaderWriterLock serves waiting writers in arrival order across Workers", async () => {
  const rw = new ReaderWriterLock();
  const order = new Int32Array(new SharedArrayBuffer(4 * 5));
  const workers = await Promise.all([1, 2, 3, 4].map(() => attached(rw)));
  try {
    rw.acquireWriteLockSync();
    const done = [];
    for (const [i, w] of workers.entries()) {
      done.push(w.call("rwWriteAndRecord", { order: order.buffer, tag: i + 1, sync: i % 2 === 0 }));
      await w.expect("waiting");
      await until(() => queuedWriters(rw) === i + 1, `writer ${i + 1} queues`);
    }
    rw.releaseWriteLock();
    await Promise.all(done);
    assert.deepEqual([...order.subarray(1)], [1, 2, 3, 4]);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});

Deno.test("ReaderWriterLock: a writer that times out leaves the queue and the next is served", async () => {
  const rw = new ReaderWriterLock();
  await using w = await attached(rw);
  rw.acquireReadLockSync();
  assert.equal(await rw.acquireWriteLock({ timeout: 20 }), false); // another holder; queued then gives up
  assert.equal(rw.hasPendingWriters, false);
  const second = w.call("rwAcquire", { write: true, sync: false });
  await w.expect("waiting");
  await until(() => rw.hasPendingWriters, "the Worker's writer queues");
  const third = rw.acquireWriteLock({ timeout: 30 }); // queues behind, then times out
  await until(() => queuedWriters(rw) === 2, "two writers queue");
  assert.equal(await third, false);
  rw.releaseReadLock();
  await w.expect("locked");
  assert.equal(await second, true);
  await w.call("rwRelease", { write: true });
  assert.equal(rw.owner, null);
  assert.equal(rw.acquireReadLockSync({ blocking: false }), true);
  rw.releaseReadLock();
});

Deno.test("ReaderWriterLock: the head writer timing out lets readers in again", async () => {
  const rw = new ReaderWriterLock();
  await using w = await attached(rw);
  await w.call("rwAcquire", { write: false, sync: true });
  await w.expect("waiting");
  await w.expect("locked");
  assert.equal(rw.acquireWriteLockSync({ timeout: 20 }), false);
  assert.equal(rw.hasPendingWriters, false);
  assert.equal(rw.acquireReadLockSync({ blocking: false }), true);
  rw.releaseReadLock();
  await w.call("rwRelease", { write: false });
});

Deno.test("ReaderWriterLock async acquires reject on abort and leave the counters consistent", async () => {
  const rw = new ReaderWriterLock();
  await using w = await attached(rw);
  await w.call("rwAcquire", { write: true, sync: true });
  await w.expect("waiting");
  await w.expect("locked");
  const controller = new AbortController();
  const writer = rw.acquireWriteLock({ signal: controller.signal });
  const reader = rw.acquireReadLock({ signal: controller.signal });
  await until(() => rw.hasPendingWriters, "the writer queues");
  controller.abort(new Error("stop"));
  await assert.rejects(writer, /stop/);
  await assert.rejects(reader, /stop/);
  assert.equal(rw.hasPendingWriters, false);
  const next = rw.acquireWriteLock();
  await w.call("rwRelease", { write: true });
  assert.equal(await next, true);
  rw.releaseWriteLock();
  assert.equal(rw.owner, null);
});

Deno.test("ReaderWriterLock.acquireWriteLock() keeps the event loop running while it waits", async () => {
  const rw = new ReaderWriterLock();
  await using w = await attached(rw);
  await w.call("rwAcquire", { write: false, sync: true });
  await w.expect("waiting");
  await w.expect("locked");
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const writer = rw.acquireWriteLock();
    const before = ticks;
    while (ticks < before + 5) await pause(1);
    assert.equal(rw.owner, "r");
    await w.call("rwRelease", { write: false });
    assert.equal(await writer, true);
  } finally {
    clearInterval(timer);
  }
  rw.releaseWriteLock();
});

Deno.test("ReaderWriterLock.forceRelease() recovers holds and queue places of a terminated Worker", async () => {
  const rw = new ReaderWriterLock();
  const reader = new Driven();
  const writer = new Driven();
  try {
    const readerId = await reader.call("attachRw", { buffer: rw.buffer }) as number;
    const writerId = await writer.call("attachRw", { buffer: rw.buffer }) as number;
    await reader.call("rwAcquire", { write: false, sync: true });
    await reader.expect("waiting");
    await reader.expect("locked");
    writer.call("rwAcquire", { write: true, sync: true }).catch(() => {});
    await writer.expect("waiting");
    await until(() => rw.hasPendingWriters, "the writer queues");
    reader.worker.terminate();
    writer.worker.terminate();
    assert.equal(rw.owner, "r");
    assert.equal(rw.forceRelease(writerId), true); // its place in the queue
    assert.equal(rw.hasPendingWriters, false);
    assert.equal(rw.forceRelease(readerId), true); // its read hold
    assert.equal(rw.owner, null);
    assert.equal(rw.forceRelease(readerId), false);
    assert.equal(rw.acquireWriteLockSync({ timeout: 100 }), true);
    rw.releaseWriteLock();
  } finally {
    reader.worker.terminate();
    writer.worker.terminate();
  }
});

Deno.test("ReaderWriterLock: Workers hammering with sync and async calls never overlap nor lose writes", async () => {
  const rw = new ReaderWriterLock();
  const counters = new Int32Array(new SharedArrayBuffer(16)); // value, readers in, writers in, violations
  const workers = await Promise.all([1, 2, 3, 4].map(() => attached(rw)));
  try {
    const iterations = 300;
    await Promise.all(
      workers.map((w) => w.call("hammerRw", { counters: counters.buffer, iterations })),
    );
    const writes = Array.from({ length: iterations }, (_, i) =>
      i).filter((i) => i % 3 === 0).length;
    assert.equal(counters[3], 0, "a writer overlapped another holder");
    assert.equal(counters[0], writes * workers.length);
    assert.equal(rw.owner, null);
    assert.equal(rw.hasPendingWriters, false);
  } finally {
    for (const w of workers) w.worker.terminate();
  }
});

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

Deno.test("ReaderWriterLock.forceRelease() recovers from Workers terminated at random points, never undoing anything twice", async () => {
  // Limits: Deno stops a terminated Worker only when its event loop turns, so
  // terminate() lands between tasks (holding, queued, waiting, idle), never
  // inside a synchronous step; within that, no round is
  // sure to hit a given window (take-then-record, cancel, pass the head on),
  // but over the rounds many points are hit. Checked: once every Worker is gone
  // and force-released, nobody holds or queues (a queued-writer count pushed
  // below zero would leave hasPendingWriters true for ever), repeated
  // forceRelease() calls change nothing, and the lock can be taken both ways.
  // The Workers make no sync waits (terminate() does not interrupt
  // Atomics.wait, and a Worker woken after it would run on).
  const rw = new ReaderWriterLock();
  for (let round = 0; round < 8; round++) {
    const workers = [new Driven(), new Driven(), new Driven()];
    try {
      const ids: number[] = [];
      for (const w of workers) ids.push(await w.call("attachRw", { buffer: rw.buffer }) as number);
      const beat = new Int32Array(new SharedArrayBuffer(4));
      for (const w of workers) w.call("churn", { rw: true, beat: beat.buffer }).catch(() => {});
      for (const w of workers) await w.expect("churning");
      await pause(round % 4); // a different point of the churn each round; nothing depends on it
      for (const w of workers) w.worker.terminate();
      await stopped(beat);
      for (const id of ids) rw.forceRelease(id);
      assert.equal(rw.owner, null, `round ${round}`);
      assert.equal(rw.hasPendingWriters, false, `round ${round}`);
      for (const id of ids) assert.equal(rw.forceRelease(id), false);
      // At rest but for the bias bits (BIASED, SCAN: a revocation not yet scanned).
      const state = new Int32Array(rw.buffer)[4] & ~(BIASED | (1 << 29));
      assert.equal(state, 0, `round ${round}: state word 0x${state.toString(16)}`);
      assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
      rw.releaseWriteLock();
      assert.equal(rw.acquireReadLockSync({ blocking: false }), true);
      rw.releaseReadLock();
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  }
});

// ---- read bias (per-attachment slots; see "Read bias" in _raw_rwlock.ts) ----

const BIAS_WORKER = new URL("./workers/rw_bias_worker.ts", import.meta.url);

Deno.test("ReaderWriterLock: biased readers in two Workers and a writer Worker never overlap", async () => {
  const rw = new ReaderWriterLock();
  bias(rw);
  // value, readers in, writers in, violations, reads done, readers finished
  const counters = new Int32Array(new SharedArrayBuffer(24));
  const readers = [new Driven(BIAS_WORKER), new Driven(BIAS_WORKER)];
  const writer = new Driven(BIAS_WORKER);
  try {
    for (const w of [...readers, writer]) await w.call("attach", { buffer: rw.buffer });
    const reads = 20 * REBIAS_AFTER, writes = 10;
    const done = readers.map((w) => w.call("readLoop", { counters: counters.buffer, reads }));
    const biasedWrites = await writer.call("writeLoop", {
      counters: counters.buffer,
      writes,
      gap: 3 * REBIAS_AFTER,
      readers: readers.length,
    }) as number;
    await Promise.all(done);
    assert.equal(counters[3], 0, "a writer overlapped another holder");
    assert.equal(counters[0], writes);
    assert.equal(counters[4], 2 * reads);
    assert.ok(biasedWrites > 0, "no write found the bias on: the biased path was not exercised");
    assert.equal(rw.owner, null);
    assert.equal(rw.hasPendingWriters, false);
  } finally {
    for (const w of [...readers, writer]) w.worker.terminate();
  }
});

Deno.test("ReaderWriterLock: a writer revokes the bias while biased readers hold, waits for them, and new readers wait behind it", async () => {
  const rw = new ReaderWriterLock();
  bias(rw);
  await using reader = await attached(rw);
  await using late = await attached(rw);
  await reader.call("rwAcquire", { write: false, sync: true });
  await reader.expect("waiting");
  await reader.expect("locked");
  assert.equal(stateOf(rw) & 0xffff, 0, "the read hold is in the Worker's slot, not in STATE");
  assert.equal(rw.owner, "r");
  // A try revokes the bias, finds the biased reader and gives the lock back.
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), false);
  assert.equal(isBiased(rw), false);
  const writer = rw.acquireWriteLock();
  await until(() => rw.hasPendingWriters, "the writer queues");
  assert.equal(await late.call("rwTryRead"), false, "a new reader got past the queued writer");
  await pause(5); // time for the writer to be let in wrongly: it must not be
  assert.equal(rw.isWriter(false), false);
  await reader.call("rwRelease", { write: false });
  assert.equal(await writer, true);
  assert.equal(rw.owner, "w");
  assert.equal(await late.call("rwTryRead"), false);
  rw.releaseWriteLock();
  assert.equal(await late.call("rwTryRead"), true);
});

Deno.test("ReaderWriterLock: the bias comes back after REBIAS_AFTER reads, and a write revokes it again", () => {
  const rw = new ReaderWriterLock();
  const other = ReaderWriterLock.from(rw.buffer);
  assert.equal(isBiased(rw), false, "a new lock starts unbiased: its first writes cost no scan");
  bias(rw);
  for (let round = 0; round < 3; round++) {
    assert.equal(other.acquireReadLockSync(), true); // biased
    assert.equal(stateOf(rw) & 0xffff, 0);
    assert.equal(rw.acquireWriteLockSync({ blocking: false }), false);
    assert.equal(isBiased(rw), false);
    other.releaseReadLock();
    assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
    assert.equal(stateOf(rw) & (1 << 29), 0, "the scan that found the slots empty cleared SCAN");
    rw.releaseWriteLock();
    // Each attachment counts its own reads through STATE since it last re-biased.
    const counter = ReaderWriterLock.from(rw.buffer);
    for (let i = 0; i < REBIAS_AFTER; i++) {
      counter.acquireReadLockSync();
      counter.releaseReadLock();
    }
    assert.equal(isBiased(rw), false, "re-biased too early");
    counter.acquireReadLockSync();
    assert.equal(isBiased(rw), true, "not re-biased after REBIAS_AFTER reads");
    counter.releaseReadLock();
  }
});

Deno.test("ReaderWriterLock: a thread's biased and STATE read holds, reentrancy and downgrade mix", async () => {
  const rw = new ReaderWriterLock();
  bias(rw);
  rw.acquireReadLockSync();
  const a = await rw.acquireReadLock(); // another holder, biased too
  assert.equal(a, true);
  assert.equal(rw.owner, "r");
  rw.releaseReadLock();
  rw.releaseReadLock();
  assert.equal(rw.owner, null);
  rw.acquireWriteLockSync(); // revokes
  rw.acquireReadLockSync();
  rw.releaseWriteLock(); // downgrade: a read hold in STATE
  assert.equal(stateOf(rw) & 0xffff, 1);
  assert.equal(await rw.acquireReadLock(), true);
  rw.releaseReadLock();
  rw.releaseReadLock();
  assert.equal(rw.owner, null);
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
  rw.releaseWriteLock();
});

Deno.test("ReaderWriterLock.forceRelease() frees the biased read holds of a terminated Worker, once", async () => {
  const rw = new ReaderWriterLock();
  bias(rw);
  const reader = new Driven();
  try {
    const id = await reader.call("attachRw", { buffer: rw.buffer }) as number;
    for (let i = 0; i < 2; i++) {
      await reader.call("rwAcquire", { write: false, sync: i === 0 });
      await reader.expect("waiting");
      await reader.expect("locked");
    }
    assert.equal(stateOf(rw) & 0xffff, 0, "both holds are biased");
    const writer = rw.acquireWriteLock();
    await until(() => rw.hasPendingWriters, "the writer queues");
    reader.worker.terminate();
    assert.equal(rw.forceRelease(id), true);
    assert.equal(await writer, true);
    assert.equal(rw.forceRelease(id), false);
    rw.releaseWriteLock();
    assert.equal(rw.owner, null);
  } finally {
    reader.worker.terminate();
  }
});

Deno.test("ReaderWriterLock: attachments with ids beyond the slots read through STATE and are recovered", () => {
  const rw = new ReaderWriterLock();
  bias(rw);
  let beyond = ReaderWriterLock.from(rw.buffer);
  while (beyond.id <= SLOT_IDS) beyond = ReaderWriterLock.from(rw.buffer);
  assert.equal(beyond.acquireReadLockSync(), true);
  assert.equal(stateOf(rw) & 0xffff, 1, "counted in STATE");
  assert.equal(isBiased(rw), true, "and the bias stays on for the others");
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), false);
  assert.equal(rw.forceRelease(beyond.id), true);
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
  rw.releaseWriteLock();
});

Deno.test("ReaderWriterLock.from() refuses a buffer made by layout 2 (before the read bias) with TypeError", () => {
  const rw = new ReaderWriterLock();
  // Layout 2's buffer: header (magic "FRwL", layout 2, its size), 2,316 words, no slots.
  const old = new SharedArrayBuffer(2316 * 4);
  new Int32Array(old).set([0x4652774c, 2, 2316 * 4, 1]);
  assert.throws(() => ReaderWriterLock.from(old), /the buffer is 9264 bytes/);
  // The same header at this layout's size is refused by its version.
  const same = new SharedArrayBuffer(rw.buffer.byteLength);
  new Int32Array(same).set([0x4652774c, 2, rw.buffer.byteLength, 1]);
  assert.throws(
    () => ReaderWriterLock.from(same),
    /layout version 2, this library reads version 3/,
  );
});
