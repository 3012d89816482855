// The Atomics protocol behind `Lock`: a mutex word that names its holder and a
// waiter count in a SharedArrayBuffer, shared by every Worker that attaches to
// it; and, in front of it, a queue of the async waiters of each attachment.
//
// words (Int32, after the header of _layout.ts):
//   STATE      0 = free. Otherwise:
//                bits 0..29  the attachment id of the holder (ids are 1..2^30-1)
//                bit 30      LOOK: somebody may sleep on STATE; the release
//                            that frees the lock must look at WAITERS
//                bit 31      unused (Atomics.wait needs Int32: keep it >= 0)
//              Only a CAS 0 -> id (newcomer) or 0 -> id|LOOK (a sync waiter
//              or a watcher, which may leave others asleep) takes a free lock;
//              only release() (exchange -> 0) or forceRelease(id) (CAS
//              id[|LOOK] -> 0) frees it; a direct handoff (CAS holder -> id,
//              never through 0) passes it on and keeps LOOK. A waiter sets LOOK
//              (CAS h -> h|LOOK) before it waits, and waits only on a value with
//              LOOK; no step clears LOOK but the one that frees the lock, and
//              that step, seeing LOOK, looks at WAITERS. So a release whose
//              exchange returns no LOOK (the uncontended case) reads no other
//              word. Taking the lock and recording who took it are one atomic
//              step, so a Worker terminated at any point either holds the lock
//              under its own id or does not hold it.
//   WAITERS    bits 0..15: sync waiters (SYNC_ONE each), threads between "about
//              to wait" and "done waiting" in acquireSync() (at most 65535).
//              Bits 16..31: watchers (ASYNC_ONE each): attachments whose queue
//              of async waiters has a watcher running (at most 65535 at once).
//              Each field is never less than the number of waits of its kind
//              registered on STATE.
//   WOKEN      waits (sync or watcher) woken by a notify that have not run yet:
//              every notify adds what it woke, every woken wait takes one off
//              when it runs. Never more than the waits in flight (a notify adds
//              after it wakes), possibly less for a moment (negative is fine).
//
// Async waiters do not wait on STATE themselves. Each attachment keeps its
// async waiters in a FIFO queue in TypeScript (WaitQueue, _wait.ts) and runs at
// most one "watcher" while the queue is not empty: a loop that is the
// attachment's only Atomics.waitAsync on STATE. So a release wakes at most one
// wait per attachment (per isolate), never one per waiter, and a waiter that
// times out or is aborted just leaves the queue (its timer and listener
// cleared): no engine wait is ever abandoned.
//
// Transitions:
//   acquire  CAS STATE 0 -> id (async: only when this attachment's queue is
//            empty, so a newcomer does not pass queued waiters).
//   wait     sync: WAITERS += SYNC_ONE; loop { CAS 0 -> id|LOOK; if it saw a
//            holder h without LOOK, CAS h -> h|LOOK (seen another value: loop);
//            wait on STATE while it is h|LOOK }; WAITERS -= SYNC_ONE.
//            async: join the queue; if no watcher runs, start one.
//   watch    WAITERS += ASYNC_ONE; while the queue is not empty { CAS 0 ->
//            id|LOOK: if won, serve the head (resolve its promise) and loop;
//            else set LOOK as a sync waiter does and waitAsync on STATE while
//            it is h|LOOK }; WAITERS -= ASYNC_ONE. A watcher ends only when a
//            wake-up finds the queue empty, so its count covers its
//            registration in the engine. Sync waiters and watchers count
//            themselves before they set LOOK, and a waiter's wait sees LOOK
//            until the lock is freed, so the release that frees it sees LOOK,
//            then WAITERS > 0, and notifies (no lost wake-up).
//   release  queue of the releasing attachment empty: STATE := 0 (exchange);
//            if the old value had LOOK, then, by the WAITERS it loads: a
//            watcher counted -> notify all; only sync waiters -> notify one,
//            unless WOKEN (loaded before a second load of WAITERS) covers them
//            all; none -> none.
//            queue not empty (direct handoff): CAS STATE holder -> id, LOOK
//            kept (the holder is this attachment's id but for a
//            cross-attachment release), serve the head. Nobody is woken: the
//            lock was never free. Only after LOCAL_BATCH handoffs in a row
//            while WAITERS counts somebody besides this attachment's own
//            watcher does a release free the lock (exchange -> 0, notify all)
//            instead.
//   force    forceRelease(id): CAS STATE id[|LOOK] -> 0, then as release does.
//   give up  (async timeout or abort) the waiter leaves the queue; nothing
//            shared changes. The watcher ends at its next wake-up if the queue
//            is empty by then.
//
// Why all async waits are woken: a wake-up given to an async wait runs only
// when its thread's event loop does. If that thread is blocked (in a sync
// acquire of this very lock, or anything else), a single wake-up handed to its
// watcher would strand every other waiter, including the blocked thread's own
// sync waiter. Sync waiters always run when woken, so one suffices when they
// are all there is. With one watcher per attachment, "all" is O(isolates).
//
// Woken waiters in flight: a woken thread takes tens of µs to run on a busy
// machine, and stays counted in WAITERS until it leaves acquireSync(); meanwhile
// the running Worker may release hundreds of times. Without WOKEN each of those
// releases would notify again and wake nobody (the futex mutex avoids this by
// leaving its word at "locked" after a wake-up, until the woken one runs). So a
// release with only sync waiters skips its notify when WOKEN is at least their
// count: each of them is then awake and will CAS after this release's exchange,
// so either one takes the lock (with LOOK) or a later holder exists, on which
// it sets LOOK before it sleeps again, so that holder's release looks again;
// and a notify(1) wakes the oldest sleeper first, so no sleeper is passed
// over for ever. (Once no sleeper is left, the last one to take the lock still
// sets LOOK: one release looks at WAITERS for nothing, as the futex mutex's
// woken waiter takes its word at "locked with waiters".) A watcher left woken by a terminated Worker leaves its
// ASYNC_ONE too, which turns the skip off for good (more notifies, never fewer).
//
// Fairness: none between attachments, as with Python's threading.Lock and Go's
// sync.Mutex in normal mode; FIFO among the async waiters of one attachment. A
// freed lock goes to whichever thread's CAS lands first (a sync waiter, a
// watcher, a newcomer on the fast path). A release with async waiters queued
// in its own attachment hands the lock straight to the oldest of them, which
// costs a promise resolution instead of a wake-up through the engine; so that
// this cannot shut out other Workers and sync waiters for ever, a release
// frees the lock for everybody after LOCAL_BATCH handoffs in a row while
// anybody else waits. Sync waiters are woken one per release in the engine's
// FIFO order when no watcher runs.
//
// Dead Workers: a Worker terminated while holding leaves STATE = its id (LOOK
// maybe set), which forceRelease(id) clears once. (Measured in Deno 2.9: terminate()
// stops a Worker only when its event loop next turns, never inside a
// synchronous step; the design does not depend on it.) A Worker terminated
// while waiting leaves its WAITERS count (sync waiter or watcher) behind (an
// upper bound: extra notifies, never a lost one). Worker.terminate() does not
// interrupt Atomics.wait: a Worker blocked in acquireSync() stays registered,
// and when woken runs on until it returns to its event loop, so it may still
// take (and release) the lock after it was terminated and after
// forceRelease(); see Lock.forceRelease().

