// Waiting on a shared Int32 word without blocking the event loop.
//
// Two facts about Deno shape this file. A pending `Atomics.waitAsync` does not
// keep the event loop alive, so every wait with a timeout or signal owns a
// timer (waits without either share one keep-alive timer); and that timer is
// what ends the wait on time (the wait itself has no timeout), so no separate
// keep-alive timer can race the wait's own timeout. The price: a wait that ends
// by its timer or by an abort stays registered in the engine's waiter list
// until some notify reaches it. Such an "abandoned" wait may swallow a notify
// meant for a live waiter, so the caller is told when one is left behind
// (`onAbandon`) and when it is finally woken (`onAbandonedWake`): Lock keeps
// such waits counted as async waiters, and a release that sees any async
// waiter wakes them all.

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
