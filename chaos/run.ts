// Chaos and soak runs over every lock of the library.
//
//   deno task chaos [--seconds 60] [--seed N] [--children 6] [--workers 6]
//   deno task soak  [--seconds 600]            (= chaos --soak)
//
// A supervisor spawns child processes (chaos/child.ts) that take the process
// locks and Workers (chaos/worker.ts) that take the thread locks, SIGKILLs
// random children (aiming at holders more often than not) and terminates
// random Workers, force-releasing what a dead Worker held. Every critical
// section is journaled (see chaos/_common.ts); at the end the journals are
// merged and checked: no two writers and no writer with a reader overlapped,
// no increment was lost, every lock can still be taken, no child process,
// Worker thread or descriptor was left behind. Exits 1 on any violation.
//
// Soak: the same at a steady, slower rate for a long run, with two children
// that are never killed; samples RSS and descriptors of the supervisor and of
// those children, and fails when they grow beyond the stated tolerance.

import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  InterProcessLock,
  InterProcessReaderWriterLock,
  Lock,
  ReaderWriterLock,
  Semaphore,
} from "../mod.ts";
import { InterProcessSemaphore } from "../mod.ts"; // process semaphore kind
import { BIASED, REBIAS_AFTER, STATE as RW_STATE } from "../locks/thread/_raw_rwlock.ts"; // ReaderWriterLock read bias
import { CounterFile, now, PSEM_SLOTS, rng, SHARED } from "./_common.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string" },
    seed: { type: "string" },
    children: { type: "string", default: "6" },
    workers: { type: "string", default: "6" },
    soak: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    /** "off": no SIGKILLs nor Worker terminations (to tell fault effects from plain contention). */
    faults: { type: "string", default: "on" },
  },
});
const soak = args.soak;
const seconds = Number(args.seconds ?? (soak ? 600 : 60));
const seed = Number(args.seed ?? Date.now() % 1_000_000);
const nChildren = Number(args.children);
const nWorkers = Number(args.workers);
if (!(seconds > 0) || !(nChildren >= 1) || !(nWorkers >= 1)) {
  console.error(
    "usage: chaos/run.ts [--seconds N] [--seed N] [--children N] [--workers N] [--soak]",
  );
  Deno.exit(2);
}
const random = rng(seed);
/** Pause between attempts in children and Workers (ms). */
const pause = soak ? 4 : 1;
/** Mean interval between kills of a child, and between Worker terminations (ms). */
const killEvery = soak ? 1500 : 250;
// ReaderWriterLock records read holds for forceRelease() only for attachment
// ids 1..256 (locks/thread/_raw_rwlock.ts RECORDED_IDS): keep Worker spawns below that.
const MAX_WORKER_SPAWNS = 240;
const terminateEvery = Math.max(
  soak ? 3000 : 300,
  (seconds * 1000) / (MAX_WORKER_SPAWNS - nWorkers),
);
const MAX_SLOTS = 1024;

const dir = await Deno.makeTempDir({ prefix: "fasteners_chaos_" });
let fdsAtStart = 0; // measured once the first Workers have loaded (Deno opens its caches then)
const threadsAtStart = workerThreads();

const violations: string[] = [];
const kills: string[] = []; // K records
const recoveries: string[] = []; // F records
const totals = { kills: 0, killedHolders: 0, terminations: 0, recoveries: 0, spawns: 0 };

// ---- thread locks and Workers --------------------------------------------------

const lock = new Lock();
const rw = new ReaderWriterLock();
// --- thread Semaphore kind (tsem) ---
const tsem = new Semaphore(SHARED.TSEM_SLOTS);
// --- end tsem ---
const shared = new SharedArrayBuffer((SHARED.SLOTS + MAX_SLOTS * SHARED.SLOT_WORDS) * 4);
const words = new Int32Array(shared);

interface WorkerEntry {
  worker: Worker;
  name: string;
  index: number;
  lockId: number;
  rwId: number;
  /** Its thread Semaphore attachment id (tsem). */
  tsemId: number;
  terminatedAt?: number;
  lastBeat?: number;
  stableSince?: number;
  /** Force-released since its heartbeat last moved. */
  recovered?: boolean;
}
const workers = new Map<string, WorkerEntry>();
const dead: WorkerEntry[] = [];
let nextIndex = 0;

