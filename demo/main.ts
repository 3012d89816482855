/**
 * `deno task demo`: the library's main job, on the screen, with nothing but
 * Deno. Several processes and several Workers increment one counter file:
 *
 * 1. without a lock: updates are lost, and the demo counts them;
 * 2. with an `InterProcessLock` around each increment: none lost;
 * 3. readers and writers under an `InterProcessReaderWriterLock`:
 *    readers overlap (the most at once is measured), each writer is alone;
 * 4. Workers sharing one thread `Lock`, sent through `postMessage`.
 *
 * Every step prints its figures; a progress line shows while work runs (a
 * line redrawn in place on a terminal, plain lines otherwise). The files live
 * in a temp folder that is removed at the end, also on Ctrl-C. Exits 0 when
 * every locked step kept its promise, 1 otherwise.
 *
 * Needs `--allow-ffi --allow-read --allow-write --allow-run`.
 *
 * @module
 */

import { join } from "node:path";
import { Lock } from "../mod.ts";
import {
  makeCounter,
  makeOccupancy,
  type Occupancy,
  type Outcome,
  readCounter,
  readOccupancy,
  type Task,
} from "./_work.ts";

/** Child processes and Workers in the counting steps. */
const PROCESSES = 3;
const WORKERS = 3;
/** Increments per participant in the counting steps. */
const INCREMENTS = 20_000;
/** Step 3: who reads and who writes, and for how long each holds the lock. */
const READERS = { processes: 2, workers: 2, rounds: 60 };
const WRITERS = { processes: 1, workers: 1, rounds: 20 };
const HOLD_MS = 8;
const PAUSE_MS = 4;
/** Step 4: Workers sharing one thread Lock. */
const THREAD_WORKERS = 4;

const PROCESS_SCRIPT = new URL("./_process.ts", import.meta.url);
const WORKER_SCRIPT = new URL("./_worker.ts", import.meta.url);
const CHILD_PERMISSIONS = ["--allow-ffi", "--allow-read", "--allow-write"];

const encoder = new TextEncoder();
const tty = Deno.stdout.isTerminal();

function print(line = ""): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** One process or Worker running a task: ready, then go, then done. */
interface Participant {
  readonly ready: Promise<void>;
  go(): void;
  readonly done: Promise<Outcome>;
  stop(): void;
}

/** Everything still running, for cleanup on error or Ctrl-C. */
const running = new Set<Participant>();

function startProcess(task: Task): Participant {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...CHILD_PERMISSIONS, PROCESS_SCRIPT.href, JSON.stringify(task)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const end = buffered.indexOf("\n");
      if (end >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        return line;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error(`demo child process ended early (${(await child.status).code})`);
      buffered += value;
    }
  };
  const ready = nextLine().then((line) => {
    if (line !== "ready") throw new Error(`demo child process said ${JSON.stringify(line)}`);
  });
  const stdin = child.stdin.getWriter();
  const done = ready.then(nextLine).then(async (line) => {
    await stdin.close();
    await lines.cancel();
    await child.status;
    return JSON.parse(line) as Outcome;
  });
  const participant: Participant = {
    ready,
    go: () => void stdin.write(encoder.encode("go\n")),
    done,
    stop: () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already ended.
      }
    },
  };
  return participant;
}

