// `Lock` under contention: two Workers (bench/_contention_worker.ts) hammer one
// lock with acquire / increment a shared counter / release, sync
// (acquireSync()) and async (await acquire()), beside the floor: the classic
// three-state futex mutex (0 free, 1 locked, 2 locked with waiters) with no
// spin, and with a brief spin (BARE_SPIN load rounds, a CAS only after a load
// that saw it free); and, to tell the protocol's cost from the public
// class's, the same protocol called directly (RawLock, no lock.ts). Kinds
// alternate round by round so that they see the same noise; each figure is the median of its rounds. A second, instrumented pass
// counts the Atomics calls per 1000 operations (notify, wait, waitAsync, CAS,
// load; how many acquisitions slept, and how many waits were a waiter woken
// only to lose the race and sleep again).
//
//   deno run --allow-all bench/_contention.ts [--rounds N] [--mode sync|async] [--spin LIST]
//
// `--spin 0,100,path/to/copy.ts` (bench only, to compare spin policies in one
// run; the library keeps its one policy) adds a kind "Lock:<label>" per item:
// Lock from copies of locks/thread/lock.ts and _raw_lock.ts in a temporary
// directory, with `SPIN` and `SYNC_SPIN` (the async and sync spins) both set to
// the number given, or with the file given as _raw_lock.ts (a variant; its
// relative imports are pointed back at locks/thread/). Each copy runs its own
// loop while the other kinds share one, so compare the variants with each
// other (with a copy of the current policy among them), not with the floor.
//
// bench/run.ts calls contentionFigures() and checks the targets.

import { type Figure, format } from "./_report.ts";
import { Lock } from "../mod.ts";
import { BARE_SPIN, type Calls, COUNTER, GO, STOP } from "./_contention_worker.ts";

const CMD = "deno run --allow-all bench/_contention.ts";
const WORKER = new URL("./_contention_worker.ts", import.meta.url).href;
const CONTEND_MS = 250, COUNT_MS = 250;
/** Rounds per kind (median taken); `--rounds N` when run alone. */
let ROUNDS = 7;
/** Modes measured; `--mode sync|async` when run alone. */
let MODES: Mode[] = ["sync", "async"];
/** Spin variants, label -> module URL; `--spin LIST` when run alone. */
const VARIANTS: Record<string, string> = {};

/**
 * Writes a copy of _raw_lock.ts (or of the variant `path`) to `dir`, with
 * `SPIN` and `SYNC_SPIN` set to `spin` when given, and a copy of lock.ts that uses it; returns
 * the lock copy's URL.
 */
function writeVariant(dir: string, label: string, spin?: number, path?: string): string {
  const lib = new URL("../locks/thread/", import.meta.url);
  const name = label.replace(/[^\w]/g, "_");
  const rawFile = `${dir}/raw_lock_${name}.ts`;
  const absolute = (text: string) =>
    text.replace(/from "(\.\.?\/[^"]+)"/g, (_, rel) => `from "${new URL(rel, lib).href}"`);
  let raw = Deno.readTextFileSync(path ?? new URL("_raw_lock.ts", lib));
  if (spin !== undefined) {
    const line = /^const SPIN = \d+, SYNC_SPIN = \d+;/m;
    if (!line.test(raw)) throw new Error("--spin: no `const SPIN = N, SYNC_SPIN = N;` line");
    raw = raw.replace(line, `const SPIN = ${spin}, SYNC_SPIN = ${spin};`);
  }
  Deno.writeTextFileSync(rawFile, absolute(raw));
  let lock = Deno.readTextFileSync(new URL("lock.ts", lib));
  lock = absolute(lock.replace(`from "./_raw_lock.ts"`, `from "file://${rawFile}"`));
  // Each copy carries its own loop, so that every variant's calls are monomorphic
  // (one shared loop calling several Lock classes runs slower for all of them).
  lock += `
export function hammer(l: Lock, v: Int32Array, before: () => void, after: () => void): number {
  let ops = 0;
  while (Atomics.load(v, ${STOP}) === 0) {
    before();
    l.acquireSync();
    v[${COUNTER}]++;
    l.release();
    ops++;
    after();
  }
  return ops;
}
export async function hammerAsync(l: Lock, v: Int32Array, before: () => void, after: () => void): Promise<number> {
  let ops = 0;
  while (Atomics.load(v, ${STOP}) === 0) {
    before();
    await l.acquire();
    v[${COUNTER}]++;
    l.release();
    ops++;
    after();
  }
  return ops;
}
`;
  const lockFile = `${dir}/lock_${name}.ts`;
  Deno.writeTextFileSync(lockFile, lock);
  return `file://${lockFile}`;
}

/** "Lock:<label>": a spin variant (`--spin`). */
export type Kind = "Lock" | "raw" | "bare" | "bare-spin" | `Lock:${string}`;
export type Mode = "sync" | "async";