async function spawnWorker(): Promise<void> {
  const index = nextIndex++;
  if (index >= MAX_SLOTS) throw new Error("out of Worker slots");
  const name = String(index);
  const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  const ready = new Promise<{ lockId: number; rwId: number; tsemId: number }>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      violations.push(`Worker ${name} failed: ${e.message}`);
      reject(new Error(e.message));
    };
  });
  worker.postMessage({
    lock: lock.buffer,
    rw: rw.buffer,
    tsem: tsem.buffer,
    shared,
    index,
    name,
    journal: join(dir, `j-w${name}.log`),
    seed: Math.floor(random() * 2 ** 31),
    pause,
  });
  const { lockId, rwId, tsemId } = await ready;
  workers.set(name, { worker, name, index, lockId, rwId, tsemId });
  totals.spawns++;
}

function terminateWorker(entry: WorkerEntry): void {
  const t = Atomics.add(words, SHARED.CLOCK, 1);
  kills.push(`K w${entry.name}. ${t}`);
  entry.worker.terminate();
  entry.terminatedAt = t;
  workers.delete(entry.name);
  dead.push(entry);
  totals.terminations++;
}

/**
 * Force-releases what terminated Workers hold once they are surely dead:
 * their heartbeat has not moved for 150 ms. (Worker.terminate() does not
 * interrupt Atomics.wait: a Worker terminated while blocked in a sync
 * acquire runs on when woken, so it is watched for as long as the run lasts.)
 */
function recoverDead(): void {
  const t = performance.now();
  for (const entry of dead) {
    const beat = Atomics.load(words, SHARED.SLOTS + entry.index * SHARED.SLOT_WORDS);
    if (beat !== entry.lastBeat) {
      entry.lastBeat = beat;
      entry.stableSince = t;
      entry.recovered = false;
      continue;
    }
    if (t - entry.stableSince! < 150 || entry.recovered) continue;
    entry.recovered = true;
    // --- thread Semaphore kind (tsem): undo the dead tasks' live count before their slots go ---
    for (let task = 0; task < SHARED.TASKS; task++) {
      const mark = SHARED.SLOTS + entry.index * SHARED.SLOT_WORDS + 1 + task;
      if (Atomics.load(words, mark) === SHARED.MARK_TSEM) Atomics.sub(words, SHARED.TSEM_INSIDE, 1);
    }
    // --- end tsem ---
    // Clear its hold marks first: once released, another holder may enter.
    for (let task = 0; task < SHARED.TASKS; task++) {
      Atomics.store(words, SHARED.SLOTS + entry.index * SHARED.SLOT_WORDS + 1 + task, 0);
    }
    const at = Atomics.add(words, SHARED.CLOCK, 1);
    if (lock.forceRelease(entry.lockId)) {
      recoveries.push(`F tl w${entry.name}. ${at}`);
      totals.recoveries++;
    }
    if (rw.forceRelease(entry.rwId)) {
      recoveries.push(`F trw w${entry.name}. ${at}`);
      totals.recoveries++;
    }
    // --- thread Semaphore kind (tsem): each slot of the dead attachment comes back once ---
    const slots = tsem.forceRelease(entry.tsemId);
    if (slots > 0) {
      for (let i = 0; i < slots; i++) recoveries.push(`F tsem w${entry.name}. ${at}`);
      totals.recoveries += slots;
    }
    // --- end tsem ---
  }
}

// ---- child processes --------------------------------------------------------

interface ChildEntry {
  name: string;
  process: Deno.ChildProcess;
  holding: number;
  killed: boolean;
  steady: boolean;
  done: Promise<void>;
}
const children = new Map<string, ChildEntry>();
let nextChild = 0;

