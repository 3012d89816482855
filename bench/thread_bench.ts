// Micro benchmarks of the thread locks, uncontended, beside a bare
// compare-and-swap lock (the floor), V8's experimental Atomics.Mutex, and
// npm:async-mutex for the async path.
//
//   deno bench --v8-flags=--harmony-struct bench/thread_bench.ts
//
// Without --harmony-struct the Atomics.Mutex bench is ignored with a printed
// reason; without the npm registry, so is async-mutex. bench/run.ts runs this
// file with --json and puts the figures in RESULTS.md.

import { Lock, ReaderWriterLock } from "../mod.ts";

const SYNC = "thread lock: sync acquire+release";
const ASYNC = "thread lock: async acquire+release";

{
  const word = new Int32Array(new SharedArrayBuffer(4));
  Deno.bench("bare CAS lock (compareExchange + store)", { group: SYNC, baseline: true }, () => {
    if (Atomics.compareExchange(word, 0, 0, 1) !== 0) throw new Error("busy");
    Atomics.store(word, 0, 0);
  });
}

/** V8's experimental mutex: a constructor with static `lock(mutex, callback)`. */
interface AtomicsMutex {
  new (): object;
  lock(mutex: object, callback: () => void): void;
}
const AtomicsMutex = (Atomics as unknown as { Mutex?: AtomicsMutex }).Mutex;
if (AtomicsMutex === undefined) {
  console.error("SKIP V8 Atomics.Mutex: run with --v8-flags=--harmony-struct");
}
{
  const mutex = AtomicsMutex === undefined ? undefined : new AtomicsMutex();
  const empty = () => {};
  Deno.bench("V8 Atomics.Mutex.lock(m, fn)", {
    group: SYNC,
    ignore: AtomicsMutex === undefined,
  }, () => {
    AtomicsMutex!.lock(mutex!, empty);
  });
}
{
  const lock = new Lock();
  Deno.bench("Lock acquireSync()+release()", { group: SYNC }, () => {
    lock.acquireSync();
    lock.release();
  });
  Deno.bench("Lock await acquire()+release()", { group: ASYNC }, async () => {
    await lock.acquire();
    lock.release();
  });
}
{
  const rw = new ReaderWriterLock();
  Deno.bench("ReaderWriterLock acquireReadLockSync()+releaseReadLock()", { group: SYNC }, () => {
    rw.acquireReadLockSync();
    rw.releaseReadLock();
  });
  Deno.bench("ReaderWriterLock acquireWriteLockSync()+releaseWriteLock()", { group: SYNC }, () => {
    rw.acquireWriteLockSync();
    rw.releaseWriteLock();
  });
  Deno.bench("ReaderWriterLock await acquireReadLock()+release", { group: ASYNC }, async () => {
    await rw.acquireReadLock();
    rw.releaseReadLock();
  });
  Deno.bench("ReaderWriterLock await acquireWriteLock()+release", { group: ASYNC }, async () => {
    await rw.acquireWriteLock();
    rw.releaseWriteLock();
  });
}

let asyncMutex: typeof import("npm:async-mutex@0.5.0") | undefined;
try {
  // Inline on purpose: a comparison for the benches only, kept out of deno.json's imports
  // so that the library itself has no dependency at all.
  // deno-lint-ignore no-import-prefix
  asyncMutex = await import("npm:async-mutex@0.5.0");
} catch (error) {
  console.error(`SKIP npm:async-mutex: cannot load it (${error})`);
}
{
  const mutex = asyncMutex === undefined ? undefined : new asyncMutex.Mutex();
  Deno.bench("async-mutex await acquire()+release()", {
    group: ASYNC,
    baseline: true,
    ignore: mutex === undefined,
  }, async () => {
    const release = await mutex!.acquire();
    release();
  });
}