/** What bench/run.ts needs for its targets. */
export interface ContentionResults {
  /** Total ops/s, median of the rounds, by `${kind} ${mode}`. */
  rate: Map<string, number>;
  /** Increments lost in any round, by `${kind} ${mode}` (0: exclusion held). */
  lost: Map<string, number>;
  /** Atomics calls per 1000 operations (instrumented pass), by `${kind} ${mode}`. */
  per1000: Map<string, Calls>;
}

interface Reply {
  op: string;
  ops?: number;
  calls?: Calls;
  message?: string;
}

/** A Worker running _contention_worker.ts, one command at a time. */
class Party {
  readonly #worker = new Worker(WORKER, { type: "module" });
  readonly #replies: Reply[] = [];
  #wake: (() => void) | undefined;

  constructor() {
    this.#worker.onmessage = (e: MessageEvent<Reply>) => {
      this.#replies.push(e.data);
      this.#wake?.();
    };
  }

  send(command: Record<string, unknown>): void {
    this.#worker.postMessage(command);
  }

  async expect(op: string): Promise<Reply> {
    while (this.#replies.length === 0) await new Promise<void>((r) => (this.#wake = r));
    const reply = this.#replies.shift()!;
    if (reply.op !== op) throw new Error(`Worker: expected ${op}, got ${JSON.stringify(reply)}`);
    return reply;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One run of both Workers on `kind`/`mode` for `ms`: total ops/s, lost increments, summed calls. */
async function run(
  parties: Party[],
  lock: Lock,
  kind: Kind,
  mode: Mode,
  ms: number,
  count: boolean,
): Promise<{ rate: number; ops: number; lost: number; calls?: Calls }> {
  const control = new Int32Array(new SharedArrayBuffer(12));
  const bare = new SharedArrayBuffer(4);
  for (const p of parties) {
    p.send({ op: "contend", kind, mode, bare, control: control.buffer, count });
    await p.expect("ready");
  }
  const t0 = performance.now();
  Atomics.store(control, GO, 1);
  Atomics.notify(control, GO);
  await sleep(ms);
  Atomics.store(control, STOP, 1);
  let ops = 0;
  let calls: Calls | undefined;
  for (const p of parties) {
    const r = await p.expect("contend");
    ops += r.ops!;
    if (r.calls !== undefined) {
      if (calls === undefined) calls = { ...r.calls };
      else for (const k of Object.keys(calls) as (keyof Calls)[]) calls[k] += r.calls[k];
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (lock.locked) throw new Error(`${kind} ${mode}: the Lock is still held after the run`);
  return { rate: ops / seconds, ops, lost: ops - control[COUNTER], calls };
}

const name = (kind: Kind, mode: Mode) =>
  kind.startsWith("Lock:")
    ? `Lock, spin variant ${kind.slice(5)}, ${mode}`
    : NAMES[kind as keyof typeof NAMES][mode];

const NAMES = {
  "raw": {
    sync: "RawLock acquireSync()+release()",
    async: "RawLock await acquireAsync()+release()",
  },
  "Lock": { sync: "Lock acquireSync()+release()", async: "Lock await acquire()+release()" },
  "bare": {
    sync: "bare futex mutex, no spin (Atomics.wait)",
    async: "bare futex mutex, no spin (Atomics.waitAsync)",
  },
  "bare-spin": {
    sync: `bare futex mutex, spin ${BARE_SPIN} loads (Atomics.wait)`,
    async: `bare futex mutex, spin ${BARE_SPIN} loads (Atomics.waitAsync)`,
  },
};

/** The counts of one instrumented run, per 1000 operations, as one line. */
export function describeCalls(c: Calls): string {
  const f = (n: number) => n < 10 ? n.toFixed(1) : n.toFixed(0);
  const waits = c.wait - c.waitNotEqual;
  return `per 1000 ops: notify ${f(c.notify)} (woke a wait ${f(c.notifyWoke)}), ` +
    `wait ${f(waits)} slept + ${f(c.waitNotEqual)} not-equal, ` +
    `waitAsync ${f(c.waitAsync - c.waitAsyncNotEqual)} pending + ${
      f(c.waitAsyncNotEqual)
    } not-equal, ` +
    `acquisitions that slept ${f(c.slept)}, woken and slept again ${f(c.sleptAgain)}, ` +
    `CAS ${f(c.cas)} (failed ${f(c.casFailed)}), load ${f(c.load)}`;
}

/** Measures every contention figure, calling `add` for each. */
export async function contentionFigures(
  add: (f: Figure) => void,
  _skip: (what: string, why: string) => void,
): Promise<ContentionResults> {
  const results: ContentionResults = { rate: new Map(), lost: new Map(), per1000: new Map() };
  const lock = new Lock();
  const parties = [new Party(), new Party()];
  try {
    for (const p of parties) {
      p.send({ op: "attach", lock: lock.buffer, variants: VARIANTS });
      await p.expect("attach");
    }
    const kinds: Kind[] = [
      "bare",
      "bare-spin",
      "Lock",
      "raw",
      ...Object.keys(VARIANTS).map((l): Kind => `Lock:${l}`),
    ];
    for (const mode of MODES) {
      const rates = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
      // Warm-up round, then ROUNDS rounds with the kinds alternating.
      for (let round = -1; round < ROUNDS; round++) {
        for (const kind of kinds) {
          const r = await run(parties, lock, kind, mode, CONTEND_MS, false);
          if (round < 0) continue;
          rates.get(kind)!.push(r.rate);
          const key = `${kind} ${mode}`;
          results.lost.set(key, (results.lost.get(key) ?? 0) + r.lost);
        }
      }
      for (const kind of kinds) {
        const r = await run(parties, lock, kind, mode, COUNT_MS, true);
        const c = r.calls!;
        for (const k of Object.keys(c) as (keyof Calls)[]) c[k] = (c[k] * 1000) / r.ops;
        results.per1000.set(`${kind} ${mode}`, c);
        results.lost.set(`${kind} ${mode}`, results.lost.get(`${kind} ${mode}`)! + r.lost);
      }
      const floor = Math.max(median(rates.get("bare")!), median(rates.get("bare-spin")!));
      for (const kind of kinds) {
        const key = `${kind} ${mode}`;
        const rate = median(rates.get(kind)!);
        results.rate.set(key, rate);
        const lost = results.lost.get(key)!;
        add({
          section: `2 Workers contending on one lock, ${mode} (total throughput)`,
          name: name(kind, mode),
          value: rate,
          unit: "ops/s",
          detail: `${(rate / floor).toFixed(2)}× the faster floor; ` +
            `${lost === 0 ? "no increment lost" : `LOST ${lost} increments`}; ` +
            describeCalls(results.per1000.get(key)!),
          command: `${CMD}: median of ${ROUNDS} rounds of ${CONTEND_MS} ms, kinds alternating; ` +
            `counts from one instrumented run of ${COUNT_MS} ms`,
          ours: kind === "Lock",
        });
      }
    }
  } finally {
    for (const p of parties) p.terminate();
  }
  return results;
}

if (import.meta.main) {
  let spins: string[] = [];
  for (let i = 0; i < Deno.args.length; i += 2) {
    const [flag, value] = [Deno.args[i], Deno.args[i + 1]];
    if (flag === "--rounds" && Number(value) >= 1) ROUNDS = Number(value);
    else if (flag === "--mode" && (value === "sync" || value === "async")) MODES = [value];
    else if (flag === "--spin" && value) spins = value.split(",");
    else {throw new TypeError(
        `usage: ${CMD} [--rounds N] [--mode sync|async] [--spin LIST]; got ${flag} ${value}`,
      );}
  }
  // Only with --spin: the copies live in a temporary directory, removed at the end.
  const dir = spins.length === 0 ? undefined : Deno.makeTempDirSync({ prefix: "contention_spin_" });
  let r: ContentionResults;
  const rows: string[] = [];
  try {
    for (const item of spins) {
      const number = /^\d+$/.test(item);
      const label = number ? `SPIN=${item}` : item.replace(/^.*\//, "").replace(/\.ts$/, "");
      VARIANTS[label] = number
        ? writeVariant(dir!, label, Number(item))
        : writeVariant(dir!, label, undefined, item);
    }
    r = await contentionFigures(
      (f) => rows.push(`| ${f.section} | ${f.name} | ${format(f.value, f.unit)} | ${f.detail} |`),
      (what, why) => console.error(`SKIP ${what}: ${why}`),
    );
  } finally {
    if (dir !== undefined) Deno.removeSync(dir, { recursive: true });
  }
  console.log(`| group | what | figure | detail |\n| --- | --- | --- | --- |\n${rows.join("\n")}`);
  for (const mode of MODES) {
    const floor = Math.max(r.rate.get(`bare ${mode}`)!, r.rate.get(`bare-spin ${mode}`)!);
    console.log(
      `\nLock ${mode}: ${format(r.rate.get(`Lock ${mode}`)!, "ops/s")} = ${
        (r.rate.get(`Lock ${mode}`)! / floor).toFixed(2)
      }× the faster bare futex mutex (${format(floor, "ops/s")}); target ≥ 0.8×`,
    );
    for (const label of ["raw", ...Object.keys(VARIANTS).map((l) => `Lock:${l}`)]) {
      const rate = r.rate.get(`${label} ${mode}`)!;
      console.log(`  ${label} ${mode}: ${format(rate, "ops/s")} = ${(rate / floor).toFixed(2)}×`);
    }
  }
}
