// The Worker side of bench/_contention.ts: two of these hammer one lock.
// Each message is a command; the reply is posted back with the same `op`.
//
//   attach   {lock, variants}: the buffer of a Lock; variants: label -> module URL
//            of a copy of lock.ts (kind "Lock:<label>")
//   contend  {kind, mode, bare, control, count}: reply "ready", wait for control[GO], then
//            acquire / increment control[COUNTER] / release until control[STOP]; reply
//            {ops, calls}. With `count`, Atomics.notify / wait / waitAsync / compareExchange
//            and load are wrapped in counters for that run (slower: a separate run).
//
// kind "bare" is the floor: the classic three-state futex mutex (0 free, 1 locked,
// 2 locked with waiters; Drepper, "Futexes are tricky", mutex2) on its own
// word `bare`, with Atomics.wait / waitAsync. kind "bare-spin" is the same
// mutex with a brief spin first: up to BARE_SPIN rounds of a load, then a CAS
// only when the load saw it free. kind "raw" is Lock's protocol without the
// public class: a RawLock attachment of the same buffer (its own id), called
// directly, so that the gap between "Lock" and "raw" is lock.ts's own cost.
// kind "Lock:<label>" is Lock from copies of lock.ts and _raw_lock.ts with
// another spin policy (bench/_contention.ts `--spin`), imported on "attach",
// each with its own loop.

import { Lock } from "../mod.ts";
import { RawLock } from "../locks/thread/_raw_lock.ts";
import { WAIT_FOREVER } from "../locks/_options.ts";

export const GO = 0;
export const STOP = 1;
export const COUNTER = 2;
/** Load rounds of "bare-spin" before it registers as a waiter (the same as Lock's SPIN). */
export const BARE_SPIN = 100;

/** Per-run call counts (only with `count`). */
export interface Calls {
  notify: number;
  /** notify calls that woke at least one wait. */
  notifyWoke: number;
  wait: number;
  /** Atomics.wait that returned "not-equal" (never slept). */
  waitNotEqual: number;
  waitAsync: number;
  /** waitAsync that returned synchronously ("not-equal"). */
  waitAsyncNotEqual: number;
  cas: number;
  casFailed: number;
  load: number;
  /** Acquisitions that slept (wait / waitAsync that blocked) at least once. */
  slept: number;
  /** Waits beyond the first in one acquisition: woken, lost the race, slept again. */
  sleptAgain: number;
}

let lock: Lock | undefined;
let raw: RawLock | undefined;
/** Lock attachments of the variant modules (kind "Lock:<label>"), by label. */
const variants = new Map<string, { lock: Lock; mod: Variant }>();
/** A variant module: its Lock and its own loop (see writeVariant in _contention.ts). */
interface Variant {
  Lock: typeof Lock;
  hammer(l: Lock, v: Int32Array, before: () => void, after: () => void): number;
  hammerAsync(l: Lock, v: Int32Array, before: () => void, after: () => void): Promise<number>;
}

function bareLockSync(v: Int32Array, spin: number): void {
  let c = Atomics.compareExchange(v, 0, 0, 1);
  if (c === 0) return;
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(v, 0) === 0) {
      c = Atomics.compareExchange(v, 0, 0, 1);
      if (c === 0) return;
    }
  }
  if (c !== 2) c = Atomics.exchange(v, 0, 2);
  while (c !== 0) {
    Atomics.wait(v, 0, 2);
    c = Atomics.exchange(v, 0, 2);
  }
}

async function bareLockAsync(v: Int32Array, spin: number): Promise<void> {
  let c = Atomics.compareExchange(v, 0, 0, 1);
  if (c === 0) return;
  for (let i = 0; i < spin; i++) {
    if (Atomics.load(v, 0) === 0) {
      c = Atomics.compareExchange(v, 0, 0, 1);
      if (c === 0) return;
    }
  }
  if (c !== 2) c = Atomics.exchange(v, 0, 2);
  while (c !== 0) {
    const r = Atomics.waitAsync(v, 0, 2);
    if (r.async) await r.value;
    c = Atomics.exchange(v, 0, 2);
  }
}

function bareUnlock(v: Int32Array): void {
  if (Atomics.sub(v, 0, 1) !== 1) {
    Atomics.store(v, 0, 0);
    Atomics.notify(v, 0, 1);
  }
}

