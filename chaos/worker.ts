// A chaos Worker: two tasks take the thread locks (`Lock`, `ReaderWriterLock`)
// shared through postMessage, with random sync/async calls, timeouts, aborts
// and tries, journaling every critical section and checking exclusion live
// through hold marks in shared memory. The supervisor terminates it at random.

/// <reference lib="deno.worker" />

import { Lock, ReaderWriterLock, Semaphore } from "../mod.ts";
import { Journal, rng, SHARED, spin } from "./_common.ts";

interface Start {
  lock: SharedArrayBuffer;
  rw: SharedArrayBuffer;
  /** The thread Semaphore's buffer (tsem kind). */
  tsem: SharedArrayBuffer;
  shared: SharedArrayBuffer;
  index: number;
  name: string;
  journal: string;
  seed: number;
  /** Milliseconds of pause between attempts (soak runs slower). */
  pause: number;
}

self.onmessage = (e: MessageEvent<Start>) => {
  const s = e.data;
  const lock = Lock.from(s.lock);
  const rw = ReaderWriterLock.from(s.rw);
  const tsem = Semaphore.from(s.tsem);
  self.postMessage({ ready: true, lockId: lock.id, rwId: rw.id, tsemId: tsem.id });
  const words = new Int32Array(s.shared);
  const base = SHARED.SLOTS + s.index * SHARED.SLOT_WORDS;
  const journal = new Journal(s.journal);
  const random = rng(s.seed);
  let busy = 0;
  const tick = () => Atomics.add(words, SHARED.CLOCK, 1);
  const beat = () => Atomics.add(words, base + SHARED.HEARTBEAT, 1);
  for (let task = 0; task < SHARED.TASKS; task++) {
    run(task).catch((error) => {
      console.error(`chaos worker ${s.name} task ${task}:`, error);
      Atomics.add(words, SHARED.VIOLATIONS, 1);
    });
  }

  /** Sets this task's mark, then checks every other mark for a conflict. */
  function enter(task: number, mark: number): void {
    Atomics.store(words, base + 1 + task, mark);
    const end = SHARED.SLOTS + 1024 * SHARED.SLOT_WORDS;
    for (let i = SHARED.SLOTS; i < end; i++) {
      const off = (i - SHARED.SLOTS) % SHARED.SLOT_WORDS;
      if (off === SHARED.HEARTBEAT || off === SHARED.SYNC_WAIT || i === base + 1 + task) continue;
      const other = Atomics.load(words, i);
      const conflict = mark === SHARED.MARK_TL
        ? other === SHARED.MARK_TL
        : mark === SHARED.MARK_TRW_WRITE
        ? other === SHARED.MARK_TRW_WRITE || other === SHARED.MARK_TRW_READ
        : other === SHARED.MARK_TRW_WRITE;
      if (conflict) {
        Atomics.add(words, SHARED.VIOLATIONS, 1);
        console.error(`chaos worker ${s.name}: mark ${mark} met mark ${other} at word ${i}`);
      }
    }
  }

  async function section(task: number, kind: "tl" | "trw", write: boolean, sync: boolean) {
    const holder = `w${s.name}.${task}`;
    const mode = write ? "w" : "r";
    const index = kind === "tl" ? SHARED.TL_COUNTER : SHARED.TRW_COUNTER;
    enter(
      task,
      kind === "tl" ? SHARED.MARK_TL : write ? SHARED.MARK_TRW_WRITE : SHARED.MARK_TRW_READ,
    );
    const value = words[index];
    journal.write(`E ${kind} ${mode} ${holder} ${tick()} ${value}`);
    const hold = random() * 2;
    if (sync) spin(hold, beat);
    else await new Promise((r) => setTimeout(r, hold));
    beat();
    let out = words[index];
    if (write) words[index] = out = value + 1; // plain read-modify-write: lost if exclusion fails
    else if (out !== value) {
      Atomics.add(words, SHARED.VIOLATIONS, 1);
      console.error(`chaos worker ${s.name}: counter changed under a read lock`);
    }
    journal.write(`X ${kind} ${mode} ${holder} ${tick()} ${out}`);
    Atomics.store(words, base + 1 + task, SHARED.MARK_NONE);
  }

  // --- thread Semaphore kind (tsem) ---
  /**
   * A section under the thread Semaphore: the hold mark and the live count of
   * holders (SHARED.TSEM_INSIDE) are set and checked in one synchronous step,
   * so a terminate() lands before or after both; the supervisor undoes the
   * count of a dead Worker's marked tasks before it force-releases its slots.
   */
  async function tsemSection(task: number, sync: boolean): Promise<void> {
    const holder = `w${s.name}.${task}`;
    Atomics.store(words, base + 1 + task, SHARED.MARK_TSEM);
    const inside = Atomics.add(words, SHARED.TSEM_INSIDE, 1) + 1;
    Atomics.add(words, SHARED.TSEM_ENTRIES, 1);
    if (inside > SHARED.TSEM_SLOTS) {
      Atomics.add(words, SHARED.VIOLATIONS, 1);
      console.error(
        `chaos worker ${s.name}: ${inside} holders inside a ${SHARED.TSEM_SLOTS}-slot Semaphore`,
      );
    }
    journal.write(`E tsem s ${holder} ${tick()} ${inside}`);
    const hold = random() * 3;
    if (sync) spin(hold, beat);
    else await new Promise((r) => setTimeout(r, hold));
    beat();
    journal.write(`X tsem s ${holder} ${tick()} ${inside}`);
    Atomics.sub(words, SHARED.TSEM_INSIDE, 1);
    Atomics.store(words, base + 1 + task, SHARED.MARK_NONE);
  }

  /** One attempt on the thread Semaphore, in a style drawn at random; journals its outcome. */
  async function tsemRound(task: number): Promise<void> {
    const holder = `w${s.name}.${task}`;
    const styles = task === 0
      ? [
        "sync",
        "syncTimeout",
        "try",
        "async",
        "asyncTimeout",
        "abort",
        "with",
        "withSync",
        "guard",
      ]
      : ["async", "asyncTimeout", "abort", "with", "guard", "try"];
    let style = styles[Math.floor(random() * styles.length)];
    if (style === "sync" && busy !== 0) style = "syncTimeout";
    busy++;
    if (style === "sync") Atomics.store(words, base + SHARED.SYNC_WAIT, 1);
    const timeout = 1 + random() * 20;
    let outcome: "ok" | "T" | "A" | "B" = "ok";
    try {
      switch (style) {
        case "sync":
        case "syncTimeout":
        case "try": {
          const o = style === "sync"
            ? undefined
            : style === "try"
            ? { blocking: false }
            : { timeout };
          if (tsem.acquireSync(o)) {
            try {
              await tsemSection(task, true);
            } finally {
              tsem.release();
            }
          } else outcome = style === "try" ? "B" : "T";
          break;
        }
        case "async":
        case "asyncTimeout":
        case "abort": {
          const c = new AbortController();
          const timer = style === "abort" ? setTimeout(() => c.abort(), timeout) : undefined;
          try {
            const o = style === "async"
              ? undefined
              : style === "abort"
              ? { signal: c.signal }
              : { timeout };
            if (await tsem.acquire(o)) {
              try {
                await tsemSection(task, false);
              } finally {
                tsem.release();
              }
            } else outcome = "T";
          } catch (error) {
            if (!c.signal.aborted) throw error;
            outcome = "A";
          } finally {
            clearTimeout(timer);
          }
          break;
        }
        case "with":
          await tsem.withLock(() => tsemSection(task, false), { timeout: timeout * 5 });
          break;
        case "withSync": {
          // withLockSync's callback is synchronous: the section's hold spins.
          let section: Promise<void> | undefined;
          tsem.withLockSync(() => {
            section = tsemSection(task, true);
          }, { timeout });
          await section;
          break;
        }
        case "guard": {
          await using _g = await tsem.lock({ timeout: timeout * 5 });
          await tsemSection(task, false);
          break;
        }
      }
    } catch (error) {
      if ((error as Error)?.name === "LockTimeoutError") outcome = "T";
      else throw error;
    } finally {
      busy--;
      if (style === "sync") Atomics.store(words, base + SHARED.SYNC_WAIT, 0);
    }
    if (outcome !== "ok") journal.write(`${outcome} tsem s ${holder} ${tick()}`);
  }
  // --- end tsem ---

  async function run(task: number): Promise<never> {
    const holder = `w${s.name}.${task}`;
    for (;;) {
      beat();
      // --- thread Semaphore kind (tsem): a quarter of the rounds ---
      if (random() < 0.25) {
        await tsemRound(task);
        await new Promise((r) => setTimeout(r, random() * s.pause));
        continue;
      }
      // --- end tsem ---
      const kind = random() < 0.5 ? "tl" : "trw";
      const write = kind === "tl" || random() < 0.5;
      const mode = write ? "w" : "r";
      // Task 0 may block the thread; task 1 only waits asynchronously. A sync
      // wait with no timeout is only made while task 1 holds nothing (a Lock
      // is not reentrant: this thread would wait for itself).
      const otherIdle = busy === 0;
      const styles = task === 0
        ? ["sync", "syncTimeout", "try", "async", "asyncTimeout", "abort", "with", "guard"]
        : ["async", "asyncTimeout", "abort", "with", "guard", "try"];
      let style = styles[Math.floor(random() * styles.length)];
      if (style === "sync" && !otherIdle) style = "syncTimeout";
      busy++;
      // Worker.terminate() cannot end a thread blocked in Atomics.wait: tell the
      // supervisor not to terminate this Worker while it may block with no timeout.
      if (style === "sync") Atomics.store(words, base + SHARED.SYNC_WAIT, 1);
      const timeout = 1 + random() * 20;
      let outcome: "ok" | "T" | "A" | "B" | "R" = "ok";
      try {
        if (kind === "tl") {
          switch (style) {
            case "sync":
            case "syncTimeout":
            case "try": {
              const o = style === "sync" ? undefined : style === "try" ? { blocking: false } : {
                timeout,
              };
              if (lock.acquireSync(o)) {
                try {
                  await section(task, kind, true, true);
                } finally {
                  lock.release();
                }
              } else outcome = style === "try" ? "B" : "T";
              break;
            }
            case "async":
            case "asyncTimeout":
            case "abort": {
              const c = new AbortController();
              const timer = style === "abort" ? setTimeout(() => c.abort(), timeout) : undefined;
              try {
                const ok = await lock.acquire(
                  style === "async"
                    ? undefined
                    : style === "abort"
                    ? { signal: c.signal }
                    : { timeout },
                );
                if (ok) {
                  try {
                    await section(task, kind, true, false);
                  } finally {
                    lock.release();
                  }
                } else outcome = "T";
              } catch (error) {
                if (!c.signal.aborted) throw error;
                outcome = "A";
              } finally {
                clearTimeout(timer);
              }
              break;
            }
            case "with":
              await lock.withLock(() => section(task, kind, true, false));
              break;
            case "guard": {
              await using _g = await lock.lock({ timeout: timeout * 5 });
              await section(task, kind, true, false);
              break;
            }
          }
        } else {
          const acquireSync = (o?: object) =>
            write ? rw.acquireWriteLockSync(o) : rw.acquireReadLockSync(o);
          const acquire = (o?: object) => write ? rw.acquireWriteLock(o) : rw.acquireReadLock(o);
          const release = () => write ? rw.releaseWriteLock() : rw.releaseReadLock();
          switch (style) {
            case "sync":
            case "syncTimeout":
            case "try": {
              const o = style === "sync" ? undefined : style === "try" ? { blocking: false } : {
                timeout,
              };
              if (acquireSync(o)) {
                try {
                  await section(task, kind, write, true);
                } finally {
                  release();
                }
              } else outcome = style === "try" ? "B" : "T";
              break;
            }
            case "async":
            case "asyncTimeout":
            case "abort": {
              const c = new AbortController();
              const timer = style === "abort" ? setTimeout(() => c.abort(), timeout) : undefined;
              try {
                const ok = await acquire(
                  style === "async"
                    ? undefined
                    : style === "abort"
                    ? { signal: c.signal }
                    : { timeout },
                );
                if (ok) {
                  try {
                    await section(task, kind, write, false);
                  } finally {
                    release();
                  }
                } else outcome = "T";
              } catch (error) {
                if (!c.signal.aborted) throw error;
                outcome = "A";
              } finally {
                clearTimeout(timer);
              }
              break;
            }
            case "with":
              await (write ? rw.withWriteLock : rw.withReadLock).call(
                rw,
                () => section(task, kind, write, false),
              );
              break;
            case "guard": {
              const o = { timeout: timeout * 5 };
              await using _g = write ? await rw.writeLock(o) : await rw.readLock(o);
              await section(task, kind, write, false);
              break;
            }
          }
        }
      } catch (error) {
        if ((error as Error)?.name === "LockTimeoutError") outcome = "T";
        else if ((error as Error)?.name === "LockError") outcome = "R"; // refused self-deadlock
        else throw error;
      } finally {
        busy--;
        if (style === "sync") Atomics.store(words, base + SHARED.SYNC_WAIT, 0);
      }
      if (outcome !== "ok") journal.write(`${outcome} ${kind} ${mode} ${holder} ${tick()}`);
      await new Promise((r) => setTimeout(r, random() * s.pause));
    }
  }
};