function spawnChild(steady = false): void {
  const name = steady ? `s${nextChild++}` : String(nextChild++);
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      // V8 grows the young generation during the run (to 2 x 32 MiB on a 24 GiB
      // machine): a 600 s soak saw a steady child's RSS rise 57 -> 119 MiB while
      // its heap after gc() stayed at 5 MiB. Capped at 2 x 1 MiB, RSS growth
      // measures what is retained, not V8's sizing.
      ...(steady ? ["--v8-flags=--max-semi-space-size=1"] : []),
      new URL("./child.ts", import.meta.url).pathname,
      dir,
      name,
      String(Math.floor(random() * 2 ** 31)),
      String(pause),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const entry: ChildEntry = {
    name,
    process,
    holding: 0,
    killed: false,
    steady,
    done: Promise.resolve(),
  };
  const lines = (async () => {
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      for (const c of chunk) {
        if (c === "H") entry.holding++;
        else if (c === "F") entry.holding--;
      }
    }
  })();
  const errors = new Response(process.stderr).text();
  entry.done = (async () => {
    const status = await process.status;
    await lines.catch(() => {});
    const stderr = await errors;
    if (!entry.killed && (status.code !== 0 || stderr.trim() !== "")) {
      // Its open sections end at its death, seen now.
      kills.push(`K p${name}. ${now()}`);
      violations.push(
        `child ${name} ended with code ${status.code}: ${stderr.trim().slice(0, 2000)}`,
      );
    }
  })();
  children.set(name, entry);
  totals.spawns++;
}

async function killChild(entry: ChildEntry): Promise<void> {
  entry.killed = true;
  const t = now();
  if (entry.holding > 0) totals.killedHolders++;
  kills.push(`K p${entry.name}. ${t}`);
  try {
    entry.process.kill("SIGKILL");
    await entry.process.stdin.close();
  } catch {
    // already ended
  }
  totals.kills++;
  children.delete(entry.name);
  await entry.done;
}

// ---- the run ------------------------------------------------------------------

function countFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

function workerThreads(): number {
  return workerThreadStates().length;
}

/** Each Worker thread of this process as "name tid state wchan" (wchan: the kernel function it sleeps in). */
function workerThreadStates(): string[] {
  const states: string[] = [];
  for (const t of Deno.readDirSync("/proc/self/task")) {
    try {
      const task = `/proc/self/task/${t.name}`;
      const comm = Deno.readTextFileSync(`${task}/comm`).trim();
      if (!comm.startsWith("worker-")) continue;
      const state = Deno.readTextFileSync(`${task}/stat`).replace(/^.*\) /, "").split(" ")[0];
      let wchan = "?";
      try {
        wchan = Deno.readTextFileSync(`${task}/wchan`).trim() || "-";
      } catch {
        // not readable here
      }
      states.push(`${comm} ${t.name} ${state} ${wchan}`);
    } catch {
      // ended meanwhile
    }
  }
  return states;
}

