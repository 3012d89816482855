// Shared by the chaos supervisor (chaos/run.ts), its child processes
// (chaos/child.ts) and its Workers (chaos/worker.ts).
//
// Journal: one file per process or Worker, one record per line:
//   E <lock> <mode> <holder> <time> <value>   entered the critical section
//   X <lock> <mode> <holder> <time> <value>   about to leave it (still holding)
//   T|A|B|R <lock> <mode> <holder> <time>     timed out | aborted | busy try | refused
// <lock>: ipl (InterProcessLock), prw (InterProcessReaderWriterLock),
//         tl (Lock), trw (ReaderWriterLock), tsem (Semaphore, mode s, <value>:
//         holders inside counted on entry), psem (InterProcessSemaphore of
//         PSEM_SLOTS slots; mode w, value 0); <mode>: w or r;
// <time>: now() (CLOCK_MONOTONIC on Linux), milliseconds, for the
//   process locks; a shared Atomics tick (SHARED.CLOCK) for the thread locks.
// <value>: the counter read on entry (E) and written (writers) or read again
//   (readers) on exit (X).
// The supervisor adds K <holder-prefix> <time> when it kills or terminates,
// and F <lock> <holder-prefix> <time> when it force-releases a dead Worker's hold.

/**
 * A clock comparable between processes, in milliseconds: CLOCK_MONOTONIC on
 * Linux. `performance.timeOrigin + performance.now()` is not: timeOrigin is
 * the wall clock at each process's start, and while NTP slews the wall clock,
 * processes started at different times disagree by tenths of a millisecond
 * (a 600 s soak reported 143 false overlaps, all of one late-started process).
 */
export function now(): number {
  return (clock ??= makeClock())();
}

let clock: (() => number) | undefined;

function makeClock(): () => number {
  if (Deno.build.os !== "linux") return () => performance.timeOrigin + performance.now();
  const { clock_gettime } = Deno.dlopen("libc.so.6", {
    clock_gettime: {
      parameters: [
        "i32", // clockid_t clockid
        "buffer", // struct timespec *tp: { time_t tv_sec; long tv_nsec; } on LP64
      ],
      result: "i32",
    },
  }).symbols;
  const CLOCK_MONOTONIC = 1; // <linux/time.h>
  const timespec = new BigInt64Array(2);
  const bytes = new Uint8Array(timespec.buffer);
  return () => {
    clock_gettime(CLOCK_MONOTONIC, bytes);
    return Number(timespec[0]) * 1e3 + Number(timespec[1]) / 1e6;
  };
}

/** A small seeded PRNG (mulberry32), so that a run can be replayed with --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Appends lines to a journal file with one write(2) each, so a kill never tears a line. */
export class Journal {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  constructor(path: string) {
    this.#file = Deno.openSync(path, { append: true, create: true });
  }
  write(line: string): void {
    const bytes = this.#encoder.encode(line + "\n");
    let done = 0;
    while (done < bytes.length) done += this.#file.writeSync(bytes.subarray(done));
  }
  close(): void {
    this.#file.close();
  }
}

/** A counter kept in a file as 16 ASCII digits, read and written in place. */
export class CounterFile {
  readonly #file: Deno.FsFile;
  readonly #buffer = new Uint8Array(16);
  constructor(path: string) {
    this.#file = Deno.openSync(path, { read: true, write: true, create: true });
  }
  read(): number {
    this.#file.seekSync(0, Deno.SeekMode.Start);
    const n = this.#file.readSync(this.#buffer);
    if (n === null || n === 0) return 0;
    return Number(new TextDecoder().decode(this.#buffer.subarray(0, n)).trim() || "0");
  }
  write(value: number): void {
    this.#file.seekSync(0, Deno.SeekMode.Start);
    this.#file.writeSync(new TextEncoder().encode(String(value).padStart(16, "0")));
  }
  close(): void {
    this.#file.close();
  }
}

/** Busy-waits `ms` milliseconds (a critical section that holds the thread). */
export function spin(ms: number, each?: () => void): void {
  const end = performance.now() + ms;
  while (performance.now() < end) each?.();
}

/** Layout of the Workers' SharedArrayBuffer of counters (Int32 words). */
export const SHARED = {
  /** Lock's counter, incremented non-atomically under the lock. */
  TL_COUNTER: 0,
  /** ReaderWriterLock's counter, incremented non-atomically under the write lock. */
  TRW_COUNTER: 1,
  /** Exclusion violations seen live by the Workers. */
  VIOLATIONS: 2,
  /**
   * A logical clock (Atomics.add) that stamps the thread-lock journal records:
   * each Worker's performance.timeOrigin is its own, and skews of ~0.1 ms
   * between Workers showed as false overlaps; sequentially consistent ticks
   * order the records exactly.
   */
  CLOCK: 3,
  // --- thread Semaphore kind (tsem) ---
  /** Holders inside the thread Semaphore now (Atomics.add on entry, sub on exit). */
  TSEM_INSIDE: 6,
  /** Entries into the thread Semaphore so far (the stall watch). */
  TSEM_ENTRIES: 7,
  /** Slots of the chaos run's thread Semaphore: never more holders than this. */
  TSEM_SLOTS: 3,
  /** Hold mark of a task inside the thread Semaphore. */
  MARK_TSEM: 4,
  // --- end tsem ---
  /** First slot: slot i of Worker w is SLOTS + w * SLOT_WORDS + i. */
  SLOTS: 8,
  /** Words per Worker: HEARTBEAT, one hold mark per task, SYNC_WAIT. */
  SLOT_WORDS: 4,
  HEARTBEAT: 0,
  /** 1 while task 0 may block in Atomics.wait with no timeout (do not terminate). */
  SYNC_WAIT: 3,
  /** Hold marks (per task): none, read on trw, write on trw, the Lock. */
  MARK_NONE: 0,
  MARK_TRW_READ: 1,
  MARK_TRW_WRITE: 2,
  MARK_TL: 3,
  /** Tasks per Worker (slot words 1..TASKS). */
  TASKS: 2,
} as const;

// --- process semaphore (InterProcessSemaphore; issue 11) ---
/** Slots of the chaos run's InterProcessSemaphore (file psem.sem): at most this many live holders. */
export const PSEM_SLOTS = 3;
// --- end process semaphore ---
