// The Atomics protocol behind `Semaphore`: N slot words that each name their
// holder, two wake-up sequence words and a waiter count in a SharedArrayBuffer,
// shared by every Worker that attaches to it.
//
// words (Int32, after the header of _layout.ts):
//   COUNT      the number of slots N (1..1024); written once by the maker.
//   WAITERS    bits 0..15: sync waiters (SYNC_ONE each), threads between "about
//              to wait" and "done waiting" in acquireSync() (at most 65535).
//              Bits 16..31: async waits (ASYNC_ONE each): at most one per
//              attachment, its "pump" (below). Each field is never less than
//              the number of waits of its kind registered on its word.
//   SYNC_SEQ   bumped (then notified, one waiter) by a release that sees a sync
//              waiter counted; sync waiters wait on it.
//   ASYNC_SEQ  bumped (then notified, every waiter) by a release that sees an
//              async wait counted; pumps wait on it.
//   SLOT+k     slot k (0 <= k < N): 0 = free, otherwise the attachment id of
//              its holder. Only a CAS 0 -> id takes a slot; only release (CAS
//              id -> 0 by the holder) or forceRelease(id) (CAS id -> 0) frees
//              it. Taking a slot and recording who took it are one atomic step,
//              so a Worker terminated at any point holds exactly the slots that
//              bear its id, and forceRelease(id) returns each of them once.
//
// Transitions:
//   take      CAS SLOT+hint 0 -> id (the fast path: the slot this attachment
//             last gave back), else, from the hint on, each slot that loads
//             as 0 gets the same CAS (the scan; waiters only scan).
//   sync wait WAITERS += SYNC_ONE; loop { seen = SYNC_SEQ; take; wait on
//             SYNC_SEQ while it is seen }; WAITERS -= SYNC_ONE.
//   pump      (one per attachment, while it has queued async waiters) loop {
//             WAITERS += ASYNC_ONE; seen = ASYNC_SEQ; take a slot for each
//             queued waiter in order until none is free; waitAsync on
//             ASYNC_SEQ while it is seen; WAITERS -= ASYNC_ONE }. When its
//             last queued waiter leaves (timeout, abort) while it waits, the
//             attachment notifies ASYNC_SEQ so that the pump ends.
//   release   CAS SLOT+k id -> 0; load WAITERS; sync counted -> SYNC_SEQ += 1,
//             notify one; async counted -> ASYNC_SEQ += 1, notify all.
//   handoff   a release by an attachment whose own pump is the only waiter
//             counted anywhere (WAITERS = ASYNC_ONE and the pump is counted)
//             gives the slot to its next queued async waiter without freeing
//             it: nobody else is waiting, so nobody is passed over.
//   force     forceRelease(id): CAS each slot id -> 0, then wake as a release.
//
// No lost wake-up: a waiter counts itself before it reads the sequence word
// and scans the slots; a release frees its slot before it reads WAITERS. So
// either the release sees the waiter counted and bumps the sequence (the
// wait then returns at once or is notified), or the slot was freed before the
// waiter's scan read it.
//
// Why one async wait per attachment: a release wakes every async wait (a
// wake-up given to the async wait of a thread that is blocked, in
// acquireSync() or anything else, would sit unused while other waiters
// sleep), so the number of async waits registered must not grow with the
// number of waiting tasks. Each attachment queues its tasks in a TypeScript
// FIFO and registers one waitAsync for all of them: a release wakes
// O(attachments), and the woken pump serves its queue in arrival order, one
// take per freed slot. Async timeouts and aborts only leave the queue; the
// pump's own wait is never given up, so no abandoned wait can swallow a
// notify. Sync waiters wait on their own word, so one notify per release
// reaches a thread that runs.
//
// Fairness: sync waiters are woken one per release in the engine's FIFO order,
// and an attachment's async waiters are served in arrival order, but a freed
// slot is not reserved for them (the handoff above happens only when nobody
// else waits): it goes to whichever CAS lands first, so a newcomer's try (acquireSync, blocking: false, or the fast
// path of acquire() while its attachment has no queue) may pass queued
// waiters, and a woken waiter that loses waits again. This keeps the
// uncontended path to one CAS, as in Lock.
//
// Event loop: a pending waitAsync does not keep Deno's event loop alive, so
// while any attachment of an isolate has queued waiters one referenced
// interval timer (per isolate) does; a waiter with a timeout has its own timer.
//
// Dead Workers: a Worker terminated while holding leaves its id in its slots,
// which forceRelease(id) frees exactly once. A Worker terminated while
// waiting leaves its WAITERS count behind (an upper bound: extra notifies,
// never a lost one). Worker.terminate() does not interrupt Atomics.wait (see
// Lock.forceRelease): a Worker blocked in acquireSync() may still take a slot
// after it was terminated.

