// A writer process under a flood of reader processes (issue 12), run alone or
// from bench/run.ts:
//
//   deno run --allow-all bench/_rw_flood_process.ts [WAITS]     prints the table
//
// Two reader processes take InterProcessReaderWriterLock read locks back to
// back (acquireReadLockSync, held 1 ms by a blocking sleep, the second started
// half a hold after the first), so that a reader nearly always holds the lock.
// A writer process then takes the write lock WAITS times (default 200), each
// at a random moment 0–2 ms after its last release, and reports every wait:
// `await acquireWriteLock()` (no timeout: a parked kernel wait), `await
// acquireWriteLock({ timeout: 100 })` and `acquireWriteLockSync({ timeout: 100 })`.
// The same flood with Python fasteners' InterProcessReaderWriterLock (two
// Python reader processes, a Python writer with `timeout=0.1`), whose waits
// that give up are counted. Where a writer's wait goes: the Deno readers log
// each hold (acquired, releasing: epoch ms) and the writer each wait, so
// that every wait splits into the readers' part (until the last reader that
// held the lock during the wait began its release: their holds, stretched by
// the host's scheduling) and the writer's own (from then to holding the
// lock: its wake-up); the readers' measured holds are reported too. The
// script is also its own child process: `… reader PATH HOLD_MS [LOG]`,
// `… writer PATH MODE WAITS`.

import { type Figure, format } from "./_report.ts";
import { summarize, type Summary } from "./_parties.ts";
import { InterProcessReaderWriterLock } from "../mod.ts";

const HOLD_MS = 1;
const TIMEOUT_MS = 100;
const PYTHON = "/usr/bin/python3";
const SECTION =
  `process writer wait under a reader flood (2 reader processes, ${HOLD_MS} ms holds)`;
const MODES = ["async", "async-timeout", "sync-timeout"] as const;
type Mode = typeof MODES[number];
const NAMES: Record<Mode, string> = {
  "async": "InterProcessReaderWriterLock await acquireWriteLock()",
  "async-timeout": `InterProcessReaderWriterLock await acquireWriteLock({timeout: ${TIMEOUT_MS}})`,
  "sync-timeout": `InterProcessReaderWriterLock acquireWriteLockSync({timeout: ${TIMEOUT_MS}})`,
};
const script = decodeURIComponent(new URL(import.meta.url).pathname);

// Python fasteners' reader and writer, the same loops as the Deno children.
const PY_READER = `
import sys, time, fasteners
rw = fasteners.InterProcessReaderWriterLock(sys.argv[1])
hold = float(sys.argv[2]) / 1000
first = True
while True:
    rw.acquire_read_lock()
    if first:
        print("ready", flush=True)
        first = False
    time.sleep(hold)
    rw.release_read_lock()
`;
const PY_WRITER = `
import sys, time, json, random, fasteners
rw = fasteners.InterProcessReaderWriterLock(sys.argv[1])
n = int(sys.argv[2]); timeout = float(sys.argv[3]) / 1000
waits = []
for _ in range(n):
    time.sleep(random.random() * 0.002)
    t0 = time.perf_counter()
    if rw.acquire_write_lock(timeout=timeout):
        waits.append((time.perf_counter() - t0) * 1000)
        rw.release_write_lock()
    else:
        waits.append(None)
print(json.dumps(waits), flush=True)
`;

/** The measured waits of one writer (ns; Infinity for a wait that gave up). */
export interface FloodFigure extends Summary {
  gaveUp: number;
  holdNs: number;
  /** The readers' measured holds (ns), when they logged them (Deno readers, Linux). */
  holds?: Summary;
  /** Each wait's part after the last reader in began its release (ns): the writer's wake-up. */
  wake?: Summary;
  /** Each wait's part until then (ns): the readers' holds. */
  readers?: Summary;
}

/** [start, end] in ms of CLOCK_MONOTONIC, one clock for every process. */
type Span = [number, number];

/**
 * CLOCK_MONOTONIC in ms (Linux), or undefined: performance.timeOrigin differs
 * between processes by up to a millisecond, too much to line up their events.
 */
function monotonicClock(): (() => number) | undefined {
  if (Deno.build.os !== "linux") return undefined;
  const { clock_gettime } = Deno.dlopen("libc.so.6", {
    clock_gettime: { parameters: ["i32", "buffer"], result: "i32" }, // (clockid_t, struct timespec *)
  }).symbols;
  const CLOCK_MONOTONIC = 1; // <linux/time.h>
  const ts = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec; } on LP64
  const bytes = new Uint8Array(ts.buffer);
  return () => {
    clock_gettime(CLOCK_MONOTONIC, bytes);
    return Number(ts[0]) * 1e3 + Number(ts[1]) / 1e6;
  };
}

