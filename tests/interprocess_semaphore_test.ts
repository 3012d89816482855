// InterProcessSemaphore: at most N holders across processes, objects, async
// tasks and sync waiters; dead holders' slots come back; waits that give up
// leave nothing taken; many waiters do not take the blocking pool hostage.
//
// Run with: deno test --allow-ffi --allow-read --allow-write --allow-run --allow-env tests/interprocess_semaphore_test.ts

import assert from "node:assert/strict";
import {
  InterProcessSemaphore,
  interprocessSemaphoreLocked,
  locked,
  LockError,
  LockTimeoutError,
  tryLock,
} from "../mod.ts";
import { Child, runDeno, tempDir } from "./_helpers.ts";
import { MAX_SLOT, mechanism, openLockFile } from "../ffi/mod.ts";
import {
  F_OFD_GETLK,
  F_UNLCK,
  F_WRLCK,
  flock,
  FLOCK_L_LEN,
  FLOCK_L_START,
  FLOCK_L_TYPE,
  LIBC,
  LINUX_SYMBOLS,
} from "../ffi/linux.ts";
import {
  KERNEL32,
  LOCKFILE_EXCLUSIVE_LOCK,
  LOCKFILE_FAIL_IMMEDIATELY,
  overlapped,
  WINDOWS_SYMBOLS,
} from "../ffi/windows.ts";

const CHILD = new URL("./fixtures/semaphore_child.ts", import.meta.url);
const WORKER = new URL("./fixtures/semaphore_worker.ts", import.meta.url);

/** Rejects when `promise` has not settled after `ms`: a bound on a test, not a timing assertion. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A holder's events ("in <id>", "out <id>"), from children and from this process. */
class Journal {
  readonly inside = new Set<string>();
  max = 0;
  entered = 0;
  #waiters: (() => void)[] = [];

  /**
   * Counts the holders now. Called only when no holder has been told to
   * leave and not yet been seen leaving: a holder's "out" is printed after
   * its release and may be read after the next holder's "in" (two pipes), but
   * a holder that wrongly got in stays in until told to leave.
   */
  check(): void {
    this.max = Math.max(this.max, this.inside.size);
  }