import { attachBuffer, HEADER_WORDS, makeBuffer, nextId } from "./_layout.ts";
import { MAX_TIMER, type Waiting } from "../_options.ts";

/** Index of the slot count N. */
const COUNT = HEADER_WORDS;
/** Index of the waiter counts (sync in bits 0..15, async in bits 16..31): upper bounds. */
const WAITERS = HEADER_WORDS + 1;
/** Index of the word sync waiters wait on. */
const SYNC_SEQ = HEADER_WORDS + 2;
/** Index of the word async pumps wait on. */
const ASYNC_SEQ = HEADER_WORDS + 3;
/** Index of slot 0; slot k is SLOT + k. */
const SLOT = HEADER_WORDS + 4;

/** SLOT+k: nobody holds slot k. */
const FREE = 0;
/** WAITERS: one sync waiter. */
const SYNC_ONE = 1;
/** WAITERS: one async pump wait. */
const ASYNC_ONE = 1 << 16;

/** The largest slot count. */
export const MAX_SLOTS = 1024;

/** "FSem": marks a Semaphore buffer. */
const SEMAPHORE_MAGIC = 0x4653656d;
/** Bumped whenever a word above changes meaning. */
const SEMAPHORE_LAYOUT = 1;

/** Slot loads a contended sync acquire spends on retries before it registers as a waiter. */
const SPIN = 400;

/** Whether a WAITERS value counts a sync waiter. */
const hasSyncWaiters = (w: number) => (w & 0xffff) !== 0;
/** Whether a WAITERS value counts an async wait. */
const hasAsyncWaits = (w: number) => w >>> 16 !== 0;

/** What RawSemaphore.release() did: gave the slot back. */
export const RELEASED = 0;
/** What RawSemaphore.release() did: nothing, forceRelease() had freed the slot already. */
export const FORCED = 2;
/** The outcome of RawSemaphore.release(). */
export type Released = typeof RELEASED | typeof FORCED;

/** Words in a buffer of `slots` slots. */
const wordsFor = (slots: number) => SLOT + slots;

/** One async acquisition queued in its attachment's FIFO. */
interface Entry {
  /** Settles the acquisition: a slot index, or -1 (timed out). */
  resolve(slot: number): void;
  reject(reason: unknown): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Set once it left the queue (served, timed out or aborted). */
  done: boolean;
}

/** One attachment (one Worker's view) of a shared counting semaphore. */
export class RawSemaphore {
  readonly view: Int32Array;
  /** This attachment's holder id, unique within the buffer: the value its slots take. */
  readonly id: number;
  readonly slots: number;
  /** How many slots this attachment holds. */
  held = 0;
  /** The slot the next take tries first: the one last given back. */
  #hint: number;
  /** Queued async acquisitions, in arrival order, from `#head` on (settled ones skipped). */
  #queue: Entry[] = [];
  #head = 0;
  /** Queued entries not yet settled. */
  #live = 0;
  /** A pump loop is running (at most one per attachment). */
  #pumping = false;
  /** The pump's wait is counted in WAITERS (and registered, or about to be). */
  #counted = false;
  /** The pump awaits its waitAsync on ASYNC_SEQ. */
  #waiting = false;

  constructor(bufferOrSlots: SharedArrayBuffer | number) {
    if (typeof bufferOrSlots === "number") {
      this.view = makeBuffer(wordsFor(bufferOrSlots), SEMAPHORE_MAGIC, SEMAPHORE_LAYOUT);
      this.view[COUNT] = bufferOrSlots;
    } else {
      this.view = attachBuffer(
        bufferOrSlots,
        wordsFor(slotsOf(bufferOrSlots)),
        SEMAPHORE_MAGIC,
        SEMAPHORE_LAYOUT,
        "Semaphore",
      );
    }
    this.slots = Atomics.load(this.view, COUNT);
    this.id = nextId(this.view);
    this.#hint = (this.id - 1) % this.slots;
  }

  /** Free slots now (a snapshot). */
  get available(): number {
    let free = 0;
    for (let k = 0; k < this.slots; k++) {
      if (Atomics.load(this.view, SLOT + k) === FREE) free++;
    }
    return free;
  }

  /** The attachment id holding each slot (0: free), a snapshot. */
  holders(): number[] {
    return Array.from({ length: this.slots }, (_, k) => Atomics.load(this.view, SLOT + k));
  }