import { attachBuffer, HEADER_WORDS, makeBuffer, nextId } from "./_layout.ts";
import type { Waiting } from "../_options.ts";
import { WaitQueue } from "./_wait.ts";

/** Index of the lock word: 0, or the holder's attachment id with LOOK maybe set. */
const STATE = HEADER_WORDS;
/**
 * Index of the waiter counts (sync in bits 0..15, watchers in bits 16..31):
 * upper bounds. 16 words (64 bytes) after STATE, so never in its cache line.
 */
const WAITERS = HEADER_WORDS + 16;
/** Index of the count of waits woken and not yet run (same cache line as WAITERS). */
const WOKEN = WAITERS + 1;
/** Words in a Lock buffer. */
const WORDS = WAITERS + 2;

/** STATE: nobody holds the lock. */
const FREE = 0;
/** STATE bit 30: set only while held; the release that frees the lock must look at WAITERS. */
const LOOK = 1 << 30;
/** STATE bits 0..29: the holder's attachment id. */
const ID_MASK = LOOK - 1;
/** WAITERS: one sync waiter. */
const SYNC_ONE = 1;
/** WAITERS: one attachment's watcher (the one async wait of its queue). */
const ASYNC_ONE = 1 << 16;

/** "FLck": marks a Lock buffer. */
const LOCK_MAGIC = 0x464c636b;
/**
 * Bumped whenever a word above changes meaning or place (2: STATE holds the
 * holder id; 3: WAITERS moved; 4: STATE's LOOK bit).
 */
const LOCK_LAYOUT = 4;

