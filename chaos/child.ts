// A chaos child process: two tasks take the process locks (InterProcessLock
// exclusive; InterProcessReaderWriterLock shared and exclusive) with random
// sync/async calls, timeouts, aborts and tries, journaling every critical
// section and incrementing a counter file under each write lock. Prints "H"
// on entering and "F" on leaving a critical section, so that the supervisor
// can aim its SIGKILLs at holders. Ends when its stdin closes.
//
// Usage: deno run --allow-all chaos/child.ts <run folder> <name> <seed> <pause ms>

import { InterProcessLock, InterProcessReaderWriterLock, InterProcessSemaphore } from "../mod.ts";
import { CounterFile, Journal, now, PSEM_SLOTS, rng, spin } from "./_common.ts";
import { join } from "node:path";

const [dir, name, seedText, pauseText] = Deno.args;
const random = rng(Number(seedText));
const pause = Number(pauseText);
const journal = new Journal(join(dir, `j-p${name}.log`));
// One lock object per task for the reader-writer lock: with one object shared
// by two tasks, releaseReadLock() releases the oldest read hold of the object,
// which may be the other task's guard (a bug reported to the lead, not worked around elsewhere).
const ipl = new InterProcessLock(join(dir, "ipl.lock"));
const prws = [
  new InterProcessReaderWriterLock(join(dir, "prw.lock")),
  new InterProcessReaderWriterLock(join(dir, "prw.lock")),
];
const counters = {
  ipl: new CounterFile(join(dir, "ipl.counter")),
  prw: new CounterFile(join(dir, "prw.counter")),
};
const out = new TextEncoder();
let stopping = false;

/**
 * Tasks of this process now acquiring or holding. A sync kernel wait with no
 * timeout is only made when the sibling task is idle: if the sibling held the
 * lock, or were waiting for it in the kernel on a pool thread (which can be
 * granted the lock while this thread is blocked), the thread would wait for
 * itself.
 */
let busyHere = 0;

async function section(task: number, kind: "ipl" | "prw", write: boolean, sync: boolean) {
  Deno.stdout.writeSync(out.encode("H\n"));
  const holder = `p${name}.${task}`;
  const mode = write ? "w" : "r";
  const counter = counters[kind];
  const value = counter.read();
  journal.write(`E ${kind} ${mode} ${holder} ${now()} ${value}`);
  const hold = random() * 2;
  if (sync) spin(hold);
  else await new Promise((r) => setTimeout(r, hold));
  let written = counter.read();
  if (write) counter.write(written = value + 1);
  journal.write(`X ${kind} ${mode} ${holder} ${now()} ${written}`);
  Deno.stdout.writeSync(out.encode("F\n"));
}

async function run(task: number): Promise<void> {
  const holder = `p${name}.${task}`;
  const prw = prws[task];
  while (!stopping) {
    const r = random();
    const kind = r < 0.4 ? "ipl" : "prw";
    const write = kind === "ipl" || random() < 0.5;
    const mode = write ? "w" : "r";
    const styles = task === 0
      ? ["sync", "syncTimeout", "try", "async", "asyncTimeout", "abort", "with", "guard"]
      : ["async", "asyncTimeout", "abort", "with", "guard", "try"];
    let style = styles[Math.floor(random() * styles.length)];
    if (style === "sync" && busyHere > 0) style = "syncTimeout";
    busyHere++;
    const timeout = 1 + random() * 30;
    const controller = new AbortController();
    const timer = style === "abort" ? setTimeout(() => controller.abort(), timeout) : undefined;
    const options = style === "try"
      ? { blocking: false }
      : style === "syncTimeout" || style === "asyncTimeout"
      ? { timeout }
      : style === "abort"
      ? { signal: controller.signal }
      : undefined;
    let outcome = "ok";
    try {
      const sync = style === "sync" || style === "syncTimeout" || style === "try";
      if (style === "with") {
        const fn = () => section(task, kind, write, false);
        if (kind === "ipl") await ipl.withLock(fn);
        else if (write) await prw.withWriteLock(fn);
        else await prw.withReadLock(fn);
      } else if (style === "guard") {
        const o = { timeout: timeout * 5 };
        await using _g = kind === "ipl"
          ? await ipl.lock(o)
          : write
          ? await prw.writeLock(o)
          : await prw.readLock(o);
        await section(task, kind, write, false);
      } else {
        const ok = kind === "ipl"
          ? sync ? ipl.acquireSync(options) : await ipl.acquire(options)
          : write
          ? sync ? prw.acquireWriteLockSync(options) : await prw.acquireWriteLock(options)
          : sync
          ? prw.acquireReadLockSync(options)
          : await prw.acquireReadLock(options);
        if (ok) {
          try {
            await section(task, kind, write, sync);
          } finally {
            if (kind === "ipl") ipl.release();
            else if (write) prw.releaseWriteLock();
            else prw.releaseReadLock();
          }
        } else outcome = style === "try" ? "B" : "T";
      }
    } catch (error) {
      if (controller.signal.aborted && error === controller.signal.reason) outcome = "A";
      else if ((error as Error)?.name === "LockTimeoutError") outcome = "T";
      else if (
        (error as Error)?.name === "LockError" && /deadlock|wait forever/.test(String(error))
      ) {
        outcome = "R";
      } else throw error;
    } finally {
      clearTimeout(timer);
      busyHere--;
    }
    if (outcome !== "ok") journal.write(`${outcome} ${kind} ${mode} ${holder} ${now()}`);
    await new Promise((r) => setTimeout(r, random() * pause));
  }
}