  /** Takes a free slot for this attachment without counting it in `held`; -1 when none is free. */
  #take(): number {
    const hint = this.#hint;
    // Fast path: one CAS on the slot this attachment last gave back.
    if (Atomics.compareExchange(this.view, SLOT + hint, FREE, this.id) === FREE) return hint;
    return this.#scan();
  }

  /**
   * Tries every slot from the hint on, loading each before its CAS (a CAS
   * that fails still takes the cache line from its holder); -1 when none is free.
   */
  #scan(): number {
    const view = this.view, id = this.id, slots = this.slots;
    for (let i = 0, k = this.#hint; i < slots; i++, k = k + 1 === slots ? 0 : k + 1) {
      if (
        Atomics.load(view, SLOT + k) === FREE &&
        Atomics.compareExchange(view, SLOT + k, FREE, id) === FREE
      ) {
        return k;
      }
    }
    return -1;
  }

  /** One attempt; never waits. Returns the slot taken, or -1. */
  tryAcquire(): number {
    const k = this.#take();
    if (k >= 0) this.held++;
    return k;
  }

  /** Acquires, blocking the thread with `Atomics.wait` as `w` allows; the slot or -1. */
  acquireSync(w: Waiting): number {
    const k = this.#take();
    if (k >= 0) {
      this.held++;
      return k;
    }
    if (w.timeout === 0) return -1;
    const got = this.#lockContendedSync(w.timeout);
    if (got >= 0) this.held++;
    return got;
  }

  #lockContendedSync(timeout: number): number {
    const view = this.view;
    // Each take scans up to N slots: spin over about SPIN slot loads in all.
    for (let i = Math.ceil(SPIN / this.slots); i > 0; i--) {
      const k = this.#scan();
      if (k >= 0) return k;
    }
    const deadline = performance.now() + timeout;
    Atomics.add(view, WAITERS, SYNC_ONE);
    try {
      for (;;) {
        const seen = Atomics.load(view, SYNC_SEQ);
        const k = this.#scan();
        if (k >= 0) return k;
        const left = deadline - performance.now();
        if (left <= 0) return -1;
        Atomics.wait(view, SYNC_SEQ, seen, left);
      }
    } finally {
      Atomics.sub(view, WAITERS, SYNC_ONE);
    }
  }

  /**
   * Acquires, queueing behind this attachment's earlier async waiters; the
   * slot or -1 (timed out). Rejects with `w.signal.reason` on abort.
   */
  acquireAsync(w: Waiting): Promise<number> {
    // Served in arrival order: a newcomer tries only when nobody of this attachment is queued.
    if (this.#live === 0 || w.timeout === 0) {
      const k = this.tryAcquire();
      if (k >= 0 || w.timeout === 0) return Promise.resolve(k);
    }
    return new Promise<number>((resolve, reject) => {
      const entry: Entry = {
        resolve,
        reject,
        timer: undefined,
        signal: w.signal,
        onAbort: undefined,
        done: false,
      };
      if (w.timeout !== Infinity) {
        // A timer waits at most MAX_TIMER (about 24.8 days): re-armed until the deadline.
        const deadline = performance.now() + w.timeout;
        const expire = () => {
          const left = deadline - performance.now();
          if (left > 0) entry.timer = setTimeout(expire, Math.min(left, MAX_TIMER));
          else if (this.#leave(entry)) resolve(-1);
        };
        entry.timer = setTimeout(expire, Math.min(w.timeout, MAX_TIMER));
      }
      if (w.signal !== undefined) {
        const signal = w.signal;
        entry.onAbort = () => {
          if (this.#leave(entry)) reject(signal.reason);
        };
        signal.addEventListener("abort", entry.onAbort, { once: true });
      }
      this.#queue.push(entry);
      if (this.#live++ === 0) keepAlive(1);
      if (!this.#pumping) this.#pump();
    });
  }

  /** Takes `entry` out of the queue unless it was settled already; true if it was live. */
  #leave(entry: Entry): boolean {
    if (entry.done) return false;
    entry.done = true;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.signal?.removeEventListener("abort", entry.onAbort!);
    if (--this.#live === 0) {
      keepAlive(-1);
      this.#queue = [];
      this.#head = 0;
      // The pump has nobody left to wait for: end its wait now rather than at
      // the next release, so that WAITERS goes back to 0 (other attachments'
      // pumps wake too, find nothing new and wait again).
      if (this.#waiting) Atomics.notify(this.view, ASYNC_SEQ);
    }
    return true;
  }

  /** The first queued entry not yet settled (there is one: `#live > 0`). */
  #next(): Entry {
    const queue = this.#queue;
    while (queue[this.#head].done) this.#head++;
    const entry = queue[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
    return entry;
  }

  /** Gives slot `k` (already taken under this id) to the next queued waiter. */
  #serve(k: number): void {
    const entry = this.#next();
    this.#leave(entry);
    this.held++;
    entry.resolve(k);
  }

  /** Serves the queue while slots can be taken, waiting on ASYNC_SEQ in between. */
  async #pump(): Promise<void> {
    const view = this.view;
    this.#pumping = true;
    try {
      while (this.#live > 0) {
        Atomics.add(view, WAITERS, ASYNC_ONE);
        this.#counted = true;
        const seen = Atomics.load(view, ASYNC_SEQ);
        while (this.#live > 0) {
          const k = this.#scan();
          if (k < 0) break;
          this.#serve(k);
        }
        if (this.#live > 0) {
          // Only a notify (or a changed ASYNC_SEQ) ends this wait, never a
          // waiter's timeout or abort, so no wake-up meant for it is lost.
          const wait = Atomics.waitAsync(view, ASYNC_SEQ, seen);
          if (wait.async) {
            this.#waiting = true;
            await wait.value;
            this.#waiting = false;
          }
        }
        this.#counted = false;
        Atomics.sub(view, WAITERS, ASYNC_ONE);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /**
   * Gives back slot `k`, which this attachment took (the caller keeps track
   * of which: a slot is taken once and given back once). Returns RELEASED, or
   * FORCED when forceRelease() had taken the slot from this attachment
   * (nothing else changes then but `held`).
   */
  release(k: number): Released {
    this.held--;
    const view = this.view;
    if (this.#counted && this.#live > 0 && Atomics.load(view, WAITERS) === ASYNC_ONE) {
      if (Atomics.load(view, SLOT + k) !== this.id) return FORCED;
      // Handoff: this attachment's pump is the only waiter anywhere.
      this.#serve(k);
      return RELEASED;
    }
    if (Atomics.compareExchange(view, SLOT + k, this.id, FREE) !== this.id) return FORCED;
    this.#hint = k;
    const waiters = Atomics.load(view, WAITERS);
    if (waiters !== 0) this.#wake(waiters, 1);
    return RELEASED;
  }

  /** Frees every slot that attachment `id` holds; returns how many. */
  forceRelease(id: number): number {
    // Ids are 1..2^31-1; Atomics would wrap any other number to an Int32 (2^32 + 1 to 1).
    if (!(id >= 1 && id <= 0x7fffffff)) return 0;
    const view = this.view;
    let freed = 0;
    for (let k = 0; k < this.slots; k++) {
      if (Atomics.compareExchange(view, SLOT + k, id, FREE) === id) freed++;
    }
    if (freed > 0) {
      const waiters = Atomics.load(view, WAITERS);
      if (waiters !== 0) this.#wake(waiters, freed);
    }
    return freed;
  }

  /** Wakes `freed` sync waiters and every async pump, as far as WAITERS counts them. */
  #wake(waiters: number, freed: number): void {
    const view = this.view;
    if (hasSyncWaiters(waiters)) {
      Atomics.add(view, SYNC_SEQ, 1);
      Atomics.notify(view, SYNC_SEQ, freed);
    }
    if (hasAsyncWaits(waiters)) {
      Atomics.add(view, ASYNC_SEQ, 1);
      Atomics.notify(view, ASYNC_SEQ);
    }
  }
}

/**
 * The slot count of a would-be Semaphore buffer, which sizes the checks that
 * `attachBuffer` makes (magic, layout, byte length).
 *
 * @throws {TypeError} when the buffer is too small to be a semaphore's or its count is out of range.
 */
function slotsOf(buffer: SharedArrayBuffer): number {
  if (!(buffer instanceof SharedArrayBuffer)) return 1; // attachBuffer names the wrong type
  const slots = buffer.byteLength >= wordsFor(1) * 4
    ? Atomics.load(new Int32Array(buffer, 0, wordsFor(0)), COUNT)
    : 0;
  if (slots >= 1 && slots <= MAX_SLOTS) return slots;
  throw new TypeError(
    `Semaphore.from(): the buffer (${buffer.byteLength} bytes) was not made by Semaphore`,
  );
}

/** Queued async waiters in this isolate: a pending waitAsync does not keep the event loop alive. */
let queued = 0;
/** One timer per isolate, referenced while `queued > 0`. */
let keeper: ReturnType<typeof setInterval> | undefined;

function keepAlive(change: 1 | -1): void {
  queued += change;
  if (change === 1 && queued === 1) {
    keeper ??= setInterval(() => {}, MAX_TIMER);
    Deno.refTimer(keeper!);
  } else if (queued === 0) {
    Deno.unrefTimer(keeper!);
  }
}
