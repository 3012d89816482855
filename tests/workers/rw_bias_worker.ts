// A Worker for the read-bias tests of tests/reader_writer_lock_test.ts: sync
// readers and writers of one ReaderWriterLock checking each other through
// shared counters. Requests: { seq, op, ...args }; replies { seq, result } or
// { seq, error } (the protocol of driver.ts).
//
// counters (Int32): [0] value (writers add 1, non-atomically), [1] readers in,
// [2] writers in, [3] violations, [4] reads done, [5] readers finished.

import { ReaderWriterLock } from "../../locks/thread/reader_writer_lock.ts";
import { BIASED, STATE } from "../../locks/thread/_raw_rwlock.ts";

declare const self: Worker;

let rw: ReaderWriterLock | undefined;

type Request = { seq: number; op: string; [key: string]: unknown };

const ops: Record<string, (r: Request) => unknown> = {
  attach: (r) => {
    rw = ReaderWriterLock.from(r.buffer as SharedArrayBuffer);
    return rw.id;
  },
  /** `reads` sync read holds back to back; each checks that no writer is in. */
  readLoop: (r) => {
    const c = new Int32Array(r.counters as SharedArrayBuffer);
    for (let i = 0; i < (r.reads as number); i++) {
      rw!.acquireReadLockSync();
      Atomics.add(c, 1, 1);
      if (Atomics.load(c, 2) !== 0) Atomics.add(c, 3, 1);
      Atomics.sub(c, 1, 1);
      rw!.releaseReadLock();
      Atomics.add(c, 4, 1);
    }
    Atomics.add(c, 5, 1);
  },
  /**
   * `writes` sync write holds, each after the readers have done `gap` more
   * reads (or all finished), so that the bias has come back in between;
   * each checks that nobody else is in. Returns how many found the bias on.
   */
  writeLoop: (r) => {
    const c = new Int32Array(r.counters as SharedArrayBuffer);
    const view = new Int32Array(rw!.buffer);
    let biased = 0;
    for (let i = 0; i < (r.writes as number); i++) {
      const target = Atomics.load(c, 4) + (r.gap as number);
      while (Atomics.load(c, 4) < target && Atomics.load(c, 5) < (r.readers as number)) {
        Atomics.wait(c, 5, Atomics.load(c, 5), 1); // the readers run on: look again soon
      }
      if ((Atomics.load(view, STATE) & BIASED) !== 0) biased++;
      rw!.acquireWriteLockSync();
      if (Atomics.add(c, 2, 1) !== 0 || Atomics.load(c, 1) !== 0) Atomics.add(c, 3, 1);
      const seen = c[0];
      if (Atomics.load(c, 1) !== 0) Atomics.add(c, 3, 1);
      c[0] = seen + 1;
      Atomics.sub(c, 2, 1);
      rw!.releaseWriteLock();
    }
    return biased;
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