// --- process semaphore (InterProcessSemaphore; issue 11) ---
// Tasks 2 and 3 take slots of psem.sem, each on an object of its own, with
// the same mix of calls; a section journals E/X records with mode w, value 0.
const psems = [2, 3].map(() => new InterProcessSemaphore(join(dir, "psem.sem"), PSEM_SLOTS));

async function runSemaphore(task: number): Promise<void> {
  const holder = `p${name}.${task}`;
  const s = psems[task - 2];
  const section = async (sync: boolean) => {
    Deno.stdout.writeSync(out.encode("H\n"));
    journal.write(`E psem w ${holder} ${now()} 0`);
    const hold = random() * 2;
    if (sync) spin(hold);
    else await new Promise((r) => setTimeout(r, hold));
    journal.write(`X psem w ${holder} ${now()} 0`);
    Deno.stdout.writeSync(out.encode("F\n"));
  };
  const styles = ["sync", "syncTimeout", "try", "async", "asyncTimeout", "abort", "with", "guard"];
  while (!stopping) {
    let style = styles[Math.floor(random() * styles.length)];
    // As for the locks (see busyHere): a sync wait with no timeout only when
    // no other task of this process holds or waits for anything, or two
    // processes can each block their thread waiting for what the other's
    // frozen task holds (a slot here, the lock there).
    if (style === "sync" && busyHere > 0) style = "syncTimeout";
    busyHere++;
    const timeout = 1 + random() * 30;
    const controller = new AbortController();
    const timer = style === "abort" ? setTimeout(() => controller.abort(), timeout) : undefined;
    const options = style === "try"
      ? { blocking: false }
      : style === "syncTimeout" || style === "asyncTimeout"
      ? { timeout }
      : style === "abort"
      ? { signal: controller.signal }
      : undefined;
    let outcome = "ok";
    try {
      const sync = style === "sync" || style === "syncTimeout" || style === "try";
      if (style === "with") await s.withLock(() => section(false));
      else if (style === "guard") {
        await using _g = await s.lock({ timeout: timeout * 5 });
        await section(false);
      } else {
        const ok = sync ? s.acquireSync(options) : await s.acquire(options);
        if (ok) {
          try {
            await section(sync);
          } finally {
            s.release();
          }
        } else outcome = style === "try" ? "B" : "T";
      }
    } catch (error) {
      if (controller.signal.aborted && error === controller.signal.reason) outcome = "A";
      else if ((error as Error)?.name === "LockTimeoutError") outcome = "T";
      else if ((error as Error)?.name === "LockError" && /wait forever/.test(String(error))) {
        outcome = "R";
      } else throw error;
    } finally {
      clearTimeout(timer);
      busyHere--;
    }
    if (outcome !== "ok") journal.write(`${outcome} psem w ${holder} ${now()}`);
    await new Promise((r) => setTimeout(r, random() * pause));
  }
}
// --- end process semaphore ---

// stdin closing (the supervisor's stop) ends the run.
const stdinClosed = (async () => {
  for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
  stopping = true;
})();
await Promise.all([run(0), run(1), runSemaphore(2), runSemaphore(3), stdinClosed]);
journal.close();
counters.ipl.close();
counters.prw.close();
