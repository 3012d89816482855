// A Worker that queues many async waiters on a Lock or a ReaderWriterLock (as
// writers), for tests/thread_waiters_test.ts. One request at a time:
//   { op: "queue", kind, buffer, counters, n }  queues n waiters (see passThrough),
//       posts { event: "queued" } once all n wait, then { event: "done", ...Tally }.
//   { op: "syncBehindOwn", kind, buffer, counters, n }  queues n async waiters
//       (ReaderWriterLock: readers), posts "queued", sets counters[SYNC_WAITING]
//       and blocks in a sync acquire (read) behind them; posts
//       { event: "done", ...Tally, syncGot } when all passed.

import { Lock } from "../../locks/thread/lock.ts";
import { ReaderWriterLock } from "../../locks/thread/reader_writer_lock.ts";
import { type Kind, passThrough, SYNC_WAITING, type Tally } from "./waiters_common.ts";

declare const self: Worker;

interface Request {
  op: "queue" | "syncBehindOwn";
  kind: Kind;
  buffer: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  n: number;
}

self.onmessage = async (e: MessageEvent<Request>) => {
  const { op, kind, n } = e.data;
  const counters = new Int32Array(e.data.counters);
  const lock = kind === "lock" ? Lock.from(e.data.buffer) : ReaderWriterLock.from(e.data.buffer);
  const tally: Promise<Tally> = passThrough(lock, counters, n, { read: op === "syncBehindOwn" });
  self.postMessage({ event: "queued", id: lock.id });
  if (op === "queue") {
    self.postMessage({ event: "done", ...await tally });
    return;
  }
  // The thread blocks behind its own queued async waiters: their watcher
  // cannot run until the sync acquire returns, so only a release that wakes
  // every wait on the word can reach the sync waiter.
  Atomics.store(counters, SYNC_WAITING, 1);
  const syncGot = lock instanceof Lock
    ? lock.acquireSync({ timeout: 20_000 })
    : lock.acquireReadLockSync({ timeout: 20_000 });
  if (syncGot) {
    if (lock instanceof Lock) lock.release();
    else lock.releaseReadLock();
  }
  self.postMessage({ event: "done", ...await tally, syncGot });
};