function liveChildPids(): number[] {
  const pids: number[] = [];
  for (const t of Deno.readDirSync("/proc/self/task")) {
    try {
      const text = Deno.readTextFileSync(`/proc/self/task/${t.name}/children`).trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

/** VmRSS in KiB and descriptor count of a process. */
function sample(pid: number | "self"): { rss: number; fds: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  const fds = [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  return { rss, fds };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

console.log(
  `${soak ? "soak" : "chaos"}: ${seconds} s, seed ${seed}, ${nChildren} processes, ` +
    `${nWorkers} Workers, folder ${dir}`,
);
for (let i = 0; i < nWorkers; i++) await spawnWorker();
fdsAtStart = countFds();
if (soak) {
  spawnChild(true);
  spawnChild(true);
}
for (let i = soak ? 2 : 0; i < nChildren; i++) spawnChild();

const samples: {
  t: number;
  self: { rss: number; fds: number };
  steady: { rss: number; fds: number }[];
}[] = [];
const start = performance.now();
const end = start + seconds * 1000;
let nextKill = start + random() * killEvery * 2;
let nextTerminate = start + random() * terminateEvery * 2;
let nextSample = start;
let nextProgress = start + 5000;
const progress = { tl: -1, trw: -1, ipl: -1, prw: -1 };
let biasTicks = 0, biasOn = 0, biasRevoked = 0, biasWasOn = false; // ReaderWriterLock read bias
let tsemProgress = -1; // thread Semaphore kind (tsem)
const counterReaders = {
  ipl: new CounterFile(join(dir, "ipl.counter")),
  prw: new CounterFile(join(dir, "prw.counter")),
};

while (performance.now() < end) {
  await sleep(10);
  const t = performance.now();
  recoverDead();
  // --- ReaderWriterLock read bias (issue 12) ---
  // A run of reads turns the read bias on (REBIAS_AFTER through STATE by one
  // attachment); the Workers' mix has too many writes to get there alone, so
  // the supervisor makes such a run on every tick (non-blocking tries, its
  // count kept across ticks), and the Workers' reads go through their slots
  // until the next writer revokes the bias.
  {
    biasTicks++;
    const rwState = new Int32Array(rw.buffer);
    // Was it on at the last look and off now: a writer revoked it in between.
    if (biasWasOn && (Atomics.load(rwState, RW_STATE) & BIASED) === 0) biasRevoked++;
    for (let i = 0, got = 0; got <= REBIAS_AFTER && i < 20 * REBIAS_AFTER; i++) {
      if (!rw.acquireReadLockSync({ blocking: false })) continue;
      rw.releaseReadLock();
      got++;
    }
    biasWasOn = (Atomics.load(rwState, RW_STATE) & BIASED) !== 0;
    if (biasWasOn) biasOn++;
  }
  // --- end read bias ---
  if (t >= nextKill && args.faults !== "off") {
    nextKill = t + random() * killEvery * 2;
    const candidates = [...children.values()].filter((c) => !c.steady);
    const holders = candidates.filter((c) => c.holding > 0);
    const pool = holders.length > 0 && random() < 0.6 ? holders : candidates;
    if (pool.length > 0) {
      await killChild(pool[Math.floor(random() * pool.length)]);
      spawnChild();
    }
  }
  if (t >= nextTerminate && args.faults !== "off") {
    nextTerminate = t + random() * terminateEvery * 2;
    // Not one that may be blocked in Atomics.wait with no timeout: terminate()
    // cannot end such a thread (it runs on when woken; see the report).
    const live = [...workers.values()].filter((w) =>
      Atomics.load(words, SHARED.SLOTS + w.index * SHARED.SLOT_WORDS + SHARED.SYNC_WAIT) === 0
    );
    if (live.length > 0 && nextIndex < MAX_WORKER_SPAWNS) {
      terminateWorker(live[Math.floor(random() * live.length)]);
      await spawnWorker();
    }
  }
  if (t >= nextSample) {
    nextSample = t + (soak ? 5000 : 1000);
    const steady = [...children.values()].filter((c) => c.steady).map((c) => sample(c.process.pid));
    samples.push({ t: (t - start) / 1000, self: sample("self"), steady });
  }
  if (t >= nextProgress) {
    // Stall watch: every lock must have been written in the last 5 s.
    nextProgress = t + 5000;
    const seen = {
      tl: words[SHARED.TL_COUNTER],
      trw: words[SHARED.TRW_COUNTER],
      ipl: counterReaders.ipl.read(),
      prw: counterReaders.prw.read(),
    };
    for (const k of ["tl", "trw", "ipl", "prw"] as const) {
      if (seen[k] === progress[k]) {
        violations.push(`stall: no write on ${k} for 5 s (counter ${seen[k]})`);
      }
      progress[k] = seen[k];
    }
    // --- thread Semaphore kind (tsem) ---
    const entries = Atomics.load(words, SHARED.TSEM_ENTRIES);
    if (entries === tsemProgress) violations.push(`stall: no entry into tsem for 5 s (${entries})`);
    tsemProgress = entries;
    // --- end tsem ---
  }
}

// ---- stop everything ------------------------------------------------------------

console.log("stopping");
const stopping = [...children.values()].map(async (c) => {
  await c.process.stdin.close().catch(() => {});
  const timer = setTimeout(() => {
    violations.push(`child ${c.name} did not stop within 10 s of its stdin closing`);
    c.killed = true;
    c.process.kill("SIGKILL");
  }, 10_000);
  await c.done;
  clearTimeout(timer);
});
await Promise.all(stopping);
children.clear();
counterReaders.ipl.close();
counterReaders.prw.close();
for (const entry of [...workers.values()]) terminateWorker(entry);
// Wake Workers that were terminated while blocked in Atomics.wait, so their
// threads can end (they run on until they next reach JavaScript).
const zombieThreads = workerThreads();
for (let round = 0; round < 40; round++) {
  for (const buffer of [lock.buffer, rw.buffer, tsem.buffer]) {
    const v = new Int32Array(buffer);
    for (let i = 0; i < v.length; i++) Atomics.notify(v, i);
  }
  await sleep(50);
  recoverDead();
  if (workerThreads() === threadsAtStart && round > 4) break;
}
recoverDead();
const threadsLeft = workerThreads() - threadsAtStart;
if (threadsLeft > 0) {
  // Say where each leftover thread is, for whoever chases it (state R: running JavaScript; S with
  // wchan futex_*: blocked in Atomics.wait or a lock).
  violations.push(
    `${threadsLeft} Worker threads left behind (all Worker threads now: ${
      workerThreadStates().join("; ")
    })`,
  );
}

// Every lock can still be taken.
{
  const ipl = new InterProcessLock(join(dir, "ipl.lock"));
  const prw = new InterProcessReaderWriterLock(join(dir, "prw.lock"));
  const tries: [string, () => boolean, () => void][] = [
    ["InterProcessLock", () => ipl.acquireSync({ blocking: false }), () => ipl.release()],
    [
      "InterProcessReaderWriterLock (write)",
      () => prw.acquireWriteLockSync({ blocking: false }),
      () => prw.releaseWriteLock(),
    ],
    ["Lock", () => lock.acquireSync({ blocking: false }), () => lock.release()],
    [
      "ReaderWriterLock (write)",
      () => rw.acquireWriteLockSync({ blocking: false }),
      () => rw.releaseWriteLock(),
    ],
  ];
  for (const [name, take, give] of tries) {
    if (take()) give();
    else violations.push(`${name} cannot be taken at the end`);
  }
  // --- thread Semaphore kind (tsem): every slot can be taken at the end ---
  let taken = 0;
  while (tsem.acquireSync({ blocking: false })) taken++;
  for (let i = 0; i < taken; i++) tsem.release();
  if (taken !== SHARED.TSEM_SLOTS) {
    violations.push(`Semaphore: ${taken} of ${SHARED.TSEM_SLOTS} slots can be taken at the end`);
  }
  // --- end tsem ---
  // --- process semaphore: every slot can be taken at the end ---
  {
    const psem = new InterProcessSemaphore(join(dir, "psem.sem"), PSEM_SLOTS);
    let taken = 0;
    while (taken < PSEM_SLOTS && psem.acquireSync({ blocking: false })) taken++;
    if (taken < PSEM_SLOTS) {
      violations.push(
        `InterProcessSemaphore: only ${taken} of ${PSEM_SLOTS} slots free at the end`,
      );
    }
    for (; taken > 0; taken--) psem.release();
  }
  // --- end process semaphore ---
  if (rw.hasPendingWriters) {
    // Diagnose: the state word and the owners of the tickets still in flight
    // (word indices as documented at the top of locks/thread/_raw_rwlock.ts).
    const v = new Int32Array(rw.buffer);
    const [STATE, SERVING, NEXT, RING, OWNERS] = [4, 5, 6, 11, 11 + 1024];
    const tickets: string[] = [];
    for (let t = v[SERVING]; t !== v[NEXT]; t = (t + 1) | 0) {
      const slot = t & 1023;
      const owner = v[OWNERS + slot];
      const who = [...workers.values(), ...dead].find((w) => w.rwId === owner);
      const whose = who ? `Worker ${who.name}${who.terminatedAt ? " (terminated)" : ""}` : "?";
      const ring = v[RING + slot] === t ? "cancelled" : "live";
      tickets.push(`ticket ${t} of id ${owner}, ${whose}, ${ring}`);
    }
    violations.push(
      `ReaderWriterLock still has pending writers at the end: state 0x${v[STATE].toString(16)}, ` +
        `serving ${v[SERVING]}, next ${v[NEXT]}: ${tickets.join("; ")}`,
    );
  }
}

// ---- verify the journals --------------------------------------------------------

interface Interval {
  lock: string;
  write: boolean;
  holder: string;
  start: number;
  end: number;
  value: number;
  out?: number;
  how: "exit" | "recovered" | "killed";
}
const counts = { acquisitions: 0, T: 0, A: 0, B: 0, R: 0 };
const intervals: Interval[] = [];
const lines: string[] = [...kills, ...recoveries];
for (const entry of Deno.readDirSync(dir)) {
  if (!entry.name.startsWith("j-")) continue;
  // One line at a time: a soak's journals are too long to spread into push().
  for (const line of Deno.readTextFileSync(join(dir, entry.name)).split("\n")) lines.push(line);
}
const killTimes = new Map<string, number[]>();
const forced = new Map<string, number[]>();
const open = new Map<string, Interval>();
const records = lines.map((l) => l.split(" ")).filter((f) => f.length >= 3);
// The time is field 2 of kill records, field 3 of forced-recovery records, field 4 of the rest.
const timeOf = (f: string[]) => Number(f[f[0] === "K" ? 2 : f[0] === "F" ? 3 : 4]);
records.sort((a, b) => timeOf(a) - timeOf(b));
for (const f of records) {
  if (f[0] === "K") {
    const list = killTimes.get(f[1]) ?? [];
    list.push(Number(f[2]));
    killTimes.set(f[1], list);
  } else if (f[0] === "F") {
    const key = `${f[1]} ${f[2]}`;
    const list = forced.get(key) ?? [];
    list.push(Number(f[3]));
    forced.set(key, list);
  }
}
for (const f of records) {
  const [type, lockName, mode, holder, time, value] = f;
  if (type === "E") {
    counts.acquisitions++;
    const iv: Interval = {
      lock: lockName,
      write: mode === "w",
      holder,
      start: Number(time),
      end: Infinity,
      value: Number(value),
      how: "exit",
    };
    const key = `${lockName} ${holder}`;
    if (open.has(key) && lockName !== "prw" && lockName !== "trw") {
      violations.push(`${holder} entered ${lockName} twice without an exit`);
    }
    open.set(key + " " + time, iv);
    intervals.push(iv);
  } else if (type === "X") {
    // The matching enter: the latest open one of this holder on this lock.
    let match: [string, Interval] | undefined;
    for (const [k, iv] of open) {
      if (iv.lock === lockName && iv.holder === holder && (!match || iv.start > match[1].start)) {
        match = [k, iv];
      }
    }
    if (!match) {
      violations.push(`exit without enter: ${f.join(" ")}`);
      continue;
    }
    open.delete(match[0]);
    match[1].end = Number(time);
    match[1].out = Number(value);
  } else if (type in counts) {
    counts[type as "T" | "A" | "B" | "R"]++;
  }
}
// Holders that never wrote their exit: killed or terminated inside.
for (const iv of open.values()) {
  const prefix = iv.holder.slice(0, iv.holder.indexOf(".") + 1);
  const f = (forced.get(`${iv.lock} ${prefix}`) ?? []).find((t) => t >= iv.start);
  const k = (killTimes.get(prefix) ?? []).find((t) => t >= iv.start - 50);
  if (f !== undefined) {
    iv.end = f;
    iv.how = "recovered";
  } else if (k !== undefined) {
    // A process dies after the supervisor reads the clock and sends SIGKILL.
    iv.end = Math.max(iv.start, k);
    iv.how = "killed";
  } else {
    violations.push(`${iv.holder} entered ${iv.lock} and never left, and was not killed`);
  }
}

// Sweep each lock's intervals in time order: ends before starts at equal times.
const overlaps: string[] = [];
for (const name of ["ipl", "prw", "tl", "trw"]) {
  const ivs = intervals.filter((i) => i.lock === name);
  const events: [number, 0 | 1, Interval][] = [];
  for (const iv of ivs) events.push([iv.start, 1, iv], [iv.end, 0, iv]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const active = new Set<Interval>();
  // A zero-length interval (killed right after entering) has its end sorted
  // before its start: remember it, so that the start is checked but not kept.
  const ended = new Set<Interval>();
  for (const [, isStart, iv] of events) {
    if (!isStart) {
      if (!active.delete(iv)) ended.add(iv);
      continue;
    }
    for (const other of active) {
      if (iv.write || other.write) {
        overlaps.push(
          `${name}: ${
            other.write ? "writer" : "reader"
          } ${other.holder} [${other.start}, ${other.end}] (${other.how}) ` +
            `overlaps ${
              iv.write ? "writer" : "reader"
            } ${iv.holder} [${iv.start}, ${iv.end}] (${iv.how})`,
        );
      }
    }
    if (!ended.has(iv)) active.add(iv);
  }
}
// --- thread Semaphore kind (tsem): never more than TSEM_SLOTS holders at once ---
let tsemMost = 0;
{
  const events: [number, 0 | 1, Interval][] = [];
  for (const iv of intervals) {
    if (iv.lock === "tsem") events.push([iv.start, 1, iv], [iv.end, 0, iv]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const active = new Set<Interval>(), ended = new Set<Interval>();
  for (const [, isStart, iv] of events) {
    if (!isStart) {
      if (!active.delete(iv)) ended.add(iv);
      continue;
    }
    if (active.size + 1 > SHARED.TSEM_SLOTS) {
      overlaps.push(
        `tsem: ${
          active.size + 1
        } holders at once, a ${SHARED.TSEM_SLOTS}-slot Semaphore: ${iv.holder} ` +
          `[${iv.start}, ${iv.end}] (${iv.how}) with ${
            [...active].map((o) => `${o.holder} [${o.start}, ${o.end}] (${o.how})`).join(", ")
          }`,
      );
    }
    if (!ended.has(iv)) active.add(iv);
    tsemMost = Math.max(tsemMost, active.size);
  }
}
// --- end tsem ---
violations.push(...overlaps.slice(0, 20));
if (overlaps.length > 20) violations.push(`... and ${overlaps.length - 20} more overlaps`);

// --- process semaphore: count the live holders, never above PSEM_SLOTS ---
let psemMost = 0;
{
  const events: [number, 0 | 1, Interval][] = [];
  for (const iv of intervals.filter((i) => i.lock === "psem")) {
    events.push([iv.start, 1, iv], [iv.end, 0, iv]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const active = new Set<Interval>();
  const ended = new Set<Interval>();
  let reported = 0;
  for (const [, isStart, iv] of events) {
    if (!isStart) {
      if (!active.delete(iv)) ended.add(iv);
      continue;
    }
    if (!ended.has(iv)) active.add(iv);
    const live = active.size + (ended.has(iv) ? 1 : 0);
    psemMost = Math.max(psemMost, live);
    if (live > PSEM_SLOTS && reported++ < 20) {
      violations.push(
        `psem: ${live} live holders with ${PSEM_SLOTS} slots at ${iv.start}: ` +
          [...active].map((a) => `${a.holder} [${a.start}, ${a.end}] (${a.how})`).join(", "),
      );
    }
  }
}
// --- end process semaphore ---

// No increment lost: each completed writer wrote a distinct value, and the
// final counter is the number of completed writers, plus at most one per
// writer killed inside its section.
const finalCounter: Record<string, number> = {
  ipl: new CounterFile(join(dir, "ipl.counter")).read(),
  prw: new CounterFile(join(dir, "prw.counter")).read(),
  tl: words[SHARED.TL_COUNTER],
  trw: words[SHARED.TRW_COUNTER],
};
const counterReport: string[] = [];
for (const name of ["ipl", "prw", "tl", "trw"]) {
  const writers = intervals.filter((i) => i.lock === name && i.write);
  const completed = writers.filter((i) => i.how === "exit");
  const cut = writers.length - completed.length;
  const values = new Set(completed.map((i) => i.out));
  if (values.size !== completed.length) {
    violations.push(
      `${name}: ${completed.length - values.size} writers wrote a value already written`,
    );
  }
  const c = finalCounter[name];
  if (c < completed.length || c > completed.length + cut) {
    violations.push(
      `${name}: counter ${c}, but ${completed.length} writers completed and ${cut} were cut short`,
    );
  }
  counterReport.push(
    `${name} ${c} (${completed.length} completed + ${c - completed.length} of ${cut} cut)`,
  );
}
const liveViolations = Atomics.load(words, SHARED.VIOLATIONS);
if (liveViolations > 0) violations.push(`${liveViolations} violations seen live by the Workers`);

// No child processes or descriptors left behind.
const leftover = liveChildPids();
if (leftover.length > 0) violations.push(`child processes left behind: ${leftover.join(" ")}`);
const fdsAtEnd = countFds();
if (fdsAtEnd > fdsAtStart) {
  const kinds = new Map<string, number>();
  for (const fd of Deno.readDirSync("/proc/self/fd")) {
    let target = "?";
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${fd.name}`).replace(/\[\d+\]$/, "[…]");
    } catch { /* closed meanwhile */ }
    kinds.set(target, (kinds.get(target) ?? 0) + 1);
  }
  violations.push(
    `descriptors: ${fdsAtStart} at start, ${fdsAtEnd} at end: ${JSON.stringify([...kinds])}`,
  );
}

// ---- soak figures ---------------------------------------------------------------

const soakReport: string[] = [];
if (soak && samples.length > 2) {
  // Tolerance: after a warm-up of a tenth of the run, RSS may grow by at most
  // 25 % + 20 MiB and descriptors by at most 4.
  const warm = samples.find((s) => s.t >= seconds / 10) ?? samples[1];
  const last = samples[samples.length - 1];
  const series: [string, (s: typeof last) => { rss: number; fds: number } | undefined][] = [
    ["supervisor", (s) => s.self],
    ["steady child 1", (s) => s.steady[0]],
    ["steady child 2", (s) => s.steady[1]],
  ];
  for (const [label, pick] of series) {
    const all = samples.map(pick).filter((x) => x !== undefined);
    const a = pick(warm), b = pick(last);
    if (!a || !b) continue;
    const maxRss = Math.max(...all.map((x) => x.rss));
    const maxFds = Math.max(...all.map((x) => x.fds));
    soakReport.push(
      `${label}: RSS start ${(all[0].rss / 1024).toFixed(1)} MiB, after warm-up ${
        (a.rss / 1024).toFixed(1)
      }, end ${(b.rss / 1024).toFixed(1)}, max ${(maxRss / 1024).toFixed(1)}; ` +
        `fds start ${all[0].fds}, after warm-up ${a.fds}, end ${b.fds}, max ${maxFds}`,
    );
    if (b.rss > a.rss * 1.25 + 20 * 1024) {
      violations.push(`${label}: RSS grew from ${a.rss} KiB to ${b.rss} KiB`);
    }
    if (b.fds > a.fds + 4) violations.push(`${label}: descriptors grew from ${a.fds} to ${b.fds}`);
  }
}

// ---- report ---------------------------------------------------------------------

const elapsed = ((performance.now() - start) / 1000).toFixed(1);
console.log(`${soak ? "soak" : "chaos"} totals after ${elapsed} s (seed ${seed}):`);
console.log(`  acquisitions (critical sections)  ${counts.acquisitions}`);
for (const name of ["ipl", "prw", "tl", "trw"]) {
  const n = intervals.filter((i) => i.lock === name);
  console.log(
    `    ${name.padEnd(4)} ${String(n.length).padStart(8)}  (${
      n.filter((i) => i.write).length
    } write, ${n.filter((i) => !i.write).length} read)`,
  );
}
// --- thread Semaphore kind (tsem) ---
console.log(
  `    tsem ${String(intervals.filter((i) => i.lock === "tsem").length).padStart(8)}  ` +
    `(most holders at once ${tsemMost} of ${SHARED.TSEM_SLOTS} slots; ` +
    `${recoveries.filter((r) => r.startsWith("F tsem ")).length} slots force-released)`,
);
// --- end tsem ---
// --- process semaphore ---
{
  const n = intervals.filter((i) => i.lock === "psem").length;
  console.log(
    `    psem ${
      String(n).padStart(8)
    }  (at most ${psemMost} live holders seen, ${PSEM_SLOTS} slots)`,
  );
}
// --- end process semaphore ---
console.log(
  `  SIGKILLs                          ${totals.kills} (${totals.killedHolders} of holders)`,
);
console.log(`  Worker terminations               ${totals.terminations}`);
console.log(`  forced recoveries                 ${totals.recoveries}`);
console.log(
  `  ReaderWriterLock read bias        on after ${biasOn} of ${biasTicks} ` +
    `runs of reads, revoked by a writer before the next ${biasRevoked} times`,
);
console.log(`  timeouts                          ${counts.T}`);
console.log(`  aborts                            ${counts.A}`);
console.log(`  busy non-blocking tries           ${counts.B}`);
console.log(`  refused self-deadlocks            ${counts.R}`);
console.log(`  counters                          ${counterReport.join("; ")}`);
console.log(
  `  Worker threads blocked at stop    ${zombieThreads - threadsAtStart} (all woken and ended: ${
    threadsLeft <= 0
  })`,
);
console.log(`  descriptors (supervisor)          ${fdsAtStart} at start, ${fdsAtEnd} at end`);
for (const line of soakReport) console.log(`  ${line}`);
console.log(`  violations                        ${violations.length}`);
for (const v of violations) console.log(`    ${v}`);
if (args.keep) console.log(`journals kept in ${dir}`);
else Deno.removeSync(dir, { recursive: true });
// Exit explicitly: a Worker terminated inside Atomics.wait may never end.
Deno.exit(violations.length === 0 ? 0 : 1);
