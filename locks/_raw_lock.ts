// The Atomics protocol behind `Lock`: a mutex word and a waiter count in a
// SharedArrayBuffer, shared by every Worker that attaches to it.
//
// words (Int32, after the header of _layout.ts):
//   STATE      0 = free, 1 = held. Only a successful CAS 0 -> 1 takes the
//              lock; only release() (or forceRelease()) stores 0.
//   WAITERS    threads and tasks between "about to wait" and "done waiting",
//              plus abandoned async waits still registered on STATE. Never
//              less than the number of waits registered on STATE.
//   ABANDONED  async waits given up (timeout, abort) but still registered on
//              STATE; each may swallow one notify. Never less than their number.
//   HOLDER     attachment id of whoever took the lock, 0 when free. Written
//              with a plain store after the CAS: for recovery and diagnostics,
//              not for mutual exclusion.
//
// Transitions:
//   acquire  CAS STATE 0 -> 1, then HOLDER = id.
//   wait     WAITERS += 1; loop { CAS 0 -> 1; wait on STATE while it is 1 };
//            WAITERS -= 1. The waiter counts itself before its CAS, so a
//            release either sees WAITERS > 0 and notifies, or happened before
//            the CAS, which then succeeds (no lost wake-up).
//   release  HOLDER = 0; STATE := 0 (exchange); if WAITERS > 0, notify
//            ABANDONED + 1 waiters, so that a live waiter is woken even when
//            abandoned waits stand before it in the engine's FIFO.
//   give up  (async timeout or abort) WAITERS += 1 and ABANDONED += 1 for the
//            wait left registered, undone when a notify reaches it. After a
//            timeout the waiter makes one last CAS: if the lock is held, its
//            holder's release will count the abandoned wait; if it is free,
//            the waiter takes it. After an abort it cannot take the lock, so
//            if STATE is 0 it passes the possible wake-up on with a notify.
//
// Fairness: none, as with Python's threading.Lock and Go's sync.Mutex in normal
// mode. A released lock goes to whichever thread's CAS lands first: a woken
// waiter may lose it to a newcomer on the fast path and wait again. This keeps
// the uncontended path to one CAS and lets a thread that releases and
// re-acquires in a loop keep its cache warm; the price is that under a steady
// stream of acquirers a waiter can be passed over repeatedly. Waiting threads
// are woken in the engine's FIFO order, one per release.

import { attachBuffer, HEADER_WORDS, makeBuffer, nextId } from "./_layout.ts";
import type { Waiting } from "./_options.ts";
import { type Abandonment, waitAsync } from "./_wait.ts";

/** Index of the lock word. */
const STATE = HEADER_WORDS;
/** Index of the count of registered waiters (an upper bound). */
const WAITERS = HEADER_WORDS + 1;
/** Index of the count of abandoned async waits (an upper bound). */
const ABANDONED = HEADER_WORDS + 2;
/** Index of the holder's attachment id. */
const HOLDER = HEADER_WORDS + 3;
/** Words in a Lock buffer. */
const WORDS = HEADER_WORDS + 4;

/** STATE: nobody holds the lock. */
const FREE = 0;
/** STATE: somebody holds the lock. */
const HELD = 1;

/** "FLck": marks a Lock buffer. */
const LOCK_MAGIC = 0x464c636b;
/** Bumped whenever a word above changes meaning. */
const LOCK_LAYOUT = 1;

/** Load-and-CAS rounds tried before a contended acquire registers as a waiter. */
const SPIN = 100;

/** One attachment (one Worker's view) of a shared mutex word. */
export class RawLock implements Abandonment {
  readonly view: Int32Array;
  /** This attachment's holder id, unique within the buffer. */
  readonly id: number;

  constructor(buffer?: SharedArrayBuffer) {
    this.view = buffer === undefined
      ? makeBuffer(WORDS, LOCK_MAGIC, LOCK_LAYOUT)
      : attachBuffer(buffer, WORDS, LOCK_MAGIC, LOCK_LAYOUT, "Lock");
    this.id = nextId(this.view);
  }

  get locked(): boolean {
    return Atomics.load(this.view, STATE) !== FREE;
  }

  /** The attachment id that took the lock, 0 when free. */
  get holder(): number {
    return this.view[HOLDER];
  }

  /** One attempt; never waits. */
  tryAcquire(): boolean {
    // Fast path: one CAS, no allocation.
    if (Atomics.compareExchange(this.view, STATE, FREE, HELD) === FREE) {
      this.view[HOLDER] = this.id;
      return true;
    }
    return false;
  }

  /** Acquires, blocking the thread with `Atomics.wait` as `w` allows. */
  acquireSync(w: Waiting): boolean {
    if (this.tryAcquire()) return true;
    if (w.timeout === 0) return false;
    return this.#lockContendedSync(w.timeout);
  }

  /** Acquires, waiting with `Atomics.waitAsync` as `w` allows. */
  acquireAsync(w: Waiting): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (w.timeout === 0) return Promise.resolve(false);
    return this.#lockContendedAsync(w.timeout, w.signal);
  }

  /** Releases; returns false (changing nothing) when the lock was free. */
  release(): boolean {
    const view = this.view;
    view[HOLDER] = 0;
    if (Atomics.exchange(view, STATE, FREE) === FREE) return false;
    if (Atomics.load(view, WAITERS) !== 0) this.#wake();
    return true;
  }

  /** Releases on behalf of attachment `id` if it holds the lock. */
  forceRelease(id: number): boolean {
    if (id === 0 || Atomics.load(this.view, HOLDER) !== id) return false;
    return this.release();
  }

  #wake(): void {
    Atomics.notify(this.view, STATE, Atomics.load(this.view, ABANDONED) + 1);
  }

  #spin(): boolean {
    const view = this.view;
    for (let i = 0; i < SPIN; i++) {
      if (Atomics.load(view, STATE) === FREE && this.tryAcquire()) return true;
    }
    return false;
  }

  #lockContendedSync(timeout: number): boolean {
    if (this.#spin()) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    Atomics.add(view, WAITERS, 1);
    try {
      for (;;) {
        if (this.tryAcquire()) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        Atomics.wait(view, STATE, HELD, left);
      }
    } finally {
      Atomics.sub(view, WAITERS, 1);
    }
  }

  async #lockContendedAsync(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#spin()) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    Atomics.add(view, WAITERS, 1);
    try {
      for (;;) {
        if (this.tryAcquire()) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        try {
          await waitAsync(view, STATE, HELD, left, signal, this);
        } catch (reason) {
          // Aborted: a wake-up meant for us may have been swallowed; pass it on.
          if (Atomics.load(view, STATE) === FREE) this.#wake();
          throw reason;
        }
      }
    } finally {
      Atomics.sub(view, WAITERS, 1);
    }
  }

  onAbandon(): void {
    Atomics.add(this.view, WAITERS, 1);
    Atomics.add(this.view, ABANDONED, 1);
  }

  onAbandonedWake(): void {
    Atomics.sub(this.view, ABANDONED, 1);
    Atomics.sub(this.view, WAITERS, 1);
  }
}
