// What each participant of the demo does, the same code in a child process
// (demo/_process.ts) and in a Worker (demo/_worker.ts).
//
// The counter file holds one decimal number, space-padded to COUNTER_WIDTH
// bytes and always rewritten in place, never truncated: a reader sees the old
// number or the new one, so what goes missing without a lock is whole
// updates (read 41, another participant writes 42, this one writes 42 too),
// not garbled text.

import { InterProcessLock, InterProcessReaderWriterLock, Lock } from "../mod.ts";

/** Bytes of the counter file. */
export const COUNTER_WIDTH = 16;
/** Bytes of the occupancy file: JSON padded with spaces. */
const OCCUPANCY_WIDTH = 256;

/** One participant's job. Paths are absolute. */
export type Task =
  | { kind: "unlocked"; counter: string; n: number }
  | { kind: "locked"; counter: string; lock: string; n: number }
  | {
    kind: "reader" | "writer";
    counter: string;
    rwlock: string;
    occupancy: string;
    occupancyLock: string;
    rounds: number;
    holdMs: number;
    pauseMs: number;
  }
  | {
    kind: "thread";
    counter: string;
    lock: SharedArrayBuffer;
    inside: SharedArrayBuffer;
    n: number;
  };

/** What a participant reports when done. */
export interface Outcome {
  ms: number;
  /** The longest this participant waited for the reader-writer lock, in ms. */
  maxWaitMs?: number;
  /** Reads of a reader that saw the counter change while it held the read lock. */
  changedUnderReader?: number;
}

/**
 * Who is inside the reader-writer lock, kept in the occupancy file and
 * changed only under its own exclusive InterProcessLock.
 */
export interface Occupancy {
  readers: number;
  writers: number;
  maxReaders: number;
  readTurns: number;
  writeTurns: number;
  /** Writes that began with anyone else inside. */
  writesNotAlone: number;
  /** Reads that began with a writer inside. */
  readsWithWriter: number;
}

export const EMPTY_OCCUPANCY: Occupancy = {
  readers: 0,
  writers: 0,
  maxReaders: 0,
  readTurns: 0,
  writeTurns: 0,
  writesNotAlone: 0,
  readsWithWriter: 0,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads the fixed-size record at the start of `file`. */
function readRecord(file: Deno.FsFile, width: number): string {
  const buffer = new Uint8Array(width);
  file.seekSync(0, Deno.SeekMode.Start);
  let got = 0;
  while (got < width) {
    const n = file.readSync(buffer.subarray(got));
    if (n === null) break;
    got += n;
  }
  return decoder.decode(buffer.subarray(0, got));
}

/** Rewrites the fixed-size record at the start of `file`, in place. */
function writeRecord(file: Deno.FsFile, text: string, width: number): void {
  const bytes = encoder.encode(text.padEnd(width, " "));
  file.seekSync(0, Deno.SeekMode.Start);
  let put = 0;
  while (put < bytes.length) put += file.writeSync(bytes.subarray(put));
}

/** Makes a counter file holding 0. */
export function makeCounter(path: string): void {
  Deno.writeTextFileSync(path, "0".padEnd(COUNTER_WIDTH, " "));
}

/** The counter's value (the file is never garbled: see the top of this file). */
export function readCounter(path: string): number {
  using file = Deno.openSync(path, { read: true });
  return Number.parseInt(readRecord(file, COUNTER_WIDTH), 10);
}

/** Makes an empty occupancy file. */
export function makeOccupancy(path: string): void {
  Deno.writeTextFileSync(path, JSON.stringify(EMPTY_OCCUPANCY).padEnd(OCCUPANCY_WIDTH, " "));
}

/** The occupancy record; read it without its lock only for progress figures. */
export function readOccupancy(path: string): Occupancy {
  using file = Deno.openSync(path, { read: true });
  return JSON.parse(readRecord(file, OCCUPANCY_WIDTH));
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for `ms` milliseconds (each participant has a thread of its own). */
function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

/** The read-modify-write that loses updates when two run at once. */
function increment(file: Deno.FsFile): void {
  const value = Number.parseInt(readRecord(file, COUNTER_WIDTH), 10);
  writeRecord(file, String(value + 1), COUNTER_WIDTH);
}

/** Runs one task to its end. */
export function run(task: Task): Outcome {
  const start = performance.now();
  using counter = Deno.openSync(task.counter, { read: true, write: true });
  switch (task.kind) {
    case "unlocked":
      for (let i = 0; i < task.n; i++) increment(counter);
      break;
    case "locked": {
      const lock = new InterProcessLock(task.lock);
      for (let i = 0; i < task.n; i++) {
        lock.acquireSync();
        try {
          increment(counter);
        } finally {
          lock.release();
        }
      }
      break;
    }
    case "reader":
    case "writer":
      return { ...readersAndWriters(task, counter), ms: performance.now() - start };
    case "thread": {
      const lock = Lock.from(task.lock);
      const inside = new Int32Array(task.inside);
      for (let i = 0; i < task.n; i++) {
        lock.acquireSync();
        try {
          // inside[0]: holders now; inside[1]: the most ever seen at once.
          const now = Atomics.add(inside, 0, 1) + 1;
          if (now > Atomics.load(inside, 1)) Atomics.store(inside, 1, now);
          increment(counter);
          Atomics.sub(inside, 0, 1);
        } finally {
          lock.release();
        }
      }
      break;
    }
  }
  return { ms: performance.now() - start };
}

/**
 * Rounds of reading (the counter, twice, with a pause between: it must not
 * change) or writing (one increment), each noted in the occupancy file on
 * entry and exit.
 */
function readersAndWriters(
  task: Extract<Task, { kind: "reader" | "writer" }>,
  counter: Deno.FsFile,
): { changedUnderReader: number; maxWaitMs: number } {
  const rw = new InterProcessReaderWriterLock(task.rwlock);
  const occupancyLock = new InterProcessLock(task.occupancyLock);
  using occupancy = Deno.openSync(task.occupancy, { read: true, write: true });
  const note = (change: (o: Occupancy) => void) => {
    occupancyLock.acquireSync();
    try {
      const o: Occupancy = JSON.parse(readRecord(occupancy, OCCUPANCY_WIDTH));
      change(o);
      writeRecord(occupancy, JSON.stringify(o), OCCUPANCY_WIDTH);
    } finally {
      occupancyLock.release();
    }
  };
  const reader = task.kind === "reader";
  let changed = 0;
  let maxWaitMs = 0;
  for (let round = 0; round < task.rounds; round++) {
    const asked = performance.now();
    if (reader) rw.acquireReadLockSync();
    else rw.acquireWriteLockSync();
    maxWaitMs = Math.max(maxWaitMs, performance.now() - asked);
    try {
      note((o) => {
        if (reader) {
          if (o.writers > 0) o.readsWithWriter++;
          o.readers++;
          o.readTurns++;
          o.maxReaders = Math.max(o.maxReaders, o.readers);
        } else {
          if (o.writers > 0 || o.readers > 0) o.writesNotAlone++;
          o.writers++;
          o.writeTurns++;
        }
      });
      if (reader) {
        const before = readRecord(counter, COUNTER_WIDTH);
        sleepSync(task.holdMs);
        if (readRecord(counter, COUNTER_WIDTH) !== before) changed++;
      } else {
        increment(counter);
        sleepSync(task.holdMs);
      }
      note((o) => reader ? o.readers-- : o.writers--);
    } finally {
      if (reader) rw.releaseReadLock();
      else rw.releaseWriteLock();
    }
    sleepSync(task.pauseMs);
  }
  return { changedUnderReader: changed, maxWaitMs };
}