/** Load-and-CAS rounds before a contended acquire waits: async, sync (see "Spin policy" below). */
const SPIN = 100, SYNC_SPIN = 0;
/**
 * Direct local handoffs in a row while somebody outside this attachment waits,
 * before a release frees the lock for all (see "Fairness").
 */
const LOCAL_BATCH = 32;

/** Whether a STATE value asks its release to look at WAITERS. */
const mustLook = (s: number) => (s & LOOK) !== 0;
/** Whether a WAITERS value counts any async wait. */
const hasAsyncWaits = (w: number) => w >>> 16 !== 0;
/** The sync waiters a WAITERS value counts. */
const syncWaits = (w: number) => w & 0xffff;

/** One attachment (one Worker's view) of a shared mutex word. */
export class RawLock {
  readonly view: Int32Array;
  /** This attachment's holder id, unique within the buffer: the value STATE takes while it holds. */
  readonly id: number;
  /** The async waiters of this attachment, in arrival order. */
  readonly #queue = new WaitQueue();
  /** Whether the watcher runs: its ASYNC_ONE is counted in WAITERS (invariant: queue not empty => true). */
  #watching = false;
  /** Direct handoffs since the last release that freed the lock while others waited. */
  #handoffs = 0;

  constructor(buffer?: SharedArrayBuffer) {
    this.view = buffer === undefined
      ? makeBuffer(WORDS, LOCK_MAGIC, LOCK_LAYOUT)
      : attachBuffer(buffer, WORDS, LOCK_MAGIC, LOCK_LAYOUT, "Lock");
    this.id = nextId(this.view);
    if (this.id > ID_MASK) {
      throw new RangeError(`Lock: attachment id ${this.id} is past the last one, ${ID_MASK}`);
    }
  }

  get locked(): boolean {
    return Atomics.load(this.view, STATE) !== FREE;
  }

  /** The attachment id that holds the lock, 0 when free. */
  get holder(): number {
    return Atomics.load(this.view, STATE) & ID_MASK;
  }

  /** Async waiters of this attachment now queued. */
  get queued(): number {
    return this.#queue.size;
  }

  /** One attempt; never waits. */
  tryAcquire(): boolean {
    // Fast path: one CAS, no allocation; the CAS also records the holder.
    return Atomics.compareExchange(this.view, STATE, FREE, this.id) === FREE;
  }

  /** Acquires, blocking the thread with `Atomics.wait` as `w` allows. */
  acquireSync(w: Waiting): boolean {
    return this.tryAcquire() || this.acquireSyncContended(w);
  }

  /** acquireSync() after a tryAcquire() that failed: no second CAS on the busy word. */
  acquireSyncContended(w: Waiting): boolean {
    return w.timeout !== 0 && this.#lockContendedSync(w.timeout);
  }

  /**
   * Acquires, waiting in this attachment's queue as `w` allows. A newcomer
   * does not pass waiters already queued here (FIFO per attachment).
   */
  acquireAsync(w: Waiting): Promise<boolean> {
    if (this.#queue.size === 0) {
      if (this.tryAcquire()) return Promise.resolve(true);
      if (w.timeout === 0) return Promise.resolve(false);
      if (this.#spin(SPIN)) return Promise.resolve(true);
    } else if (w.timeout === 0) {
      return Promise.resolve(this.tryAcquire());
    }
    const served = this.#queue.push(w.timeout, w.signal);
    if (!this.#watching) this.#watch();
    return served;
  }

  /** Releases; returns false (changing nothing) when the lock was free. */
  release(): boolean {
    if (this.#queue.size !== 0) return this.#handOff();
    // Fast path: one exchange; only a LOOK in the old value sends it to WAITERS.
    const old = Atomics.exchange(this.view, STATE, FREE);
    if ((old & LOOK) !== 0) this.#wake(); // mustLook(old) inline: a call costs µs when cold
    return old !== FREE;
  }

  /** Releases on behalf of attachment `id` if it holds the lock. */
  forceRelease(id: number): boolean {
    const view = this.view;
    if (id <= FREE || id > ID_MASK) return false;
    for (;;) {
      const s = Atomics.load(view, STATE);
      if ((s & ID_MASK) !== id) return false;
      if (Atomics.compareExchange(view, STATE, s, FREE) === s) {
        if (mustLook(s)) this.#wake();
        return true;
      }
    }
  }

  /**
   * After freeing a lock whose STATE had LOOK: wakes every async wait when any
   * is counted (see "Why all async waits are woken"), else one sync waiter,
   * unless all of them are woken already (see "Woken waiters in flight").
   */
  #wake(): void {
    const view = this.view;
    if (Atomics.load(view, WAITERS) === 0) return;
    const woken = Atomics.load(view, WOKEN);
    const waiters = Atomics.load(view, WAITERS);
    if (!hasAsyncWaits(waiters) && syncWaits(waiters) <= woken) return;
    const n = Atomics.notify(view, STATE, hasAsyncWaits(waiters) ? Infinity : 1);
    if (n !== 0) Atomics.add(view, WOKEN, n);
  }

  /**
   * Release with local waiters: the lock passes straight to the head of this
   * attachment's queue (STATE never goes through FREE: nobody to wake), unless
   * somebody else waits and LOCAL_BATCH handoffs went by; then it is freed for all.
   */
  #handOff(): boolean {
    const view = this.view;
    const others = Atomics.load(view, WAITERS) - ASYNC_ONE; // less this attachment's watcher
    if (others !== 0 && ++this.#handoffs > LOCAL_BATCH) {
      this.#handoffs = 0;
      if (Atomics.exchange(view, STATE, FREE) === FREE) return false;
      const n = Atomics.notify(view, STATE, Infinity); // this watcher is counted: async waits are
      if (n !== 0) Atomics.add(view, WOKEN, n);
      return true;
    }
    for (;;) {
      const s = Atomics.load(view, STATE);
      if (s === FREE) return false;
      // Held by this attachment (the usual case) or released here for another one:
      // the holder becomes this attachment, in one step, LOOK kept.
      const mine = this.id | (s & LOOK);
      if (s === mine || Atomics.compareExchange(view, STATE, s, mine) === s) break;
    }
    this.#queue.serve();
    return true;
  }

  /** Sets LOOK on a held STATE `seen` before waiting; false when STATE was no longer `seen`. */
  #setLook(seen: number): boolean {
    return Atomics.compareExchange(this.view, STATE, seen, seen | LOOK) === seen;
  }

