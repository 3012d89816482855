// Waiting on a shared Int32 word without blocking the event loop.
//
// Two tools. `WaitQueue` is what Lock and ReaderWriterLock use: the async
// waiters of one attachment wait in a FIFO queue in TypeScript, and the lock
// runs one watcher (a loop around `Atomics.waitAsync`) per queue, which serves
// the head when the lock lets it in (see the headers of _raw_lock.ts and
// _raw_rwlock.ts). A waiter that gives up (timeout, abort) just leaves the
// queue: no wait is left registered in the engine on its behalf, and serving,
// queueing and giving up cost O(1) whatever the queue's length.
//
// `waitAsync` (one engine wait per caller, with its own timer) is the older
// tool, kept for primitives that wait on a word directly. Two facts about Deno
// shape both. A pending `Atomics.waitAsync` does not keep the event loop alive,
// so every wait with a timeout owns a timer (waits without one share one
// keep-alive timer); and that timer is what ends the wait on time (the engine
// wait itself has no timeout). For `waitAsync`, the price is that a wait that
// ends by its timer or by an abort stays registered in the engine's waiter
// list until some notify reaches it. Such an "abandoned" wait may swallow a
// notify meant for a live waiter, so the caller is told when one is left
// behind (`onAbandon`) and when it is finally woken (`onAbandonedWake`).

import { MAX_TIMER } from "../_options.ts";

/** How a wait ended: woken by a notify, value already changed, or out of time. */
export type WaitResult = "ok" | "not-equal" | "timed-out";

/** What a protocol does when one of its async waits is left behind. */
export interface Abandonment {
  /** Called synchronously as the wait is given up, before the caller goes on. */
  onAbandon(): void;
  /** Called when a notify later reaches the abandoned wait. */
  onAbandonedWake(): void;
}

/**
 * Waits until `view[index]` is notified, for at most `ms` milliseconds
 * (`Infinity`: resolves `"timed-out"` after about 24.8 days, and the caller
 * waits again). Rejects with `signal.reason` when `signal` aborts.
 */
export function waitAsync(
  view: Int32Array,
  index: number,
  expected: number,
  ms: number,
  signal: AbortSignal | undefined,
  abandonment: Abandonment,
): Promise<WaitResult> {
  const wait = Atomics.waitAsync(view, index, expected);
  if (!wait.async) return Promise.resolve(wait.value);
  // Fast path: a wait with no end of its own needs no timer of its own; the
  // shared keep-alive timer holds the event loop open while any such wait is
  // pending, and nothing can race it, since only a notify ends the wait.
  if (ms === Infinity && signal === undefined) {
    keepAlive(1);
    return wait.value.then((result) => {
      keepAlive(-1);
      return result;
    });
  }
  return new Promise<WaitResult>((resolve, reject) => {
    let settled = false;
    const giveUp = (aborted: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      abandonment.onAbandon();
      if (aborted) reject(signal!.reason);
      else resolve("timed-out");
    };
    const onAbort = () => giveUp(true);
    // This timer keeps the event loop alive for as long as the wait lasts.
    const timer = setTimeout(giveUp, Math.min(Math.max(ms, 0), MAX_TIMER), false);
    signal?.addEventListener("abort", onAbort, { once: true });
    wait.value.then((result) => {
      if (settled) {
        abandonment.onAbandonedWake();
        return;
      }
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(result);
    });
  });
}

/**
 * One queued async acquisition: a node of a {@linkcode WaitQueue}. `ticket` and
 * `hasTicket` belong to the queue's owner (ReaderWriterLock: the writer ticket
 * drawn for this waiter).
 */
export class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  /** Whether the waiter is still in its queue (neither served nor given up). */
  queued = true;
  ticket = 0;
  hasTicket = false;
  /** Whether it holds a reference on the shared keep-alive timer. */
  patient = false;
  resolve: (ok: boolean) => void = noop;
  reject: (reason: unknown) => void = noop;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
}

const noop = () => {};
/**
 * Settled: `RESOLVED.then(f)` queues `f` as a microtask inside V8, cheaper
 * than `queueMicrotask`, which goes through Deno's bindings.
 */
const RESOLVED = Promise.resolve();

/**
 * The async waiters of one attachment, in arrival order (a doubly linked list:
 * push, serve and give-up are O(1)). Only the waiter at the head is served;
 * one that gives up (timeout, abort) leaves at once, clears its timer and
 * listener, and calls `onGiveUp` before its promise settles, so nothing of it
 * stays behind in the queue or the event loop.
 *
 * A pending `Atomics.waitAsync` does not keep the event loop alive: a waiter
 * with a timeout owns a timer (which also ends it on time); the others hold a
 * reference on one shared keep-alive timer while they are queued.
 */
