// The cross-Worker figures of bench/run.ts: handoff latency between two
// Workers, throughput of two Workers contending on one Lock, and a writer's
// wait under a flood of readers (read-lock scaling: bench/_rw_scaling.ts). The Workers run
// bench/worker_party.ts.

import { type Figure, format } from "./_report.ts";
import { summarize } from "./_parties.ts";
import { handoffFigures } from "./_handoff.ts";

const PARTY = new URL("./worker_party.ts", import.meta.url).href;
const GO = 0, STOP = 1;

interface Reply {
  op: string;
  t?: number;
  count?: number;
  waits?: number[];
  message?: string;
}

/** A Worker running worker_party.ts, answering one command at a time. */
class WorkerParty {
  readonly #worker = new Worker(PARTY, { type: "module" });
  readonly #replies: Reply[] = [];
  #wake: (() => void) | undefined;

  constructor() {
    this.#worker.onmessage = (e: MessageEvent<Reply>) => {
      this.#replies.push(e.data);
      this.#wake?.();
    };
    this.#worker.onerror = (e) => {
      this.#replies.push({ op: "error", message: e.message });
      this.#wake?.();
      e.preventDefault();
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

  async ask(command: Record<string, unknown>, op = command.op as string): Promise<Reply> {
    this.send(command);
    return await this.expect(op);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

const fmt = (ns: number) => (ns === Infinity ? "gave up" : format(ns, "ns"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CMD = "deno task bench (bench/run.ts → Workers running bench/worker_party.ts)";

export interface WorkerResults {
  handoff: Map<string, { p50: number; p99: number }>; // by "bare sync", "Lock async", … (bench/_handoff.ts)
  writerWait?: { p50: number; p99: number; max: number; holdNs: number };
}

/**
 * Measures every cross-Worker figure, or skips them when mod.ts has no
 * thread locks yet.
 */
export async function workerFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
): Promise<WorkerResults> {
  const results: WorkerResults = { handoff: new Map() };
  const lib = await import("../mod.ts") as Record<string, unknown>;
  if (typeof lib.Lock !== "function" || typeof lib.ReaderWriterLock !== "function") {
    skip("cross-Worker figures", "mod.ts does not export Lock and ReaderWriterLock yet");
    return results;
  }
  type Shareable = { new (): { buffer: SharedArrayBuffer } };
  const lock = new (lib.Lock as Shareable)();
  const rw = new (lib.ReaderWriterLock as Shareable)();
  const bare = new SharedArrayBuffer(4);
  const parties = Array.from({ length: 4 }, () => new WorkerParty());
  try {
    for (const p of parties) {
      await p.ask({ op: "attach", lock: lock.buffer, rw: rw.buffer, bare });
    }
    const [a, b] = parties;

    // Handoff: a holds, b blocks in acquire, a releases (bench/_handoff.ts).
    results.handoff = await handoffFigures(a, b, add, CMD);

    // Throughput: two Workers contending on one lock for a fixed time.
    const CONTEND_MS = 700;
    const contend = async (op: string, workers: WorkerParty[], extra: Record<string, unknown>) => {
      const buffer = new SharedArrayBuffer(12);
      const control = new Int32Array(buffer);
      for (const w of workers) await w.ask({ op, control: buffer, ...extra }, "ready");
      const t0 = performance.now();
      Atomics.store(control, GO, 1);
      Atomics.notify(control, GO);
      await sleep(CONTEND_MS);
      Atomics.store(control, STOP, 1);
      let total = 0;
      for (const w of workers) total += (await w.expect(op)).count!;
      const seconds = (performance.now() - t0) / 1000;
      return { rate: total / seconds, total, counter: control[2] };
    };
    for (
      const [kind, mode, name] of [
        ["bare", "sync", "bare Atomics futex mutex (Atomics.wait)"],
        ["Lock", "sync", "Lock acquireSync()+release()"],
        ["Lock", "async", "Lock await acquire()+release()"],
      ] as const
    ) {
      const r = await contend("contend", [a, b], { kind, mode });
      add({
        section: "2 Workers contending on one lock (throughput)",
        name,
        value: r.rate,
        unit: "ops/s",
        detail: r.counter === r.total
          ? "no increment lost"
          : `LOST ${r.total - r.counter} increments`,
        command: `${CMD}: 2 Workers, ${CONTEND_MS} ms`,
        ours: kind === "Lock",
      });
    }

    // Read-lock scaling (1..4 Workers) is measured by bench/_rw_scaling.ts.

    // Writer under a reader flood: two Workers hold read locks for HOLD_MS
    // each, back to back and half a hold apart, so that a reader always holds
    // the lock; a third Worker takes the write lock at random moments. The same
    // for the process reader-writer lock, whose preference is the kernel's.
    const HOLD_MS = 1;
    for (const processLock of [false, true]) {
      const path = processLock
        ? await Deno.makeTempFile({ prefix: "fasteners-flood-" })
        : undefined;
      const writes = processLock ? 15 : 300, timeoutMs = processLock ? 100 : 10_000;
      const buffer = new SharedArrayBuffer(12);
      const control = new Int32Array(buffer);
      await a.ask({ op: "flood", holdMs: HOLD_MS, control: buffer, path }, "ready");
      await sleep(HOLD_MS / 2);
      await b.ask({ op: "flood", holdMs: HOLD_MS, control: buffer, path }, "ready");
      await sleep(5);
      const waits = (await parties[2].ask({ op: "writer", rounds: writes, timeoutMs, path })).waits!
        .map((ms) => ms * 1e6);
      Atomics.store(control, STOP, 1);
      await a.expect("flood");
      await b.expect("flood");
      if (path !== undefined) await Deno.remove(path);
      const gaveUp = waits.filter((w) => w === Infinity).length;
      const s = summarize(waits);
      const name = processLock
        ? "InterProcessReaderWriterLock acquireWriteLockSync({timeout: 100})"
        : "ReaderWriterLock acquireWriteLockSync()";
      const section = `writer wait under a reader flood (2 reader Workers, ${HOLD_MS} ms holds)`;
      const command = `${CMD}: ${writes} write acquisitions`;
      const detail = `p90 ${fmt(s.p90)}, p99 ${fmt(s.p99)}, max ${fmt(s.max)}` +
        (gaveUp > 0 ? `; gave up (timed out at ${timeoutMs} ms) ${gaveUp} of ${writes} times` : "");
      if (!processLock) results.writerWait = { ...s, holdNs: HOLD_MS * 1e6 };
      add({
        section,
        name: `${name} wait p50`,
        value: Math.min(s.p50, timeoutMs * 1e6),
        unit: "ns",
        detail,
        command,
        ours: true,
      });
      add({
        section,
        name: `${name} wait p99`,
        value: Math.min(s.p99, timeoutMs * 1e6),
        unit: "ns",
        command,
        ours: true,
      });
      if (processLock) {
        add({
          section,
          name: "one reader's hold time",
          value: HOLD_MS * 1e6,
          unit: "ns",
          command,
          ours: false,
        });
      }
    }
  } finally {
    for (const p of parties) p.terminate();
  }
  return results;
}
