// ReaderWriterLock read scaling: total read-pair throughput of 1..4 Workers
// taking read locks back to back on one lock, against the floor of the
// layout-2 read path (one CAS on one shared word per read, and a decrement),
// measured in the same run with the kinds interleaved round by round. Also
// the cost of a write pair that revokes the read bias (it scans the slots),
// next to a write pair with the bias already off.
//   deno run --allow-all bench/_rw_scaling.ts [--rounds 3] [--ms 400]

import { type Figure, format } from "./_report.ts";
import { ReaderWriterLock } from "../mod.ts";
import { BIASED, REBIAS_AFTER, STATE } from "../locks/thread/_raw_rwlock.ts";

const WORKER = new URL("./_rw_scaling_worker.ts", import.meta.url).href;
const GO = 0, STOP = 1;
const COMMAND = "deno run --allow-all bench/_rw_scaling.ts";

interface Reply {
  op: string;
  count?: number;
  id?: number;
}

class Party {
  readonly worker = new Worker(WORKER, { type: "module" });
  readonly #replies: Reply[] = [];
  #wake: (() => void) | undefined;
  constructor() {
    this.worker.onmessage = (e: MessageEvent<Reply>) => {
      this.#replies.push(e.data);
      this.#wake?.();
    };
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.#replies.push({ op: `error: ${e.message}` });
      this.#wake?.();
    };
  }
  async expect(op: string): Promise<Reply> {
    while (this.#replies.length === 0) await new Promise<void>((r) => (this.#wake = r));
    const reply = this.#replies.shift()!;
    if (reply.op !== op) throw new Error(`expected ${op}, got ${JSON.stringify(reply)}`);
    return reply;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

export interface RwScaling {
  /** Median total reads/s of the lock with n = 1..4 Workers (index n - 1). */
  lock: number[];
  /** The same for the one-shared-word CAS floor. */
  cas: number[];
  /** Every round's lock rates, for the range. */
  lockRounds: number[][];
  /** ns of a biased read pair and of a write pair with the bias off (bulk-timed loops). */
  readPair: number;
  writePair: number;
  /** ns of a write pair that revokes the bias, and of the same loop with the bias left off. */
  revokingWrite: number;
  plainWrite: number;
}

/** Measures read scaling (1..4 Workers) and the revoking write pair; adds the figures. */
export async function rwScalingFigures(
  add: (f: Figure) => void,
  rounds = 3,
  ms = 400,
): Promise<RwScaling> {
  const rw = new ReaderWriterLock();
  const word = new SharedArrayBuffer(4);
  const parties = Array.from({ length: 4 }, () => new Party());
  const lockRounds: number[][] = [[], [], [], []], casRounds: number[][] = [[], [], [], []];
  try {
    for (let round = 0; round < rounds; round++) {
      for (let n = 1; n <= 4; n++) {
        for (const kind of ["rw", "cas"] as const) {
          const control = new Int32Array(new SharedArrayBuffer(8));
          const team = parties.slice(0, n);
          for (const p of team) {
            p.worker.postMessage({ kind, control: control.buffer, rw: rw.buffer, word });
            await p.expect("ready");
          }
          const t0 = performance.now();
          Atomics.store(control, GO, 1);
          Atomics.notify(control, GO);
          await sleep(ms);
          Atomics.store(control, STOP, 1);
          let total = 0;
          for (const p of team) total += (await p.expect("done")).count!;
          const rate = total / ((performance.now() - t0) / 1000);
          (kind === "rw" ? lockRounds : casRounds)[n - 1].push(rate);
        }
      }
    }
  } finally {
    for (const p of parties) p.worker.terminate();
  }
  // Pairs on one thread, timed in bulk (performance.now() is too coarse for
  // one pair): read pairs (biased by then), write pairs with the bias off, and
  // write pairs that find the bias on and revoke it (the bias is set before
  // each by an Atomics.or on STATE, as a re-bias does; the plain loop does the
  // same Atomics.or with 0), which scan the slots of the 5 attachments made.
  const view = new Int32Array(rw.buffer);
  const PAIRS = 1_000_000, WRITES = 200_000;
  const timed = (n: number, body: () => void) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) body();
    return ((performance.now() - t0) * 1e6) / n;
  };
  const readPair = () => {
    rw.acquireReadLockSync();
    rw.releaseReadLock();
  };
  const writePair = () => {
    rw.acquireWriteLockSync();
    rw.releaseWriteLock();
  };
  const biasedWrite = () => {
    Atomics.or(view, STATE, BIASED);
    writePair();
  };
  const plainWrite = () => {
    Atomics.or(view, STATE, 0);
    writePair();
  };
  const pairs = { read: [] as number[], write: [] as number[], revoke: [] as number[] };
  const plainRounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    for (let i = 0; i <= REBIAS_AFTER; i++) readPair();
    pairs.read.push(timed(PAIRS, readPair));
    pairs.write.push(timed(PAIRS, writePair));
    pairs.revoke.push(timed(WRITES, biasedWrite));
    plainRounds.push(timed(WRITES, plainWrite));
  }
  const result: RwScaling = {
    lock: lockRounds.map(median),
    cas: casRounds.map(median),
    lockRounds,
    readPair: median(pairs.read),
    writePair: median(pairs.write),
    revokingWrite: median(pairs.revoke),
    plainWrite: median(plainRounds),
  };
  const section = "ReaderWriterLock read-lock scaling (total throughput)";
  for (let n = 1; n <= 4; n++) {
    const range = lockRounds[n - 1].map((r) => (r / 1e6).toFixed(2)).join(", ");
    add({
      section,
      name: `${n} reader Worker${n > 1 ? "s" : ""}`,
      value: result.lock[n - 1],
      unit: "ops/s",
      detail: `median of ${rounds} (${range} M/s); ${
        (result.lock[n - 1] / n / 1e6).toFixed(2)
      } M/s per Worker; ${navigator.hardwareConcurrency} cores`,
      command: `${COMMAND}: ${n} Workers, ${ms} ms × ${rounds}`,
      ours: true,
    });
    add({
      section,
      name: `${n} Worker${n > 1 ? "s" : ""}: one shared word CAS read (layout-2 path floor)`,
      value: result.cas[n - 1],
      unit: "ops/s",
      command: `${COMMAND}: ${n} Workers, ${ms} ms × ${rounds}`,
      ours: false,
    });
  }
  const wsection = "ReaderWriterLock pairs on one thread (bulk-timed loops, median of 5)";
  const pairCommand = `${COMMAND}: ${PAIRS} pairs per loop`;
  add({
    section: wsection,
    name: "read pair, biased (acquireReadLockSync()+releaseReadLock())",
    value: result.readPair,
    unit: "ns",
    detail: `rounds ${pairs.read.map((x) => x.toFixed(1)).join(", ")} ns`,
    command: pairCommand,
    ours: true,
  });
  add({
    section: wsection,
    name: "write pair, bias off (acquireWriteLockSync()+releaseWriteLock())",
    value: result.writePair,
    unit: "ns",
    detail: `rounds ${pairs.write.map((x) => x.toFixed(1)).join(", ")} ns`,
    command: pairCommand,
    ours: true,
  });
  add({
    section: wsection,
    name: "write pair that revokes the bias (scans 5 slots), with Atomics.or",
    value: result.revokingWrite,
    unit: "ns",
    detail: `rounds ${pairs.revoke.map((x) => x.toFixed(1)).join(", ")} ns`,
    command: `${COMMAND}: ${WRITES} pairs per loop`,
    ours: true,
  });
  add({
    section: wsection,
    name: "write pair, bias off, with the same Atomics.or (of 0)",
    value: result.plainWrite,
    unit: "ns",
    detail: `rounds ${plainRounds.map((x) => x.toFixed(1)).join(", ")} ns`,
    command: `${COMMAND}: ${WRITES} pairs per loop`,
    ours: true,
  });
  return result;
}

if (import.meta.main) {
  const args = Deno.args;
  const opt = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const figures: Figure[] = [];
  const r = await rwScalingFigures((f) => figures.push(f), opt("--rounds", 3), opt("--ms", 400));
  for (const f of figures) {
    console.log(`${f.name.padEnd(62)} ${format(f.value, f.unit).padStart(10)}  ${f.detail ?? ""}`);
  }
  const perRound = r.lockRounds[1].map((x, i) => (x / r.lockRounds[0][i]).toFixed(2));
  console.log(
    `2 reader Workers / 1: lock ${(r.lock[1] / r.lock[0]).toFixed(2)}× (medians; per round ${
      perRound.join(", ")
    }), CAS floor ${(r.cas[1] / r.cas[0]).toFixed(2)}×`,
  );
}