/** Wraps the Atomics calls a lock makes in counters; returns the counts and an undo. */
function instrument(): { calls: Calls; undo: () => void } {
  const calls: Calls = {
    notify: 0,
    notifyWoke: 0,
    wait: 0,
    waitNotEqual: 0,
    waitAsync: 0,
    waitAsyncNotEqual: 0,
    cas: 0,
    casFailed: 0,
    load: 0,
    slept: 0,
    sleptAgain: 0,
  };
  const a = Atomics as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ["notify", "wait", "waitAsync", "compareExchange", "load"];
  const original = Object.fromEntries(names.map((n) => [n, a[n]]));
  a.notify = (...args) => {
    calls.notify++;
    const n = original.notify(...args) as number;
    if (n > 0) calls.notifyWoke++;
    return n;
  };
  a.wait = (...args) => {
    calls.wait++;
    const r = original.wait(...args);
    if (r === "not-equal") calls.waitNotEqual++;
    return r;
  };
  a.waitAsync = (...args) => {
    calls.waitAsync++;
    const r = original.waitAsync(...args) as { async: boolean };
    if (!r.async) calls.waitAsyncNotEqual++;
    return r;
  };
  a.compareExchange = (...args) => {
    calls.cas++;
    const r = original.compareExchange(...args);
    if (r !== args[2]) calls.casFailed++;
    return r;
  };
  a.load = (...args) => {
    calls.load++;
    return original.load(...args);
  };
  return {
    calls,
    undo: () => {
      for (const n of names) a[n] = original[n];
    },
  };
}

interface Command {
  op: string;
  kind?: string;
  mode?: "sync" | "async";
  lock?: SharedArrayBuffer;
  variants?: Record<string, string>;
  bare?: SharedArrayBuffer;
  control?: SharedArrayBuffer;
  count?: boolean;
}

/** This Worker's global scope (the file is checked with the window lib). */
const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<Command>) => void) | null;
};
const reply = (op: string, data: Record<string, unknown> = {}) =>
  scope.postMessage({ op, ...data });

async function contend(c: Command): Promise<void> {
  const control = new Int32Array(c.control!);
  const bare = new Int32Array(c.bare!);
  const spin = c.kind === "bare-spin" ? BARE_SPIN : 0;
  const l = lock!;
  const r = raw!;
  const variant = c.kind!.startsWith("Lock:") ? variants.get(c.kind!.slice(5))! : undefined;
  const counted = c.count ? instrument() : undefined;
  const calls = counted?.calls;
  // Waits (sync or async) so far: their change over one acquisition tells whether it slept.
  const waits = () =>
    calls === undefined
      ? 0
      : calls.wait - calls.waitNotEqual + calls.waitAsync - calls.waitAsyncNotEqual;
  reply("ready");
  Atomics.wait(control, GO, 0);
  let ops = 0;
  try {
    if (variant !== undefined) {
      let before = 0;
      const mark = () => (before = waits());
      const tally = () => {
        if (calls === undefined) return;
        const slept = waits() - before;
        if (slept > 0) calls.slept++;
        if (slept > 1) calls.sleptAgain += slept - 1;
      };
      ops = c.mode === "sync"
        ? variant.mod.hammer(variant.lock, control, mark, tally)
        : await variant.mod.hammerAsync(variant.lock, control, mark, tally);
    }
    while (variant === undefined && Atomics.load(control, STOP) === 0) {
      const before = waits();
      if (c.kind === "raw") {
        if (c.mode === "sync") r.acquireSync(WAIT_FOREVER);
        else await r.acquireAsync(WAIT_FOREVER);
      } else if (c.kind === "Lock") {
        if (c.mode === "sync") l.acquireSync();
        else await l.acquire();
      } else if (c.mode === "sync") {
        bareLockSync(bare, spin);
      } else {
        await bareLockAsync(bare, spin);
      }
      control[COUNTER]++; // plain increment: exclusion keeps it exact
      if (c.kind === "raw") r.release();
      else if (c.kind === "Lock") l.release();
      else bareUnlock(bare);
      ops++;
      if (calls !== undefined) {
        const slept = waits() - before;
        if (slept > 0) calls.slept++;
        if (slept > 1) calls.sleptAgain += slept - 1;
      }
    }
  } finally {
    counted?.undo();
  }
  reply("contend", { ops, calls });
}

scope.onmessage = (e) => {
  const c = e.data;
  const run = async () => {
    if (c.op === "attach") {
      lock = Lock.from(c.lock!);
      raw = new RawLock(c.lock!);
      for (const [label, url] of Object.entries(c.variants ?? {})) {
        const mod = await import(url) as Variant;
        variants.set(label, { lock: mod.Lock.from(c.lock!), mod });
      }
      return reply("attach");
    }
    if (c.op === "contend") return await contend(c);
  };
  run().catch((error) => reply("error", { message: String(error?.stack ?? error) }));
};