export class WaitQueue {
  first: Waiter | undefined = undefined;
  last: Waiter | undefined = undefined;
  /** Waiters queued now. */
  size = 0;
  readonly #onGiveUp: (w: Waiter) => void;

  constructor(onGiveUp: (w: Waiter) => void = noop) {
    this.#onGiveUp = onGiveUp;
  }

  /** Queues a waiter at the tail; resolves `true` when served, `false` at the timeout. */
  push(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    const w = new Waiter();
    const promise = new Promise<boolean>((resolve, reject) => {
      w.resolve = resolve;
      w.reject = reject;
    });
    const last = this.last;
    w.prev = last;
    if (last === undefined) this.first = w;
    else last.next = w;
    this.last = w;
    this.size++;
    if (timeout === Infinity) {
      w.patient = true;
      keepAlive(1);
    } else {
      this.#arm(w, performance.now() + timeout);
    }
    if (signal !== undefined) {
      w.signal = signal;
      w.onAbort = () => this.#giveUp(w, true);
      signal.addEventListener("abort", w.onAbort, { once: true });
    }
    return promise;
  }

  /**
   * Takes the head waiter out of the queue and resolves it with `true` (the
   * caller got it the lock). Its timer, abort listener and keep-alive
   * reference are cleared one microtask later, after the waiter's own
   * continuation (queued first, by the resolve) has run: clearing them costs
   * runtime calls (about 17 µs cold, measured in bench/_handoff.ts) that would
   * otherwise sit between the release and the waiter's code. Nothing can fire
   * in between: a timer is a later task, and an abort or timer that finds the
   * waiter no longer `queued` does nothing.
   */
  serve(): Waiter {
    // #detach(w) of the head, written out: in a cross-Worker handoff this runs
    // once on a thread that has just woken, where each call costs µs.
    const w = this.first!;
    const next = w.next;
    w.queued = false;
    this.first = next;
    if (next === undefined) this.last = undefined;
    else next.prev = undefined;
    this.size--;
    w.resolve(true);
    if (w.timer !== undefined || w.onAbort !== undefined || w.patient) {
      if (this.#served.push(w) === 1) RESOLVED.then(this.#clearServed);
    }
    return w;
  }

  /** Served waiters whose timer, listener and keep-alive are still to clear. */
  readonly #served: Waiter[] = [];
  readonly #clearServed = () => {
    const served = this.#served;
    for (let i = 0; i < served.length; i++) clear(served[i]);
    served.length = 0;
  };

  #arm(w: Waiter, deadline: number): void {
    const left = deadline - performance.now();
    w.timer = setTimeout(() => {
      // setTimeout cannot wait longer than MAX_TIMER: wait again for the rest.
      if (deadline - performance.now() > 0 && left > MAX_TIMER) this.#arm(w, deadline);
      else this.#giveUp(w, false);
    }, Math.min(Math.max(left, 0), MAX_TIMER));
  }

  #giveUp(w: Waiter, aborted: boolean): void {
    if (!w.queued) return;
    this.#unlink(w);
    this.#onGiveUp(w);
    if (aborted) w.reject(w.signal!.reason);
    else w.resolve(false);
  }

  /** Takes `w` out of the list (its own `next` stays readable) and clears its timer and listener. */
  #unlink(w: Waiter): void {
    this.#detach(w);
    clear(w);
  }

  /** Takes `w` out of the list; its own `next` stays readable. */
  #detach(w: Waiter): void {
    w.queued = false;
    const { prev, next } = w;
    if (prev === undefined) this.first = next;
    else prev.next = next;
    if (next === undefined) this.last = prev;
    else next.prev = prev;
    this.size--;
  }
}

/** Clears what a waiter out of its queue still holds: its timer, abort listener, keep-alive reference. */
function clear(w: Waiter): void {
  if (w.timer !== undefined) {
    clearTimeout(w.timer);
    w.timer = undefined;
  }
  if (w.onAbort !== undefined) {
    w.signal!.removeEventListener("abort", w.onAbort);
    w.onAbort = undefined;
  }
  if (w.patient) {
    w.patient = false;
    keepAlive(-1);
  }
}

/** Pending waits that have no timer of their own. */
let endless = 0;
/** One timer per isolate, referenced (keeping the event loop alive) while `endless > 0`. */
let keeper: ReturnType<typeof setInterval> | undefined;

function keepAlive(change: 1 | -1): void {
  endless += change;
  if (change === 1 && endless === 1) {
    keeper ??= setInterval(() => {}, MAX_TIMER);
    Deno.refTimer(keeper!);
  } else if (endless === 0) {
    Deno.unrefTimer(keeper!);
  }
}