function startWorker(task: Task): Participant {
  const worker = new Worker(WORKER_SCRIPT, { type: "module" });
  let onReady: () => void;
  let onDone: (outcome: Outcome) => void;
  let onError: (error: Error) => void;
  const ready = new Promise<void>((resolve) => onReady = resolve);
  const done = new Promise<Outcome>((resolve, reject) => {
    onDone = resolve;
    onError = reject;
  });
  worker.onmessage = (event: MessageEvent<"ready" | Outcome>) => {
    if (event.data === "ready") onReady();
    else {
      onDone(event.data);
      worker.terminate();
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    onError(new Error(`demo Worker failed: ${event.message}`));
    onReady();
    worker.terminate();
  };
  worker.postMessage(task);
  return { ready, go: () => worker.postMessage("go"), done, stop: () => worker.terminate() };
}

/**
 * A status line while work runs: redrawn in place on a terminal, a plain line
 * each second otherwise.
 */
function showProgress(describe: () => string): () => void {
  const start = performance.now();
  const line = () => `   … ${describe()}  ${seconds(performance.now() - start)}`;
  const timer = setInterval(() => {
    let text: string;
    try {
      text = line();
    } catch {
      return; // A file caught mid-write: skip this tick.
    }
    if (tty) Deno.stdout.writeSync(encoder.encode(`\r\x1b[2K${text}`));
    else print(text);
  }, tty ? 100 : 500);
  return () => {
    clearInterval(timer);
    if (tty) Deno.stdout.writeSync(encoder.encode("\r\x1b[2K"));
  };
}

/**
 * Starts every participant, waits until all are ready, lets them go at once
 * and waits for them all.
 *
 * @returns Their outcomes and the time from "go" to the last one done.
 */
async function runAll(
  participants: Participant[],
  describe: () => string,
): Promise<{ outcomes: Outcome[]; ms: number }> {
  for (const p of participants) running.add(p);
  try {
    await Promise.all(participants.map((p) => p.ready));
    const stopProgress = showProgress(describe);
    try {
      const start = performance.now();
      for (const p of participants) p.go();
      const outcomes = await Promise.all(participants.map((p) => p.done));
      return { outcomes, ms: performance.now() - start };
    } finally {
      stopProgress();
    }
  } finally {
    for (const p of participants) {
      p.stop();
      running.delete(p);
    }
  }
}

/** `count` participants of each kind for `task`. */
function spawn(task: Task, processes: number, workers: number): Participant[] {
  return [
    ...Array.from({ length: processes }, () => startProcess(task)),
    ...Array.from({ length: workers }, () => startWorker(task)),
  ];
}

function counterProgress(counter: string, expected: number): () => string {
  return () => `counter ${readCounter(counter)} / ${expected}`;
}

/** The figures of a counting step; returns how many updates were lost. */
function reportCount(counter: string, expected: number, ms: number): number {
  const final = readCounter(counter);
  const lost = expected - final;
  const share = ((lost / expected) * 100).toFixed(1);
  const perIncrement = ((ms * 1000) / expected).toFixed(1);
  print(`   expected ${expected}, counter ${final}, lost: ${lost} (${share} %)`);
  print(`   time: ${seconds(ms)} (${perIncrement} µs per increment)`);
  return lost;
}

async function main(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "fasteners_demo_" });
  const cleanup = () => {
    for (const p of running) p.stop();
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already gone.
    }
  };
  const onInterrupt = () => {
    cleanup();
    print("\ninterrupted: children stopped, files removed");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const failures: string[] = [];
  const total = performance.now();
  try {
    const counter = join(dir, "counter");
    const total = PROCESSES + WORKERS;
    const expected = total * INCREMENTS;
    print(`fasteners demo: ${PROCESSES} processes and ${WORKERS} Workers share one counter file`);
    print(`   files in ${dir} (removed at the end)`);
    print();

    // 1. No lock.
    makeCounter(counter);
    print(`1. No lock: ${total} participants × ${INCREMENTS} read-modify-write increments`);
    const unlocked = await runAll(
      spawn({ kind: "unlocked", counter, n: INCREMENTS }, PROCESSES, WORKERS),
      counterProgress(counter, expected),
    );
    const lostUnlocked = reportCount(counter, expected, unlocked.ms);
    if (lostUnlocked === 0) print("   (no update lost this time: the race is real but was lucky)");
    print();

    // 2. InterProcessLock around each increment.
    makeCounter(counter);
    print(`2. InterProcessLock around each increment: same ${total} participants`);
    const locked = await runAll(
      spawn(
        { kind: "locked", counter, lock: join(dir, "counter.lock"), n: INCREMENTS },
        PROCESSES,
        WORKERS,
      ),
      counterProgress(counter, expected),
    );
    if (reportCount(counter, expected, locked.ms) !== 0) {
      failures.push("InterProcessLock lost updates");
    }
    print();

    // 3. Readers overlap, a writer is alone.
    makeCounter(counter);
    const occupancy = join(dir, "occupancy");
    makeOccupancy(occupancy);
    const readers = READERS.processes + READERS.workers;
    const writers = WRITERS.processes + WRITERS.workers;
    print(
      `3. InterProcessReaderWriterLock: ${readers} readers × ${READERS.rounds} reads, ` +
        `${writers} writers × ${WRITERS.rounds} writes, each holding ${HOLD_MS} ms`,
    );
    const rwTask = (kind: "reader" | "writer", rounds: number): Task => ({
      kind,
      counter,
      rwlock: join(dir, "rw.lock"),
      occupancy,
      occupancyLock: join(dir, "occupancy.lock"),
      rounds,
      holdMs: HOLD_MS,
      pauseMs: PAUSE_MS,
    });
    const rw = await runAll(
      [
        ...spawn(rwTask("reader", READERS.rounds), READERS.processes, READERS.workers),
        ...spawn(rwTask("writer", WRITERS.rounds), WRITERS.processes, WRITERS.workers),
      ],
      () => {
        const o = readOccupancy(occupancy);
        return `reads ${o.readTurns}, writes ${o.writeTurns}, readers inside now ${o.readers}`;
      },
    );
    const o: Occupancy = readOccupancy(occupancy);
    const changed = rw.outcomes.reduce((sum, x) => sum + (x.changedUnderReader ?? 0), 0);
    print(`   max concurrent readers: ${o.maxReaders} (of ${readers})`);
    print(
      `   writes: ${o.writeTurns}, writer alone: ${o.writesNotAlone === 0 ? "yes" : "NO"} ` +
        `(writes with anyone else inside: ${o.writesNotAlone}, reads with a writer inside: ` +
        `${o.readsWithWriter})`,
    );
    print(`   reads: ${o.readTurns}, reads that saw the counter change under them: ${changed}`);
    const writerWait = Math.max(...rw.outcomes.slice(readers).map((x) => x.maxWaitMs ?? 0));
    const readerWait = Math.max(...rw.outcomes.slice(0, readers).map((x) => x.maxWaitMs ?? 0));
    print(`   counter ${readCounter(counter)} (expected ${writers * WRITERS.rounds} writes)`);
    print(
      `   longest wait for the lock: writer ${seconds(writerWait)}, reader ${seconds(readerWait)}`,
    );
    print(`   time: ${seconds(rw.ms)}`);
    if (o.maxReaders < 2) failures.push("readers never overlapped");
    if (o.writesNotAlone + o.readsWithWriter + changed > 0) failures.push("a writer was not alone");
    if (readCounter(counter) !== writers * WRITERS.rounds) failures.push("a write was lost");
    print();

    // 4. Workers sharing a thread Lock through postMessage.
    makeCounter(counter);
    const lock = new Lock();
    const inside = new SharedArrayBuffer(8);
    const threadExpected = THREAD_WORKERS * INCREMENTS;
    print(
      `4. Thread Lock: ${THREAD_WORKERS} Workers × ${INCREMENTS} increments, ` +
        `one Lock sent to each with postMessage (lock.buffer)`,
    );
    const threads = await runAll(
      spawn(
        { kind: "thread", counter, lock: lock.buffer, inside, n: INCREMENTS },
        0,
        THREAD_WORKERS,
      ),
      counterProgress(counter, threadExpected),
    );
    if (reportCount(counter, threadExpected, threads.ms) !== 0) failures.push("Lock lost updates");
    const most = Atomics.load(new Int32Array(inside), 1);
    print(`   most Workers inside the Lock at once: ${most}`);
    if (most !== 1) failures.push("two Workers held the Lock at once");
    print();
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    cleanup();
  }
  const removed = await Deno.lstat(dir).then(() => false, () => true);
  print(
    `files removed: ${removed ? "yes" : "NO"}; total time: ${seconds(performance.now() - total)}`,
  );
  if (failures.length > 0) {
    print(`FAILED: ${failures.join("; ")}`);
    return 1;
  }
  print("all locked steps kept their promise");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
