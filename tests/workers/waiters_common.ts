// What the many-waiters tests run in every isolate (main thread and Workers).

import { Lock } from "../../locks/thread/lock.ts";
import type { ReaderWriterLock } from "../../locks/thread/reader_writer_lock.ts";

/** Which lock: a `Lock`, or a `ReaderWriterLock` taken for writing. */
export type Kind = "lock" | "rw";

/** counters[INSIDE]: waiters inside the lock now, in every isolate. */
export const INSIDE = 0;
/** counters[OVERLAPS]: times a waiter found somebody else inside. */
export const OVERLAPS = 1;
/** counters[PASSED]: waiters that went through, in every isolate. */
export const PASSED = 2;
/** counters[SYNC_WAITING]: set by a Worker about to block in a sync acquire. */
export const SYNC_WAITING = 3;
/** Words of the counters buffer. */
export const COUNTER_WORDS = 4;

/** What one isolate saw of its own waiters. */
export interface Tally {
  /** Waiters that got the lock. */
  got: number;
  /** Waiters that got it out of their arrival order in this isolate. */
  outOfOrder: number;
  /** Waiters that timed out (resolved false) or were aborted (rejected). */
  gaveUp: number;
}

/** How the waiters of {@linkcode passThrough} behave. */
export interface Pass {
  /** Waiter i's acquire options. */
  options?: (i: number) => { timeout?: number; signal?: AbortSignal } | undefined;
  /** Called by waiter i once inside, before it leaves. */
  inside?: (i: number) => void;
  /** The tally to count into (to watch it while the waiters wait); a new one by default. */
  tally?: Tally;
  /** ReaderWriterLock only: take read locks (no exclusion check) instead of write locks. */
  read?: boolean;
}

/**
 * Queues `n` async waiters on `lock` (synchronously: each has called
 * `acquire()` when this returns its promise). Each one, once in, checks that
 * nobody else is inside (across isolates, through `counters`; not for readers)
 * and that every waiter of this isolate queued before it got in before it,
 * then leaves.
 */
export function passThrough(
  lock: Lock | ReaderWriterLock,
  counters: Int32Array,
  n: number,
  pass: Pass = {},
): Promise<Tally> {
  const options = pass.options ?? (() => undefined);
  const read = pass.read === true;
  const tally: Tally = pass.tally ?? { got: 0, outOfOrder: 0, gaveUp: 0 };
  let last = -1;
  const one = async (i: number) => {
    let got: boolean;
    try {
      got = lock instanceof Lock
        ? await lock.acquire(options(i))
        : read
        ? await lock.acquireReadLock(options(i))
        : await lock.acquireWriteLock(options(i));
    } catch {
      got = false;
    }
    if (!got) {
      tally.gaveUp++;
      return;
    }
    if (Atomics.add(counters, INSIDE, 1) !== 0 && !read) Atomics.add(counters, OVERLAPS, 1);
    if (i < last) tally.outOfOrder++;
    last = i;
    tally.got++;
    Atomics.add(counters, PASSED, 1);
    pass.inside?.(i);
    Atomics.sub(counters, INSIDE, 1);
    if (lock instanceof Lock) lock.release();
    else if (read) lock.releaseReadLock();
    else lock.releaseWriteLock();
  };
  const all: Promise<void>[] = new Array(n);
  for (let i = 0; i < n; i++) all[i] = one(i);
  return Promise.all(all).then(() => tally);
}
