// A Worker that takes slots of a Semaphore on request, for tests/semaphore_test.ts.
// Requests: { seq, op, ...args }; replies { seq, result } or { seq, error }.
// Events it posts by itself: { event: "waiting" | "locked" | … }.

import { Semaphore } from "../../locks/thread/semaphore.ts";

declare const self: Worker;

let sem: Semaphore | undefined;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const event = (name: string) => self.postMessage({ event: name });

type Request = { seq: number; op: string; [key: string]: unknown };

/**
 * Counters shared by every holder of a test: [inside, most seen inside,
 * entries]. A holder stays inside until N are in or `patience` ms have
 * passed, so that the N-at-once state is reached without relying on timing
 * to prove the bound.
 */
function enter(counters: Int32Array): void {
  const now = Atomics.add(counters, 0, 1) + 1;
  for (let most = Atomics.load(counters, 1); now > most;) {
    const seen = Atomics.compareExchange(counters, 1, most, now);
    if (seen === most) break;
    most = seen;
  }
  Atomics.add(counters, 2, 1);
}

async function hold(counters: Int32Array, slots: number, sync: boolean, patience: number) {
  const deadline = performance.now() + patience;
  while (Atomics.load(counters, 0) < slots && performance.now() < deadline) {
    if (sync) Atomics.wait(sleeper, 0, 0, 0.2);
    else await new Promise((r) => setTimeout(r, 0));
  }
}

/** `rounds` acquisitions, sync when `mode` is "sync", async when "async", alternating when "mixed". */
async function hammer(r: Request): Promise<void> {
  const counters = new Int32Array(r.counters as SharedArrayBuffer);
  const rounds = r.rounds as number, mode = r.mode as string, patience = r.patience as number;
  for (let i = 0; i < rounds; i++) {
    const sync = mode === "sync" || (mode === "mixed" && i % 2 === 0);
    if (sync) sem!.acquireSync();
    else await sem!.acquire();
    enter(counters);
    await hold(counters, sem!.slots, sync, patience);
    Atomics.sub(counters, 0, 1);
    sem!.release();
  }
}

const ops: Record<string, (r: Request) => unknown> = {
  attach: (r) => {
    sem = Semaphore.from(r.buffer as SharedArrayBuffer);
    return sem.id;
  },
  acquireSync: (r) => {
    event("waiting");
    const got = sem!.acquireSync(r.options as undefined);
    if (got) event("locked");
    return got;
  },
  acquire: async (r) => {
    event("waiting");
    const got = await sem!.acquire(r.options as undefined);
    if (got) event("locked");
    return got;
  },
  release: () => sem!.release(),
  held: () => sem!.held,
  hammer: (r) => Promise.all(Array.from({ length: (r.tasks as number) ?? 1 }, () => hammer(r))),
  /** Waits with `acquireSync()` and records `tag` in `order` once in; releases. */
  syncAndRecord: (r) => {
    event("waiting");
    const order = new Int32Array(r.order as SharedArrayBuffer);
    sem!.acquireSync();
    order[Atomics.add(order, 0, 1) + 1] = r.tag as number;
    sem!.release();
  },
  /**
   * Queues `count` async waiters, each recording its index in `order` (per
   * worker slice: order[1 + base + i]) and checking `counters` while in.
   * Posts "queued" once all are queued, resolves when all were served.
   */
  queueMany: async (r) => {
    const counters = new Int32Array(r.counters as SharedArrayBuffer);
    const seen: number[] = [];
    const all = Array.from({ length: r.count as number }, async (_, i) => {
      await sem!.acquire();
      enter(counters);
      seen.push(i);
      Atomics.sub(counters, 0, 1);
      sem!.release();
    });
    event("queued");
    await Promise.all(all);
    return seen.every((v, i) => v === i);
  },
  /**
   * Churns until terminated: tries, timed async acquires, guards and withLock
   * callbacks, some holding across a task boundary, yielding to the event
   * loop every round (where terminate() lands: holding, queued or idle). No
   * sync wait: terminate() does not interrupt Atomics.wait. Adds 1 to
   * `beat[0]` per round and posts "churning" after the first.
   */
  churn: async (r) => {
    const beat = new Int32Array(r.beat as SharedArrayBuffer);
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    for (let i = 0;; i++) {
      const kind = i % 5;
      if (kind === 0) {
        if (sem!.acquireSync({ blocking: false })) {
          await tick();
          sem!.release();
        }
      } else if (kind === 1) {
        if (await sem!.acquire({ timeout: 2 })) {
          await tick();
          sem!.release();
        }
      } else if (kind === 2) {
        try {
          await using _slot = await sem!.lock({ timeout: 2 });
          await tick();
        } catch (error) {
          if ((error as Error).name !== "LockTimeoutError") throw error;
        }
      } else if (kind === 3) {
        await sem!.withLock(tick, { timeout: 2 }).catch((error) => {
          if ((error as Error).name !== "LockTimeoutError") throw error;
        });
      } else {
        const c = new AbortController();
        setTimeout(() => c.abort(), 1);
        if (await sem!.acquire({ signal: c.signal }).catch(() => false)) sem!.release();
      }
      Atomics.add(beat, 0, 1);
      if (i === 0) event("churning");
      await tick();
    }
  },
  /**
   * Starts an async acquire (left pending), then blocks in acquireSync() with
   * a timeout of `ms`: returns whether each got a slot and how long the sync one took.
   */
  asyncThenSync: async (r) => {
    const pending = sem!.acquire();
    event("waiting");
    const start = performance.now();
    const got = sem!.acquireSync({ timeout: r.ms as number });
    const took = performance.now() - start;
    if (got) sem!.release();
    const asyncGot = await pending;
    if (asyncGot) sem!.release();
    return { got, took, asyncGot };
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