/**
 * Splits each writer wait into the readers' part and the writer's own (see
 * the top of the file). Waits after the readers' last logged hold are left out.
 */
function split(waits: Span[], holds: Span[]): { readers: number[]; wake: number[] } {
  const readers: number[] = [], wake: number[] = [];
  const logged = Math.max(...holds.map(([, r]) => r));
  for (const [t0, t1] of waits) {
    if (t1 > logged) continue;
    let out = t0;
    for (const [a, r] of holds) if (a < t1 && r > t0) out = Math.max(out, Math.min(r, t1));
    readers.push((out - t0) * 1e6);
    wake.push((t1 - out) * 1e6);
  }
  return { readers, wake };
}

function readLog(path: string): Span[] {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch { /* nothing logged */ }
  return text.split("\n").filter((l) => l !== "").flatMap((l) => JSON.parse(l) as Span[]);
}

/** What bench/run.ts needs: by mode ("async", …, "python"). */
export type FloodFigures = Map<string, FloodFigure>;

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child ended before a line: ${JSON.stringify(text)}`);
    text += value;
  }
  reader.releaseLock();
  return text.slice(0, text.indexOf("\n"));
}

function spawn(cmd: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "inherit" })
    .spawn();
}

const denoChild = (args: string[]) =>
  spawn(Deno.execPath(), ["run", "--no-lock", "--allow-all", script, ...args]);

/** One flood: starts 2 readers, runs the writer, stops the readers. */
async function flood(python: boolean, mode: Mode, waits: number): Promise<FloodFigure> {
  const path = await Deno.makeTempFile({ prefix: "fasteners-rw-flood-" });
  const logs = [`${path}.r0`, `${path}.r1`]; // the readers' holds (Linux)
  const reader = (i: number) =>
    python
      ? spawn(PYTHON, ["-c", PY_READER, path, String(HOLD_MS)])
      : denoChild(["reader", path, String(HOLD_MS), logs[i]]);
  const readers: Deno.ChildProcess[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const r = reader(i);
      readers.push(r);
      if ((await firstLine(r)) !== "ready") throw new Error("reader not ready");
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS / 2));
    }
    const writer = python
      ? spawn(PYTHON, ["-c", PY_WRITER, path, String(waits), String(TIMEOUT_MS)])
      : denoChild(["writer", path, mode, String(waits)]);
    const line = await firstLine(writer);
    await writer.status;
    const out: (number | null)[] | { waits: (number | null)[]; spans: Span[] } = JSON.parse(line);
    const ms = Array.isArray(out) ? out : out.waits;
    const ns = ms.map((m) => m === null ? Infinity : m * 1e6);
    const figure: FloodFigure = {
      ...summarize(ns),
      gaveUp: ns.filter((w) => w === Infinity).length,
      holdNs: HOLD_MS * 1e6,
    };
    for (const r of readers) r.kill("SIGKILL"); // before reading their logs
    const holds = logs.flatMap(readLog);
    if (!Array.isArray(out) && holds.length > 0) {
      figure.holds = summarize(holds.map(([a, r]) => (r - a) * 1e6));
      const parts = split(out.spans, holds);
      if (parts.wake.length > 0) {
        figure.readers = summarize(parts.readers);
        figure.wake = summarize(parts.wake);
      }
    }
    return figure;
  } finally {
    for (const r of readers) {
      try {
        r.kill("SIGKILL");
      } catch { /* already gone */ }
      await r.status;
      await r.stdout.cancel().catch(() => {});
    }
    for (const f of [path, ...logs]) await Deno.remove(f).catch(() => {});
  }
}

async function pythonReady(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(PYTHON, { args: ["-c", "import fasteners"] }).output();
    return out.success ? undefined : `${PYTHON} cannot import fasteners`;
  } catch {
    return `${PYTHON} not found`;
  }
}

/**
 * Measures the writer's waits (see the top of the file) and reports them.
 *
 * @param add Receives each figure.
 * @param skip Receives what could not be measured, and why.
 * @param waits Writer waits per flood (≥ 200 for a p99).
 * @returns The summaries by mode, and "python" when measured.
 */
export async function rwFloodProcessFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
  waits = 200,
): Promise<FloodFigures> {
  const results: FloodFigures = new Map();
  const command = `deno run --allow-all bench/_rw_flood_process.ts ${waits}`;
  const fmt = (ns: number) => ns === Infinity ? "∞ (gave up)" : format(ns, "ns");
  const report = (name: string, s: FloodFigure, ours: boolean) => {
    const part = (what: string, p: Summary | undefined) =>
      p === undefined ? "" : `; ${what} p50 ${fmt(p.p50)}, p99 ${fmt(p.p99)}, max ${fmt(p.max)}`;
    const detail = `p90 ${fmt(s.p90)}, p99 ${fmt(s.p99)}, max ${fmt(s.max)}, ${s.n} waits` +
      (s.gaveUp > 0
        ? `; gave up (timed out at ${TIMEOUT_MS} ms) ${s.gaveUp} of ${s.n} times`
        : "") +
      part("readers' measured holds", s.holds) +
      part("its wait until the last reader in began its release", s.readers) +
      part("from then to holding the lock", s.wake);
    add({
      section: SECTION,
      name: `${name} wait p50`,
      value: Math.min(s.p50, TIMEOUT_MS * 1e6),
      unit: "ns",
      detail,
      command,
      ours,
    });
    add({
      section: SECTION,
      name: `${name} wait p99`,
      value: Math.min(s.p99, TIMEOUT_MS * 1e6),
      unit: "ns",
      command,
      ours,
    });
  };
  if (!mechanismHasRanges()) {
    skip(SECTION, `writer preference needs byte-range locks (this is ${Deno.build.os})`);
  } else {
    for (const mode of MODES) {
      const s = await flood(false, mode, waits);
      results.set(mode, s);
      report(NAMES[mode], s, true);
    }
  }
  const why = await pythonReady();
  if (why !== undefined) skip(`${SECTION}: Python fasteners`, why);
  else {
    const s = await flood(true, "async", waits);
    results.set("python", s);
    report(`Python fasteners acquire_write_lock(timeout=${TIMEOUT_MS / 1000})`, s, false);
  }
  add({
    section: SECTION,
    name: "one reader's hold time",
    value: HOLD_MS * 1e6,
    unit: "ns",
    command,
    ours: false,
  });
  return results;
}

function mechanismHasRanges(): boolean {
  return Deno.build.os === "linux" || Deno.build.os === "windows";
}

// --- the child processes ---

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function writer(path: string, mode: Mode, n: number): Promise<void> {
  const rw = new InterProcessReaderWriterLock(path);
  const waits: (number | null)[] = [];
  const spans: Span[] = [];
  const clock = monotonicClock();
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
    const m0 = clock?.() ?? 0;
    const t0 = performance.now();
    const got = mode === "async"
      ? await rw.acquireWriteLock()
      : mode === "async-timeout"
      ? await rw.acquireWriteLock({ timeout: TIMEOUT_MS })
      : rw.acquireWriteLockSync({ timeout: TIMEOUT_MS });
    const t1 = performance.now();
    const m1 = clock?.() ?? 0;
    waits.push(got ? t1 - t0 : null);
    if (got) {
      rw.releaseWriteLock();
      if (clock !== undefined) spans.push([m0, m1]);
    }
  }
  console.log(JSON.stringify({ waits, spans }));
}

function reader(path: string, holdMs: number, log: string | undefined): void {
  const rw = new InterProcessReaderWriterLock(path);
  let first = true;
  let holds: Span[] = [];
  const clock = log === undefined ? undefined : monotonicClock();
  for (;;) {
    rw.acquireReadLockSync();
    const acquired = clock?.() ?? 0;
    if (first) {
      console.log("ready");
      first = false;
    }
    sleepSync(holdMs);
    const releasing = clock?.() ?? 0;
    rw.releaseReadLock();
    if (clock === undefined) continue;
    holds.push([acquired, releasing]);
    // Outside the hold, every 10 holds: the parent kills the reader at the end.
    if (holds.length === 10) {
      Deno.writeTextFileSync(log!, JSON.stringify(holds) + "\n", { append: true });
      holds = [];
    }
  }
}

if (import.meta.main) {
  const [role, ...args] = Deno.args;
  if (role === "reader") reader(args[0], Number(args[1]), args[2]);
  else if (role === "writer") await writer(args[0], args[1] as Mode, Number(args[2]));
  else {
    const figures: Figure[] = [];
    await rwFloodProcessFigures(
      (f) => figures.push(f),
      (what, why) => console.error(`SKIP ${what}: ${why}`),
      Number(role ?? 200),
    );
    console.log(`| ${SECTION} | value | detail |\n|---|---|---|`);
    for (const f of figures) {
      console.log(`| ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`);
    }
  }
}
