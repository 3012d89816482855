// Figures for the thread `Semaphore`, each beside its comparison in the same run:
// 1. the uncontended sync pair (acquireSync()+release()) beside the bare CAS
//    lock of bench/thread_bench.ts and Lock's pair, in one timed loop each;
// 2. the cross-Worker handoff when every slot is busy (waiter blocked in
//    acquireSync() or `await acquire()`, the holder releases one slot) beside
//    Lock's, the kinds alternating round by round (Workers run
//    bench/_thread_semaphore_worker.ts);
// 3. per-handoff time of 10 / 1,000 / 10,000 async waiters queued in one
//    isolate on a one-slot semaphore, beside npm:async-sema in the same run,
//    and of 3 × 100 / 3 × 1,000 waiters spread over main + 2 Workers.
//
//   deno run --allow-all bench/_thread_semaphore.ts     (prints a table)
//
// bench/run.ts calls semaphoreFigures() and checks the targets.

import { type Figure, format } from "./_report.ts";
import { summarize } from "./_parties.ts";
import { Lock, Semaphore } from "../mod.ts";

const CMD = "deno run --allow-all bench/_thread_semaphore.ts";
const WORKER = new URL("./_thread_semaphore_worker.ts", import.meta.url).href;

/** What bench/run.ts needs for its targets (ns). */
export interface SemaphoreResults {
  syncPair?: number;
  casPair?: number;
  lockPair?: number;
  handoff: Map<string, { p50: number; p99: number }>;
  /** Per handoff, by waiter count: ours and async-sema's. */
  waiters: Map<number, { ours: number; sema?: number }>;
  /** Per handoff, by waiters per isolate, with waiters in 3 isolates. */
  spread?: Map<number, number>;
}

/** Per-pair ns of `n` bare CAS lock pairs (its own loop, so that no call site is shared). */
function casLoop(word: Int32Array, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (Atomics.compareExchange(word, 0, 0, 1) !== 0) throw new Error("busy");
    Atomics.store(word, 0, 0);
  }
  return ((performance.now() - t0) * 1e6) / n;
}

/** Per-pair ns of `n` Semaphore acquireSync()+release() pairs. */
function semaphoreLoop(sem: Semaphore, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    sem.acquireSync();
    sem.release();
  }
  return ((performance.now() - t0) * 1e6) / n;
}

/** Per-pair ns of `n` Lock acquireSync()+release() pairs. */
function lockLoop(lock: Lock, n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    lock.acquireSync();
    lock.release();
  }
  return ((performance.now() - t0) * 1e6) / n;
}

/** A Worker running _thread_semaphore_worker.ts, one command at a time. */
class Party {
  readonly #worker = new Worker(WORKER, { type: "module" });
  readonly #replies: { op: string; t?: number }[] = [];
  #wake: (() => void) | undefined;

