// The Worker side of bench/run.ts's cross-Worker figures. Each message is a
// command; the reply is posted back with the same `op`.
//
//   attach    {lock, rw, bare}: the buffers of a Lock, a ReaderWriterLock, a bare mutex word
//   hold      {kind}: acquire (free), reply
//   wait      {kind, mode: "sync" | "async"}: reply "waiting", acquire, read the clock (t1),
//             release, reply {t: t1}
//   release   {kind}: read the clock (t0), release, reply {t: t0}
//   contend   {kind, mode, control}: wait for control[GO], then acquire/increment/release
//             until control[STOP]; reply {count}
//   flood     {holdMs, control}: hold read locks holdMs each, back to back, until control[STOP]
//   writer    {rounds, timeoutMs}: take the write lock `rounds` times at random moments,
//             giving up after timeoutMs; reply {waits} in ms (Infinity: gave up)
//
// flood and writer take an optional {path}: then they use an
// InterProcessReaderWriterLock on that file instead of the ReaderWriterLock.
//
// kind "bare" is the floor: a three-state futex mutex on one Int32 word
// (Drepper, "Futexes are tricky", mutex2), with Atomics.wait / waitAsync.
// Times are performance.timeOrigin + performance.now() in ms.

import { InterProcessReaderWriterLock, Lock, ReaderWriterLock } from "../mod.ts";

export const GO = 0;
export const STOP = 1;
export const COUNTER = 2;

let lock: Lock | undefined;
let rw: ReaderWriterLock | undefined;
let bare: Int32Array | undefined;
const clock = () => performance.timeOrigin + performance.now();

function bareLockSync(v: Int32Array): void {
  let c = Atomics.compareExchange(v, 0, 0, 1);
  if (c === 0) return;
  if (c !== 2) c = Atomics.exchange(v, 0, 2);
  while (c !== 0) {
    Atomics.wait(v, 0, 2);
    c = Atomics.exchange(v, 0, 2);
  }
}

async function bareLockAsync(v: Int32Array): Promise<void> {
  let c = Atomics.compareExchange(v, 0, 0, 1);
  if (c === 0) return;
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

interface Command {
  op: string;
  kind?: "Lock" | "bare";
  mode?: "sync" | "async";
  lock?: SharedArrayBuffer;
  rw?: SharedArrayBuffer;
  bare?: SharedArrayBuffer;
  control?: SharedArrayBuffer;
  holdMs?: number;
  rounds?: number;
  timeoutMs?: number;
  path?: string;
}

/** What flood and writer need of either reader-writer lock. */
interface ReadWrite {
  acquireReadLockSync(): boolean;
  releaseReadLock(): void;
  acquireWriteLockSync(options?: { timeout?: number }): boolean;
  releaseWriteLock(): void;
}
const readWrite = (c: Command): ReadWrite =>
  c.path === undefined ? rw! : new InterProcessReaderWriterLock(c.path);

const acquireSync = (kind: Command["kind"]) =>
  kind === "bare" ? bareLockSync(bare!) : void lock!.acquireSync();
const acquireAsync = (kind: Command["kind"]) =>
  kind === "bare" ? bareLockAsync(bare!) : lock!.acquire();
const release = (kind: Command["kind"]) => kind === "bare" ? bareUnlock(bare!) : lock!.release();

/** Spins the thread for `ms` (a reader "working" while it holds the lock). */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

/** This Worker's global scope (the file is checked with the window lib). */
const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<Command>) => void) | null;
};
const reply = (op: string, data: Record<string, unknown> = {}) =>
  scope.postMessage({ op, ...data });

async function handle(c: Command): Promise<void> {
  switch (c.op) {
    case "attach":
      lock = Lock.from(c.lock!);
      rw = ReaderWriterLock.from(c.rw!);
      bare = new Int32Array(c.bare!);
      return reply("attach");
    case "hold":
      acquireSync(c.kind);
      return reply("hold");
    case "wait": {
      reply("waiting");
      if (c.mode === "sync") acquireSync(c.kind);
      else await acquireAsync(c.kind);
      const t = clock();
      release(c.kind);
      return reply("wait", { t });
    }
    case "release": {
      const t = clock();
      release(c.kind);
      return reply("release", { t });
    }
    case "contend": {
      const control = new Int32Array(c.control!);
      reply("ready");
      Atomics.wait(control, GO, 0);
      let count = 0;
      if (c.mode === "sync") {
        while (Atomics.load(control, STOP) === 0) {
          acquireSync(c.kind);
          control[COUNTER]++; // plain increment: exclusion keeps it exact
          release(c.kind);
          count++;
        }
      } else {
        while (Atomics.load(control, STOP) === 0) {
          await acquireAsync(c.kind);
          control[COUNTER]++;
          release(c.kind);
          count++;
        }
      }
      return reply("contend", { count });
    }
    case "flood": {
      const control = new Int32Array(c.control!);
      const lock = readWrite(c);
      reply("ready");
      let count = 0;
      while (Atomics.load(control, STOP) === 0) {
        lock.acquireReadLockSync();
        spin(c.holdMs!);
        lock.releaseReadLock();
        count++;
      }
      return reply("flood", { count });
    }
    case "writer": {
      const pause = new Int32Array(new SharedArrayBuffer(4));
      const lock = readWrite(c);
      const waits: number[] = [];
      for (let i = 0; i < c.rounds!; i++) {
        Atomics.wait(pause, 0, 0, 1 + Math.random() * 3);
        const t0 = clock();
        if (lock.acquireWriteLockSync({ timeout: c.timeoutMs! })) {
          waits.push(clock() - t0);
          lock.releaseWriteLock();
        } else {
          waits.push(Infinity);
        }
      }
      return reply("writer", { waits });
    }
  }
}

scope.onmessage = (e) => {
  handle(e.data).catch((error) => reply("error", { message: String(error?.stack ?? error) }));
};
