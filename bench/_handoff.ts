// Cross-Worker handoff latency: Worker a holds the lock, Worker b blocks in
// acquire (sync: Atomics.wait; async: its event loop idles on a waitAsync), a
// releases: the figure is the time from a's clock read just before its release
// to b's clock read just after its acquire returned (both Workers run
// bench/worker_party.ts). The kinds alternate round by round so that they see
// the same noise, each round starting with the next kind: the floor (a bare
// three-state futex mutex with Atomics.wait / Atomics.waitAsync) and Lock
// (acquireSync() / await acquire()).
//
//   deno run --allow-all bench/_handoff.ts [--rounds N] [--runs N]
//
// prints one table per run and, at the end, each Lock kind's p50 as a ratio of
// the bare floor of the same run. bench/_workers.ts calls handoffFigures() with
// its own two Workers; bench/run.ts checks the targets.

import { type Figure, format } from "./_report.ts";
import { summarize, type Summary } from "./_parties.ts";

const PARTY = new URL("./worker_party.ts", import.meta.url).href;
/** Rounds per kind (after WARMUP); `--rounds N` when run alone. */
const ROUNDS = 600, WARMUP = 30;

/** What handoffFigures needs of a Worker running worker_party.ts. */
export interface Asker {
  ask(command: Record<string, unknown>, op?: string): Promise<{ t?: number }>;
  expect(op: string): Promise<{ t?: number }>;
}

export type HandoffKind = "bare sync" | "bare async" | "Lock sync" | "Lock async";
const KINDS: { key: HandoffKind; kind: "bare" | "Lock"; mode: "sync" | "async" }[] = [
  { key: "bare sync", kind: "bare", mode: "sync" },
  { key: "bare async", kind: "bare", mode: "async" },
  { key: "Lock sync", kind: "Lock", mode: "sync" },
  { key: "Lock async", kind: "Lock", mode: "async" },
];

const NAMES: Record<HandoffKind, string> = {
  "bare sync": "bare Atomics futex mutex, Atomics.wait waiter",
  "bare async": "bare Atomics futex mutex, Atomics.waitAsync waiter",
  "Lock sync": "Lock acquireSync() waiter",
  "Lock async": "Lock await acquire() waiter",
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Measures handoff latency between Workers `a` and `b` (attached to the same
 * Lock and bare word), `rounds` rounds of each kind, and adds a p50 and a p99
 * figure per kind. Returns the summaries by kind.
 */
export async function handoffFigures(
  a: Asker,
  b: Asker,
  add: (f: Figure) => void,
  command: string,
  rounds = ROUNDS,
): Promise<Map<HandoffKind, Summary>> {
  const samples = new Map<HandoffKind, number[]>(KINDS.map((k) => [k.key, []]));
  for (let i = 0; i < WARMUP + rounds; i++) {
    // Each round starts with the next kind, so every kind takes every place in
    // the round equally often (a kind run right after another one is not
    // measured under the same conditions as the first of a round).
    for (let j = 0; j < KINDS.length; j++) {
      const { key, kind, mode } = KINDS[(i + j) % KINDS.length];
      await a.ask({ op: "hold", kind });
      await b.ask({ op: "wait", kind, mode }, "waiting");
      await sleep(2); // time for b to block in Atomics.wait / waitAsync
      const t0 = (await a.ask({ op: "release", kind })).t!;
      const t1 = (await b.expect("wait")).t!;
      if (i >= WARMUP) samples.get(key)!.push((t1 - t0) * 1e6);
    }
  }
  const results = new Map<HandoffKind, Summary>();
  for (const { key, kind, mode } of KINDS) {
    const s = summarize(samples.get(key)!);
    results.set(key, s);
    const floor = kind === "Lock" ? results.get(`bare ${mode}`) : undefined;
    const vs = floor === undefined
      ? ""
      : `; ${(s.p50 / floor.p50).toFixed(2)}× the bare floor's p50`;
    const section = "cross-Worker handoff (waiter blocked, holder releases)";
    const full = `${command}: ${rounds} rounds, the 4 kinds alternating`;
    const ours = kind === "Lock";
    add({
      section,
      name: `${NAMES[key]} p50`,
      value: s.p50,
      unit: "ns",
      detail: `min ${format(s.min, "ns")}, p90 ${format(s.p90, "ns")}, p99 ${
        format(s.p99, "ns")
      }, max ${format(s.max, "ns")}${vs}`,
      command: full,
      ours,
    });
    add({ section, name: `${NAMES[key]} p99`, value: s.p99, unit: "ns", command: full, ours });
  }
  return results;
}

/** A Worker running worker_party.ts, one command at a time (the script run alone). */
class Party implements Asker {
  readonly #worker = new Worker(PARTY, { type: "module" });
  readonly #replies: { op: string; t?: number; message?: string }[] = [];
  #wake: (() => void) | undefined;

  constructor() {
    this.#worker.onmessage = (e) => {
      this.#replies.push(e.data);
      this.#wake?.();
    };
  }

  async expect(op: string): Promise<{ t?: number }> {
    while (this.#replies.length === 0) await new Promise<void>((r) => (this.#wake = r));
    const reply = this.#replies.shift()!;
    if (reply.op !== op) throw new Error(`Worker: expected ${op}, got ${JSON.stringify(reply)}`);
    return reply;
  }

  async ask(command: Record<string, unknown>, op = command.op as string): Promise<{ t?: number }> {
    this.#worker.postMessage(command);
    return await this.expect(op);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

if (import.meta.main) {
  let rounds = ROUNDS, runs = 1;
  for (let i = 0; i < Deno.args.length; i += 2) {
    const [flag, value] = [Deno.args[i], Deno.args[i + 1]];
    if (flag === "--rounds" && Number(value) >= 1) rounds = Number(value);
    else if (flag === "--runs" && Number(value) >= 1) runs = Number(value);
    else {
      throw new TypeError(
        `usage: deno run --allow-all bench/_handoff.ts [--rounds N] [--runs N]; got ${flag} ${value}`,
      );
    }
  }
  const { Lock, ReaderWriterLock } = await import("../mod.ts");
  const lock = new Lock(), rw = new ReaderWriterLock(), bare = new SharedArrayBuffer(4);
  const [a, b] = [new Party(), new Party()];
  const ratios: Record<"sync" | "async", number[]> = { sync: [], async: [] };
  try {
    for (const p of [a, b]) {
      await p.ask({ op: "attach", lock: lock.buffer, rw: rw.buffer, bare });
    }
    for (let run = 1; run <= runs; run++) {
      const rows: string[] = [];
      const r = await handoffFigures(
        a,
        b,
        (f) => rows.push(`| ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`),
        "deno run --allow-all bench/_handoff.ts",
        rounds,
      );
      console.log(`\nrun ${run} of ${runs}, ${rounds} rounds per kind`);
      console.log(`| what | figure | detail |\n| --- | --- | --- |\n${rows.join("\n")}`);
      for (const mode of ["sync", "async"] as const) {
        ratios[mode].push(r.get(`Lock ${mode}`)!.p50 / r.get(`bare ${mode}`)!.p50);
      }
    }
  } finally {
    a.terminate();
    b.terminate();
  }
  for (const mode of ["sync", "async"] as const) {
    console.log(
      `Lock ${mode} handoff p50 / bare floor p50, per run: ${
        ratios[mode].map((x) => x.toFixed(2)).join(", ")
      }${mode === "async" ? " (target ≤ 1.2)" : ""}`,
    );
  }
}