  #spin(rounds: number): boolean {
    const view = this.view;
    for (let i = 0; i < rounds; i++) {
      if (Atomics.load(view, STATE) === FREE && this.tryAcquire()) return true;
    }
    return false;
  }

  #lockContendedSync(timeout: number): boolean {
    if (this.#spin(SYNC_SPIN)) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    Atomics.add(view, WAITERS, SYNC_ONE);
    try {
      for (;;) {
        const seen = Atomics.compareExchange(view, STATE, FREE, this.id | LOOK);
        if (seen === FREE) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        if (!mustLook(seen) && !this.#setLook(seen)) continue;
        if (Atomics.wait(view, STATE, seen | LOOK, left) === "ok") Atomics.sub(view, WOKEN, 1);
      }
    } finally {
      Atomics.sub(view, WAITERS, SYNC_ONE);
    }
  }

  /**
   * The watcher: the one async wait of this attachment on STATE. It takes the
   * lock for the head of the queue whenever it finds it free, and ends when it
   * finds the queue empty (only then: its wait is never abandoned).
   */
  async #watch(): Promise<void> {
    const view = this.view;
    const queue = this.#queue;
    this.#watching = true;
    Atomics.add(view, WAITERS, ASYNC_ONE);
    try {
      while (queue.size !== 0) {
        const seen = Atomics.compareExchange(view, STATE, FREE, this.id | LOOK);
        if (seen === FREE) {
          queue.serve();
          continue;
        }
        if (!mustLook(seen) && !this.#setLook(seen)) continue;
        const wait = Atomics.waitAsync(view, STATE, seen | LOOK);
        if (wait.async && await wait.value === "ok") Atomics.sub(view, WOKEN, 1);
      }
    } finally {
      Atomics.sub(view, WAITERS, ASYNC_ONE);
      this.#watching = false;
    }
  }
}

// Spin policy (SPIN, SYNC_SPIN; written here, after the code, so that the line
// numbers spin/lock.pml cites do not move). #spin(rounds) tries up to `rounds`
// loads, with a CAS only after a load that saw the lock free. A sync acquire
// does not spin: on two Workers hammering one lock, a spinning sync waiter takes
// the lock the moment it is freed, so the lock and its cache line change cores
// on every acquisition, while a waiter that sleeps at once leaves the holder to
// run on alone, as the futex mutex without spin does (measured 1.4-1.8x the
// throughput of a 100-load spin, every handoff and uncontended figure unchanged:
// README, "Lock under contention", fourth pass). An async acquire keeps its
// spin: giving up costs it a queue entry, a watcher and a waitAsync, and there
// the spinning futex floor is the faster one. The spin is one try in
// spin/lock.pml ("What is abstracted away"): a failing round writes nothing, so
// any number of rounds, none included, leaves the model valid.
