// Many async waiters on one thread lock (issue 13): N tasks of one isolate
// queue on a held `Lock` (or on a held `ReaderWriterLock`, as writers), the
// lock is released, and the time until all N have passed through it, each
// taking and releasing it once, is divided by N: the cost of one handoff.
// npm:async-mutex runs the same pattern in the same run as the reference.
//
//   deno run --allow-all bench/_waiters_thread.ts
//
// Each figure is the median of ROUNDS runs. bench/run.ts calls
// waitersThreadFigures() and checks the targets (per handoff ≤ 2× async-mutex's
// at every N, and the same at 10,000 waiters as at 10, within 2×).

import { Lock, ReaderWriterLock } from "../mod.ts";
import { type Figure, format } from "./_report.ts";

/** The waiter counts measured. */
export const WAITER_COUNTS = [10, 1_000, 10_000] as const;
const ROUNDS = 7;
const SECTION = "Many async waiters (thread locks)";
const COMMAND = "deno run --allow-all bench/_waiters_thread.ts";

/** A lock as the bench drives it: take it (held), queue n waiters, let go. */
interface Subject {
  name: string;
  ours: boolean;
  /** Takes the lock; returns its release. */
  hold(): Promise<() => void>;
  /** One waiter: take, count, release. */
  pass(): Promise<void>;
}

/** Nanoseconds per handoff for `n` waiters behind a held lock: median of ROUNDS. */
async function perHandoff(subject: Subject, n: number): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const release = await subject.hold();
    const all: Promise<void>[] = new Array(n);
    for (let i = 0; i < n; i++) all[i] = subject.pass();
    const t0 = performance.now();
    release();
    await Promise.all(all);
    samples.push(((performance.now() - t0) * 1e6) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

function subjects(
  asyncMutex: typeof import("npm:async-mutex@0.5.0") | undefined,
): Subject[] {
  const lock = new Lock();
  const rw = new ReaderWriterLock();
  const list: Subject[] = [
    {
      name: "Lock",
      ours: true,
      hold: async () => {
        await lock.acquire();
        return () => lock.release();
      },
      pass: async () => {
        await lock.acquire();
        lock.release();
      },
    },
    {
      name: "ReaderWriterLock writers",
      ours: true,
      hold: async () => {
        await rw.acquireWriteLock();
        return () => rw.releaseWriteLock();
      },
      pass: async () => {
        await rw.acquireWriteLock();
        rw.releaseWriteLock();
      },
    },
  ];
  if (asyncMutex !== undefined) {
    const mutex = new asyncMutex.Mutex();
    list.push({
      name: "async-mutex",
      ours: false,
      hold: () => mutex.acquire(),
      pass: async () => {
        const release = await mutex.acquire();
        release();
      },
    });
  }
  return list;
}

/** The measured figures by name ("Lock 1000 waiters"), in ns per handoff. */
export type WaiterFigures = Map<string, number>;

/**
 * Measures every subject at every waiter count, reporting each figure to `add`.
 *
 * @param add Receives each figure as it is measured.
 * @param skip Receives what could not be measured and why.
 * @returns The figures by `"<subject> <n> waiters"`, ns per handoff.
 */
export async function waitersThreadFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
): Promise<WaiterFigures> {
  let asyncMutex: typeof import("npm:async-mutex@0.5.0") | undefined;
  try {
    // Inline on purpose: a comparison for the benches only (see bench/thread_bench.ts).
    // deno-lint-ignore no-import-prefix
    asyncMutex = await import("npm:async-mutex@0.5.0");
  } catch (error) {
    skip("async-mutex (many waiters)", `cannot load npm:async-mutex (${error})`);
  }
  const figures: WaiterFigures = new Map();
  const list = subjects(asyncMutex);
  // Warm up every path once, so that the first measured count is not the JIT's.
  for (const subject of list) await perHandoff(subject, 1_000);
  for (const n of WAITER_COUNTS) {
    for (const subject of list) {
      const ns = await perHandoff(subject, n);
      const name = `${subject.name} ${n} waiters`;
      figures.set(name, ns);
      add({
        section: SECTION,
        name: `${name}: per handoff`,
        value: ns,
        unit: "ns",
        detail: `total ${format(ns * n, "ns")}, median of ${ROUNDS}`,
        command: COMMAND,
        ours: subject.ours,
      });
    }
  }
  return figures;
}

if (import.meta.main) {
  const rows: Figure[] = [];
  const figures = await waitersThreadFigures(
    (f) => rows.push(f),
    (what, why) => console.error(`SKIP ${what}: ${why}`),
  );
  console.log(`${COMMAND}\n`);
  console.log("| async waiters | Lock | ReaderWriterLock writers | async-mutex |");
  console.log("|---|---|---|---|");
  for (const n of WAITER_COUNTS) {
    const cell = (name: string) => {
      const ns = figures.get(`${name} ${n} waiters`);
      return ns === undefined ? "–" : `${format(ns, "ns")} (total ${format(ns * n, "ns")})`;
    };
    console.log(
      `| ${n.toLocaleString("en")} | ${cell("Lock")} | ${cell("ReaderWriterLock writers")} | ${
        cell("async-mutex")
      } |`,
    );
  }
}
