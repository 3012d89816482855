// The Atomics protocol behind `Lock`: a mutex word that names its holder and a
// waiter count in a SharedArrayBuffer, shared by every Worker that attaches to it.
//
// words (Int32, after the header of _layout.ts):
//   STATE      0 = free, otherwise the attachment id of the holder (ids are
//              1..2^31-1). Only a successful CAS 0 -> id takes the lock; only
//              release() (exchange -> 0) or forceRelease(id) (CAS id -> 0)
//              frees it. Taking the lock and recording who took it are one
//              atomic step, so a Worker terminated at any point either holds
//              the lock under its own id or does not hold it.
//   WAITERS    bits 0..15: sync waiters (SYNC_ONE each), threads between "about
//              to wait" and "done waiting" in acquireSync() (at most 65535).
//              Bits 16..31: async waits (ASYNC_ONE each), tasks between "about
//              to wait" and "done waiting" plus abandoned async waits still
//              registered on STATE: at most 65535 at once.
//              Each field is never less than the number of waits of its kind
//              registered on STATE.
//
// Transitions:
//   acquire  CAS STATE 0 -> id.
//   wait     WAITERS += SYNC_ONE (or ASYNC_ONE); loop { CAS 0 -> id; wait on
//            STATE while it is the value the CAS saw }; WAITERS -= the same.
//            The waiter counts itself before its CAS, so a release either sees
//            WAITERS > 0 and notifies, or happened before the CAS, which then
//            succeeds (no lost wake-up).
//   release  STATE := 0 (exchange); then, by the WAITERS it loads: async waits
//            counted -> notify all; only sync waiters -> notify one; none -> none.
//   force    forceRelease(id): CAS STATE id -> 0, then notify as release does.
//   give up  (async timeout or abort) the wait left registered on STATE stays
//            counted (WAITERS += ASYNC_ONE) until a notify reaches it. After a
//            timeout the waiter makes one last CAS: if the lock is held, its
//            holder's release will notify; if it is free, the waiter takes it.
//            After an abort it cannot take the lock, so if STATE is 0 it passes
//            the possible wake-up on with a notify.
//
// Why all async waits are woken: a wake-up given to an async wait runs only
// when its thread's event loop does. If that thread is blocked (in a sync
// acquire of this very lock, or anything else), a single wake-up handed to its
// async wait would strand every other waiter, including the blocked thread's
// own sync waiter. Sync waiters always run when woken, so one suffices when
// they are all there is; abandoned async waits need no separate count, since
// they are woken with the rest.
//
// Fairness: none, as with Python's threading.Lock and Go's sync.Mutex in normal
// mode. A released lock goes to whichever thread's CAS lands first: a woken
// waiter may lose it to a newcomer on the fast path and wait again. This keeps
// the uncontended path to one CAS and lets a thread that releases and
// re-acquires in a loop keep its cache warm; the price is that under a steady
// stream of acquirers a waiter can be passed over repeatedly. Sync waiters are
// woken one per release in the engine's FIFO order; async waiters all at once.
//
// Dead Workers: a Worker terminated while holding leaves STATE = its id, which
// forceRelease(id) clears exactly once. (Measured in Deno 2.9: terminate()
// stops a Worker only when its event loop next turns, never inside a
// synchronous step; the design does not depend on it.) A Worker terminated while waiting
// leaves its WAITERS count behind (an upper bound: extra notifies, never a lost
// one). Worker.terminate() does not interrupt Atomics.wait: a Worker blocked in
// acquireSync() stays registered, and when woken runs on until it returns to
// its event loop, so it may still take (and release) the lock after it was
// terminated and after forceRelease(); see Lock.forceRelease().

import { attachBuffer, HEADER_WORDS, makeBuffer, nextId } from "./_layout.ts";
import type { Waiting } from "../_options.ts";
import { type Abandonment, waitAsync } from "./_wait.ts";

/** Index of the lock word: 0 or the holder's attachment id. */
const STATE = HEADER_WORDS;
/** Index of the waiter counts (sync in bits 0..15, async in bits 16..31): upper bounds. */
const WAITERS = HEADER_WORDS + 1;
/** Words in a Lock buffer. */
const WORDS = HEADER_WORDS + 2;

/** STATE: nobody holds the lock. */
const FREE = 0;
/** WAITERS: one sync waiter. */
const SYNC_ONE = 1;
/** WAITERS: one async wait (live or abandoned). */
const ASYNC_ONE = 1 << 16;

/** "FLck": marks a Lock buffer. */
const LOCK_MAGIC = 0x464c636b;
/** Bumped whenever a word above changes meaning (2: STATE holds the holder id). */
const LOCK_LAYOUT = 2;

/** Load-and-CAS rounds tried before a contended acquire registers as a waiter. */
const SPIN = 100;

/** Whether a WAITERS value counts any async wait. */
const hasAsyncWaits = (w: number) => w >>> 16 !== 0;

/** One attachment (one Worker's view) of a shared mutex word. */
export class RawLock implements Abandonment {
  readonly view: Int32Array;
  /** This attachment's holder id, unique within the buffer: the value STATE takes while it holds. */
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

  /** The attachment id that holds the lock, 0 when free. */
  get holder(): number {
    return Atomics.load(this.view, STATE);
  }

  /** One attempt; never waits. */
  tryAcquire(): boolean {
    // Fast path: one CAS, no allocation; the CAS also records the holder.
    return Atomics.compareExchange(this.view, STATE, FREE, this.id) === FREE;
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
    if (Atomics.exchange(this.view, STATE, FREE) === FREE) return false;
    const waiters = Atomics.load(this.view, WAITERS);
    if (waiters !== 0) this.#wake(waiters);
    return true;
  }

  /** Releases on behalf of attachment `id` if it holds the lock. */
  forceRelease(id: number): boolean {
    if (id === FREE || Atomics.compareExchange(this.view, STATE, id, FREE) !== id) return false;
    const waiters = Atomics.load(this.view, WAITERS);
    if (waiters !== 0) this.#wake(waiters);
    return true;
  }

  /** Wakes every async wait when any is counted (see "Why all async waits are woken"), else one sync waiter. */
  #wake(waiters: number): void {
    Atomics.notify(this.view, STATE, hasAsyncWaits(waiters) ? Infinity : 1);
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
    Atomics.add(view, WAITERS, SYNC_ONE);
    try {
      for (;;) {
        const seen = Atomics.compareExchange(view, STATE, FREE, this.id);
        if (seen === FREE) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        Atomics.wait(view, STATE, seen, left);
      }
    } finally {
      Atomics.sub(view, WAITERS, SYNC_ONE);
    }
  }

  async #lockContendedAsync(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.#spin()) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    Atomics.add(view, WAITERS, ASYNC_ONE);
    try {
      for (;;) {
        const seen = Atomics.compareExchange(view, STATE, FREE, this.id);
        if (seen === FREE) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        try {
          await waitAsync(view, STATE, seen, left, signal, this);
        } catch (reason) {
          // Aborted: a wake-up meant for us may have been swallowed; pass it on.
          if (Atomics.load(view, STATE) === FREE) {
            const waiters = Atomics.load(view, WAITERS);
            if (waiters !== 0) this.#wake(waiters);
          }
          throw reason;
        }
      }
    } finally {
      Atomics.sub(view, WAITERS, ASYNC_ONE);
    }
  }

  onAbandon(): void {
    Atomics.add(this.view, WAITERS, ASYNC_ONE);
  }

  onAbandonedWake(): void {
    Atomics.sub(this.view, WAITERS, ASYNC_ONE);
  }
}