  record(line: string): void {
    const [what, id] = line.split(" ");
    if (what === "in") {
      this.inside.add(id);
      this.entered++;
    } else if (what === "out") {
      this.inside.delete(id);
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves once `ready()` holds, re-checked after every event. */
  async until(ready: () => boolean): Promise<void> {
    while (!ready()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

Deno.test("InterProcessSemaphore admits exactly N of 2N holders at once: processes, a Worker, objects, async tasks, sync waiters", async () => {
  await using dir = await tempDir();
  const path = dir.file("n.sem");
  const N = 3;
  const journal = new Journal();
  const children = [
    new Child(CHILD, ["hold", path, String(N), "a1:async", "a2:async"]), // two tasks, one object
    new Child(CHILD, ["hold", path, String(N), "s1:sync"]),
    new Child(CHILD, ["hold", path, String(N), "s2:sync"]),
  ];
  const owner = new Map<string, Child | (() => void)>();
  const here: Promise<void>[] = [];
  const workers: Worker[] = [];
  try {
    for (const child of children) assert.equal(await child.line(), "ready");
    const pumps = children.map(async (child) => {
      for (;;) {
        let line: string;
        try {
          line = await child.line();
        } catch {
          return; // ended
        }
        owner.set(line.split(" ")[1], child);
        journal.record(line);
      }
    });
    // A Worker of this process, waiting in acquireSync() on its own thread.
    const worker = new Worker(WORKER, { type: "module" });
    workers.push(worker);
    worker.onmessage = (e: MessageEvent<string>) => {
      owner.set(e.data.split(" ")[1], () => worker.postMessage("out"));
      journal.record(e.data);
    };
    worker.postMessage({ path, slots: N, id: "w1" });
    // An async holder in this process, on an object of its own.
    for (const id of ["p1"]) {
      const semaphore = new InterProcessSemaphore(path, N);
      here.push((async () => {
        await semaphore.acquire();
        let go!: () => void;
        const out = new Promise<void>((resolve) => go = resolve);
        owner.set(id, go);
        journal.record(`in ${id}`);
        await out;
        semaphore.release();
        journal.record(`out ${id}`);
      })());
    }
    const total = 6;
    let done = 0;
    while (done < total) {
      await within(
        journal.until(() => journal.inside.size >= Math.min(N, total - done)),
        60_000,
        "holders entering",
      );
      // Give any holder that would wrongly pass time to do so (the check does not depend on it).
      await new Promise((resolve) => setTimeout(resolve, 30));
      journal.check();
      assert.ok(journal.max <= N, `${journal.max} holders at once with ${N} slots`);
      const id = [...journal.inside][0];
      const who = owner.get(id)!;
      if (typeof who === "function") who();
      else await who.send(`out ${id}`);
      await within(journal.until(() => !journal.inside.has(id)), 60_000, `holder ${id} leaving`);
      done++;
    }
    await Promise.all(here);
    for (const child of children) assert.equal((await child.end()).code, 0);
    await Promise.all(pumps);
  } finally {
    for (const child of children) await child[Symbol.asyncDispose]();
    for (const worker of workers) worker.terminate();
  }
  assert.equal(journal.max, N, "the maximum seen is N");
  assert.equal(journal.entered, 6);
});

Deno.test("InterProcessSemaphore: SIGKILL of a holder frees its slot for a waiting acquire() and acquireSync()", async () => {
  await using dir = await tempDir();
  const path = dir.file("kill.sem");
  const holders = [
    new Child(CHILD, ["hold", path, "2", "k1:sync"]),
    new Child(CHILD, ["hold", path, "2", "k2:own"]),
  ];
  try {
    for (const child of holders) {
      assert.equal(await child.line(), "ready");
      assert.match(await child.line(), /^in /);
    }
    const waiter = new InterProcessSemaphore(path, 2);
    assert.equal(waiter.acquireSync({ blocking: false }), false);
    const syncWaiter = new Child(CHILD, ["hold", path, "2", "w:sync"]);
    await using _w = syncWaiter;
    assert.equal(await syncWaiter.line(), "ready");
    const pending = waiter.acquire();
    holders[0].process.kill("SIGKILL");
    holders[1].process.kill("SIGKILL");
    // One slot each: the async waiter here and the sync waiter in its child.
    assert.equal(await within(pending, 60_000, "acquire() after SIGKILL"), true);
    assert.equal(await within(syncWaiter.line(), 60_000, "acquireSync() after SIGKILL"), "in w");
    assert.equal(waiter.held, 1);
    assert.equal(waiter.acquireSync({ blocking: false }), false);
    waiter.release();
    await syncWaiter.send("out w");
    assert.equal(await syncWaiter.line(), "out w");
  } finally {
    for (const child of holders) await child[Symbol.asyncDispose]();
  }
});

Deno.test("InterProcessSemaphore: timeouts, blocking: false and signals leave no slot taken", async () => {
  await using dir = await tempDir();
  const path = dir.file("full.sem");
  const full = new Child(CHILD, ["hold", path, "2", "f1:own", "f2:own"]);
  await using _full = full;
  assert.equal(await full.line(), "ready");
  await full.expect("in ");
  await full.expect("in ");
  const s = new InterProcessSemaphore(path, 2);
  assert.equal(s.acquireSync({ blocking: false }), false);
  assert.equal(await s.acquire({ blocking: false }), false);
  assert.equal(s.acquireSync({ timeout: 0 }), false);
  assert.equal(s.acquireSync({ timeout: 30 }), false);
  assert.equal(await s.acquire({ timeout: 30 }), false);
  const controller = new AbortController();
  const aborted = s.acquire({ signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  assert.throws(() => s.lockSync({ blocking: false }), LockTimeoutError);
  await assert.rejects(s.lock({ blocking: false }), LockTimeoutError);
  await assert.rejects(s.lock({ timeout: 10 }), LockTimeoutError);
  await assert.rejects(s.withLock(() => 1, { blocking: false }), LockTimeoutError);
  assert.equal(tryLock(s).acquired, false);
  assert.equal(s.held, 0);
  assert.throws(() => s.release(), LockError);
  // A process whose only waiter is timed exits once it times out.
  const timed = await within(
    runDeno(["run", "--allow-all", String(CHILD), "timed", path, "2", "50"]),
    60_000,
    "a process with only a timed waiter exiting",
  );
  assert.equal(timed.code, 0, timed.stderr);
  assert.equal(timed.stdout, "false\n");
  await full.send("out f1");
  await full.send("out f2");
  await full.expect("out ");
  await full.expect("out ");
  // Both slots are free again: nothing was left taken by the waits that gave up.
  assert.equal(s.acquireSync({ blocking: false }), true);
  assert.equal(s.acquireSync({ blocking: false }), true);
  assert.equal(s.acquireSync({ blocking: false }), false);
  s.release();
  s.release();
});

Deno.test("InterProcessSemaphore: release() gives back the most recent acquire()d slot, never a guard's; guards and withLock give back their own", async () => {
  await using dir = await tempDir();
  const path = dir.file("order.sem");
  const s = new InterProcessSemaphore(path, 3);
  const probe = new InterProcessSemaphore(path, 3);
  const g1 = s.lockSync();
  assert.equal(s.acquireSync(), true);
  const g3 = await s.lock();
  assert.equal(s.held, 3);
  g1.release(); // its own slot (slot 0), not the most recent
  assert.equal(s.held, 2);
  assert.equal(probe.acquireSync({ blocking: false }), true); // takes slot 0 back
  s.release(); // the plain acquisition, not g3's more recent slot
  assert.equal(s.held, 1);
  assert.throws(() => s.release(), /no slot held from acquire\(\) or acquireSync\(\)/);
  assert.equal(s.held, 1); // the refused release() left g3's slot alone
  g3.release();
  assert.throws(() => g3.release(), LockError); // a guard gives back once
  assert.throws(() => s.release(), /no slot held/);
  assert.equal(s.held, 0);
  probe.release();
  // withLock gives back its own slot, also when fn throws; nested withLock takes another.
  await assert.rejects(s.withLock(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await s.withLock(() => s.withLock(() => s.held)), 2);
  assert.equal(s.held, 0);
  // locked(semaphore), tryLock(semaphore), interprocessSemaphoreLocked.
  assert.equal(await locked(s)(() => s.held)(), 1);
  {
    using t = tryLock(s);
    assert.equal(t.acquired, true);
    assert.equal(s.held, 1);
  }
  assert.equal(s.held, 0);
  let inside = 0;
  let most = 0;
  const limited = interprocessSemaphoreLocked(path, 3)(async () => {
    most = Math.max(most, ++inside);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inside--;
  });
  await Promise.all(Array.from({ length: 12 }, () => limited()));
  assert.ok(most <= 3 && most >= 1, `${most} calls at once`);
});

Deno.test("InterProcessSemaphore: a blocking acquireSync() with no timeout while this thread holds every slot throws", async () => {
  await using dir = await tempDir();
  const s = new InterProcessSemaphore(dir.file("self.sem"), 2);
  s.acquireSync();
  s.acquireSync();
  assert.throws(() => s.acquireSync(), /holds all 2 slots/);
  s.release();
  s.release();
});

Deno.test("InterProcessSemaphore: many async waiters on many files do not stall Deno.stat", async () => {
  await using dir = await tempDir();
  const paths = Array.from({ length: 40 }, (_, i) => dir.file(`many-${i}.sem`));
  // The child takes every slot and its own waiter holds each turnstile, so
  // every waiter here must queue for a turnstile: in the kernel, or polling
  // once the isolate's cap on parked kernel waits is reached.
  const filler = new Child(CHILD, ["fill", "1", ...paths]);
  await using _filler = filler;
  assert.equal(await filler.line(), "full");
  const waiters = paths.flatMap((path) => [0, 1].map(() => new InterProcessSemaphore(path, 1)));
  const pending = waiters.map((s) => s.acquire());
  await new Promise((resolve) => setTimeout(resolve, 50)); // let them park
  const stat = await within(Deno.stat(dir.path), 20_000, "Deno.stat with 80 semaphore waiters");
  assert.ok(stat.isDirectory);
  await filler.send("exit");
  await filler.end();
  // Each path's two waiters get its one slot in turn.
  for (let i = 0; i < waiters.length; i += 2) {
    const first = await within(
      Promise.race([pending[i], pending[i + 1]]),
      60_000,
      "a waiter after the filler exited",
    );
    assert.equal(first, true);
    const [a, b] = [waiters[i], waiters[i + 1]];
    (a.held === 1 ? a : b).release();
    assert.deepEqual(
      await within(Promise.all([pending[i], pending[i + 1]]), 60_000, "the second"),
      [true, true],
    );
    (a.held === 1 ? a : b).release();
  }
});

Deno.test("InterProcessSemaphore without --allow-ffi fails with the LockError the locks give", async () => {
  await using dir = await tempDir();
  const out = await runDeno([
    "run",
    "--no-prompt",
    "--allow-read",
    String(CHILD),
    "noffi",
    dir.file("a.sem"),
    "2",
  ]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^LockError: .*--allow-ffi/);
});

// --- Slot bytes, as the kernel sees them (Linux; Windows under Wine: tests/windows/run.sh) ---

/**
 * Whether another descriptor holds a lock on byte `k` of `path`, asked of the
 * kernel directly: F_OFD_GETLK on Linux, a LockFileEx try on Windows.
 */
function byteBusy(path: string, k: number): boolean {
  const m = mechanism();
  const handle = m.open(path)!;
  try {
    if (Deno.build.os === "linux") {
      const { fcntl } = Deno.dlopen(LIBC, { fcntl: LINUX_SYMBOLS.fcntl }).symbols;
      const query = flock(F_WRLCK, k);
      assert.equal(fcntl(handle as number, F_OFD_GETLK, query), 0);
      const view = new DataView(query.buffer);
      const type = view.getInt16(FLOCK_L_TYPE, true);
      if (type === F_UNLCK) return false;
      assert.equal(view.getBigInt64(FLOCK_L_START, true), BigInt(k), "the lock starts at byte k");
      assert.equal(view.getBigInt64(FLOCK_L_LEN, true), 1n, "and is one byte long");
      return true;
    }
    const kernel32 = Deno.dlopen(KERNEL32, WINDOWS_SYMBOLS);
    try {
      const { LockFileEx, UnlockFileEx } = kernel32.symbols;
      const at = overlapped(k);
      const flags = LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY;
      if (!LockFileEx(handle as Deno.PointerObject, flags, 0, 1, 0, at)) return true;
      UnlockFileEx(handle as Deno.PointerObject, 0, 1, 0, at);
      return false;
    } finally {
      kernel32.close();
    }
  } finally {
    m.close(handle);
  }
}

Deno.test({
  name:
    "InterProcessSemaphore: slot k is byte k of the file, the turnstile byte 1024 is taken only while waiting",
  ignore: Deno.build.os !== "linux" && Deno.build.os !== "windows",
  fn: async () => {
    await using dir = await tempDir();
    const path = dir.file("bytes.sem");
    const s = new InterProcessSemaphore(path, 3);
    assert.equal(s.acquireSync(), true);
    assert.equal(await s.acquire(), true);
    assert.deepEqual([0, 1, 2, 1024].map((k) => byteBusy(path, k)), [true, true, false, false]);
    const g = s.lockSync();
    assert.deepEqual([0, 1, 2, 1024].map((k) => byteBusy(path, k)), [true, true, true, false]);
    g.release(); // the guard's slot 2
    assert.deepEqual([0, 1, 2].map((k) => byteBusy(path, k)), [true, true, false]);
    assert.equal(s.acquireSync(), true);
    // All three busy: a waiter that waits forever queues on the turnstile.
    const waiter = new InterProcessSemaphore(path, 3);
    const pending = waiter.acquire();
    assert.equal(byteBusy(path, 1024), true, "the waiting driver holds the turnstile");
    s.release();
    assert.equal(await within(pending, 60_000, "the waiter"), true);
    assert.equal(byteBusy(path, 1024), false, "the turnstile is let go with the queue empty");
    waiter.release();
    s.release();
    s.release();
    assert.deepEqual([0, 1, 2, 1024].map((k) => byteBusy(path, k)), [false, false, false, false]);
    // The file is never written.
    assert.equal((await Deno.stat(path)).size, 0);
  },
});

Deno.test({
  name: "mechanism: a slot locks only its byte; calls without a slot still lock the whole lock",
  ignore: Deno.build.os !== "linux" && Deno.build.os !== "windows",
  fn: async () => {
    await using dir = await tempDir();
    const path = dir.file("m.lock");
    const m = mechanism();
    assert.equal(m.byteRanges, true);
    const [a, b, c] = [openLockFile(path), openLockFile(path), openLockFile(path)];
    try {
      assert.equal(m.tryLock(a, true, path, 5), true);
      assert.equal(m.tryLock(b, true, path, 5), false, "byte 5 is held");
      assert.equal(m.tryLock(b, true, path, 6), true, "byte 6 is another slot");
      assert.equal(m.tryLock(c, true, path, MAX_SLOT), true, "the turnstile byte is apart");
      assert.equal(byteBusy(path, 5), true);
      m.unlock(a, path, 5);
      assert.equal(byteBusy(path, 5), false);
      assert.equal(m.tryLock(a, true, path, 5), true);
      m.unlock(a, path, 5);
      m.unlock(b, path, 6);
      m.unlock(c, path, MAX_SLOT);
      // Without a slot: the whole file (Linux) or byte 0 (Windows), as before.
      assert.equal(m.tryLock(a, true, path), true);
      assert.equal(m.tryLock(b, true, path), false);
      assert.equal(m.tryLock(b, true, path, 0), false, "slot 0 meets the lock");
      m.unlock(a, path);
      assert.equal(m.tryLock(b, true, path), true);
      m.unlock(b, path);
      m.lockSync(a, true, path, 7);
      assert.equal(await m.lock(b, true, 8), true);
      assert.equal(m.tryLock(c, true, path, 7), false);
      m.unlock(a, path, 7);
      m.unlock(b, path, 8);
    } finally {
      for (const h of [a, b, c]) m.close(h);
    }
  },
});
// --- end slot bytes ---