  constructor() {
    this.#worker.onmessage = (e) => {
      this.#replies.push(e.data);
      this.#wake?.();
    };
  }

  send(command: Record<string, unknown>): void {
    this.#worker.postMessage(command);
  }

  async expect(op: string): Promise<{ op: string; t?: number }> {
    while (this.#replies.length === 0) await new Promise<void>((r) => (this.#wake = r));
    const reply = this.#replies.shift()!;
    if (reply.op !== op) throw new Error(`Worker: expected ${op}, got ${JSON.stringify(reply)}`);
    return reply;
  }

  async ask(command: Record<string, unknown>, op = command.op as string) {
    this.send(command);
    return await this.expect(op);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/** Time for `count` queued waiters to pass one by one, per handoff, in ns. */
async function passThrough(
  count: number,
  hold: () => Promise<() => void>,
  take: () => Promise<() => void>,
): Promise<number> {
  const release = await hold();
  const all = Array.from({ length: count }, async () => (await take())());
  await Promise.resolve();
  const t0 = performance.now();
  release();
  await Promise.all(all);
  return ((performance.now() - t0) * 1e6) / count;
}

/** Measures every Semaphore figure, calling `add` for each and `skip` for what it cannot. */
export async function semaphoreFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
): Promise<SemaphoreResults> {
  const results: SemaphoreResults = { handoff: new Map(), waiters: new Map() };

  // 1. Sync pair, uncontended.
  {
    const section = "Semaphore: sync acquire+release, uncontended";
    const word = new Int32Array(new SharedArrayBuffer(4));
    const sem = new Semaphore(4);
    const lock = new Lock();
    const N = 1_000_000, LOOPS = 15;
    // Interleaved, so that the three see the same noise; the best loop of each.
    let c = Infinity, sp = Infinity, l = Infinity;
    for (let round = 0; round < LOOPS; round++) {
      c = Math.min(c, casLoop(word, N));
      sp = Math.min(sp, semaphoreLoop(sem, N));
      l = Math.min(l, lockLoop(lock, N));
    }
    const s = sp;
    results.casPair = c;
    results.syncPair = s;
    results.lockPair = l;
    const command = `${CMD}: best of ${LOOPS} loops of ${N} pairs, interleaved`;
    add({
      section,
      name: "bare CAS lock (compareExchange + store)",
      value: c,
      unit: "ns",
      command,
      ours: false,
    });
    add({
      section,
      name: "Lock acquireSync()+release()",
      value: l,
      unit: "ns",
      command,
      ours: true,
    });
    add({
      section,
      name: "Semaphore acquireSync()+release()",
      value: s,
      unit: "ns",
      detail: `${(s / c).toFixed(2)}× the bare CAS lock`,
      command,
      ours: true,
    });
  }

  // 2. Cross-Worker handoff with every slot busy.
  {
    const sem = new Semaphore(2);
    const lock = new Lock();
    const [a, b] = [new Party(), new Party()];
    try {
      for (const p of [a, b]) await p.ask({ op: "attach", sem: sem.buffer, lock: lock.buffer });
      const ROUNDS = 400, WARMUP = 30;
      const kinds = (["Semaphore", "Lock"] as const).flatMap((kind) =>
        (["sync", "async"] as const).map((mode) => ({ kind, mode, samples: [] as number[] }))
      );
      for (let i = 0; i < WARMUP + ROUNDS; i++) {
        for (const { kind, mode, samples } of kinds) {
          await a.ask({ op: "fill", kind });
          await b.ask({ op: "wait", kind, mode }, "waiting");
          await new Promise((r) => setTimeout(r, 2)); // time for b to block
          const t0 = (await a.ask({ op: "release", kind })).t!;
          const t1 = (await b.expect("wait")).t!;
          await a.ask({ op: "drain", kind });
          if (i >= WARMUP) samples.push((t1 - t0) * 1e6);
        }
      }
      const section =
        "Semaphore: cross-Worker handoff (every slot busy, waiter blocked, one released)";
      for (const { kind, mode, samples } of kinds) {
        const s = summarize(samples);
        results.handoff.set(`${kind} ${mode}`, s);
        const what = kind === "Semaphore" ? "Semaphore(2)" : "Lock";
        const name = `${what} ${mode === "sync" ? "acquireSync()" : "await acquire()"} waiter`;
        const command = `${CMD}: ${ROUNDS} rounds, the 4 kinds alternating`;
        add({
          section,
          name: `${name} p50`,
          value: s.p50,
          unit: "ns",
          detail: `p90 ${format(s.p90, "ns")}, p99 ${format(s.p99, "ns")}`,
          command,
          ours: true,
        });
      }
    } finally {
      a.terminate();
      b.terminate();
    }
  }

  // 2b. Async waiters spread over three isolates (main + 2 Workers), per handoff: each
  // release wakes one wait per isolate, not one per waiter.
  {
    const section = "Semaphore: async waiters in 3 isolates (main + 2 Workers), per handoff";
    const parties = [new Party(), new Party()];
    try {
      const sem = new Semaphore(1);
      for (const p of parties) {
        await p.ask({ op: "attach", sem: sem.buffer, lock: new Lock().buffer });
      }
      for (const count of [100, 1_000]) {
        let best = Infinity;
        for (let r = 0; r < 3; r++) {
          sem.acquireSync();
          for (const p of parties) await p.ask({ op: "queue", count }, "queued");
          const local = Array.from({ length: count }, async () => {
            await sem.acquire();
            sem.release();
          });
          const t0 = performance.now();
          sem.release();
          await Promise.all([...local, ...parties.map((p) => p.expect("queue"))]);
          best = Math.min(best, ((performance.now() - t0) * 1e6) / (3 * count));
        }
        results.spread ??= new Map();
        results.spread.set(count, best);
        add({
          section,
          name: `Semaphore, 3 × ${count} waiters`,
          value: best,
          unit: "ns",
          command: `${CMD}: best of 3, one queue per isolate released once`,
          ours: true,
        });
      }
    } finally {
      for (const p of parties) p.terminate();
    }
  }

  // 3. Many async waiters in one isolate, per handoff, beside async-sema.
  {
    type SemaCtor = new (n: number) => { acquire(): Promise<void>; release(): void };
    let Sema: SemaCtor | undefined;
    try {
      // Inline on purpose: a comparison for the benches only, no dependency of the library.
      // deno-lint-ignore no-import-prefix
      Sema = (await import("npm:async-sema@3.1.1")).Sema as unknown as SemaCtor;
    } catch (error) {
      skip("npm:async-sema", `cannot load it (${error})`);
    }
    const section = "Semaphore: async waiters queued in one isolate, per handoff";
    for (const count of [10, 1_000, 10_000]) {
      const repeat = count === 10 ? 300 : count === 1_000 ? 10 : 5;
      let ours = Infinity, theirs = Infinity;
      const measureOurs = async () => {
        const sem = new Semaphore(1);
        const take = async () => {
          await sem.acquire();
          return () => sem.release();
        };
        ours = Math.min(ours, await passThrough(count, take, take));
      };
      const measureTheirs = async () => {
        if (Sema === undefined) return;
        const s = new Sema(1);
        const take = async () => {
          await s.acquire();
          return () => s.release();
        };
        theirs = Math.min(theirs, await passThrough(count, take, take));
      };
      for (let r = 0; r < repeat; r++) {
        // Which goes first alternates, so that neither always follows the other's garbage.
        if (r % 2 === 0) await measureOurs(), await measureTheirs();
        else await measureTheirs(), await measureOurs();
      }
      results.waiters.set(count, { ours, sema: Sema === undefined ? undefined : theirs });
      const command =
        `${CMD}: best of ${repeat}, Semaphore(1) and Sema(1) alternating, one queue of ${count} released once`;
      add({
        section,
        name: `Semaphore, ${count} waiters`,
        value: ours,
        unit: "ns",
        detail: Sema === undefined ? undefined : `${(ours / theirs).toFixed(2)}× async-sema`,
        command,
        ours: true,
      });
      if (Sema !== undefined) {
        add({
          section,
          name: `async-sema, ${count} waiters`,
          value: theirs,
          unit: "ns",
          command,
          ours: false,
        });
      }
    }
  }
  return results;
}

if (import.meta.main) {
  const rows: string[] = [];
  const r = await semaphoreFigures(
    (f) =>
      rows.push(`| ${f.section} | ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`),
    (what, why) => console.error(`SKIP ${what}: ${why}`),
  );
  console.log(`| group | what | figure | detail |\n| --- | --- | --- | --- |\n${rows.join("\n")}`);
  console.log(
    `\nSemaphore sync pair ${format(r.syncPair!, "ns")} (target ≤ 40 ns); ` +
      `Worker handoff p50 sync ${format(r.handoff.get("Semaphore sync")!.p50, "ns")}, ` +
      `async ${format(r.handoff.get("Semaphore async")!.p50, "ns")} (target ≤ 30 µs)`,
  );
}
