import assert from "node:assert/strict";
import { InterProcessLock, interprocessLocked, LockError, LockTimeoutError } from "../mod.ts";
import { Child, runDeno, tempDir } from "./_helpers.ts";

const CHILD = new URL("./fixtures/process_child.ts", import.meta.url);
const WORKER = new URL("./fixtures/process_worker.ts", import.meta.url);
const NO_FFI = new URL("./fixtures/no_ffi.ts", import.meta.url);
const isWindows = Deno.build.os === "windows";

/** Starts a child holding `kind` on `path` and waits until it holds it. */
async function holder(kind: string, path: string): Promise<Child> {
  const child = new Child(CHILD, ["hold", kind, path]);
  await child.expect("waiting");
  await child.expect("locked");
  return child;
}

Deno.test("InterProcessLock.acquire() returns false while another process holds the lock", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  {
    await using child = await holder("lock", path);
    assert.equal(await lock.acquire({ blocking: false }), false);
    assert.equal(lock.acquireSync({ blocking: false }), false);
    assert.equal(lock.acquireSync({ timeout: 0 }), false);
    assert.equal(lock.acquired, false);
    await child.send("release");
    await child.expect("released");
  }
  assert.equal(lock.acquireSync({ blocking: false }), true);
  const other = new Child(CHILD, ["try", "lock", path]);
  await using _other = other;
  assert.equal(await other.line(), "busy");
  lock.release();
});

Deno.test("InterProcessLock keeps a counter file exact across processes", async () => {
  await using dir = await tempDir();
  const path = dir.file("counter.lock");
  const counter = dir.file("counter");
  await Deno.writeTextFile(counter, "0");
  const children = ["sync", "async", "sync", "async"].map((how) =>
    new Child(CHILD, ["count", path, counter, "150", how])
  );
  try {
    for (const child of children) assert.equal(await child.line(), "done");
    for (const child of children) assert.equal((await child.end()).code, 0);
  } finally {
    for (const child of children) await child[Symbol.asyncDispose]();
  }
  assert.equal(await Deno.readTextFile(counter), "600");
});

Deno.test("InterProcessLock excludes between Workers of one process", async () => {
  await using dir = await tempDir();
  const shared = new SharedArrayBuffer(12);
  const words = new Int32Array(shared);
  const workers = [true, false, true].map(() => new Worker(WORKER, { type: "module" }));
  try {
    await Promise.all(workers.map((worker, i) =>
      new Promise<void>((resolve, reject) => {
        worker.onmessage = () => resolve();
        worker.onerror = (e) => reject(e.error ?? new Error(e.message));
        worker.postMessage({ path: dir.file("w.lock"), shared, rounds: 300, sync: i !== 1 });
      })
    ));
  } finally {
    for (const worker of workers) worker.terminate();
  }
  assert.equal(words[2], 0, "overlapping holders");
  assert.equal(words[1], 900, "lost increments");
});

Deno.test("InterProcessLock excludes between lock objects and async tasks in one process", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const shared = new InterProcessLock(path);
  const locks = [shared, shared, new InterProcessLock(path), new InterProcessLock(path)];
  let inside = 0;
  let most = 0;
  let count = 0;
  await Promise.all(locks.map(async (lock) => {
    for (let i = 0; i < 20; i++) {
      await lock.withLock(async () => {
        most = Math.max(most, ++inside);
        const seen = count;
        await new Promise((resolve) => setTimeout(resolve, 0));
        count = seen + 1;
        inside--;
      });
    }
  }));
  assert.equal(most, 1);
  assert.equal(count, 80);
});

Deno.test("InterProcessLock: a waiter gets the lock when the holder is killed with SIGKILL", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  await using first = await holder("lock", path);
  await using second = new Child(CHILD, ["hold", "lock", path]);
  await second.expect("waiting");
  const killed = performance.timeOrigin + performance.now();
  first.process.kill("SIGKILL");
  const status = await first.process.status;
  // Windows has no signals: Deno ends the process with TerminateProcess.
  if (isWindows) assert.equal(status.success, false);
  else assert.equal(status.signal, "SIGKILL");
  const locked = Number((await second.expect("locked")).split(" ")[1]);
  assert.ok(locked >= killed, "the waiter got the lock before the holder died");
});

Deno.test("InterProcessLock.acquire() with a timeout returns false after about the timeout", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  await using _child = await holder("lock", path);
  const lock = new InterProcessLock(path);
  for (
    const attempt of [
      () => lock.acquire({ timeout: 150 }),
      () => lock.acquireSync({ timeout: 150 }),
    ]
  ) {
    const started = performance.now();
    assert.equal(await attempt(), false);
    const waited = performance.now() - started;
    assert.ok(waited >= 149, `returned after ${waited} ms`);
    assert.ok(waited < 5000, `returned after ${waited} ms`);
  }
  assert.equal(lock.acquired, false);
  await assert.rejects(lock.lock({ timeout: 20 }), LockTimeoutError);
  assert.throws(() => lock.lockSync({ blocking: false }), LockTimeoutError);
});

Deno.test("InterProcessLock: a timed-out acquire leaves nothing that keeps the process alive", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  assert.ok(lock.acquireSync());
  try {
    const out = await runDeno(["run", "-A", String(CHILD), "timeout", path, "50"]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^false /);
  } finally {
    lock.release();
  }
  // The child is gone, so nothing of it can hold the lock now.
  assert.ok(lock.acquireSync({ blocking: false }));
  lock.release();
});

Deno.test("InterProcessLock.acquire() rejects with the signal's reason and takes nothing later", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  const reason = new Error("stop waiting");
  {
    await using child = await holder("lock", path);
    const controller = new AbortController();
    const waiting = lock.acquire({ signal: controller.signal });
    setTimeout(() => controller.abort(reason), 30); // abort while it waits
    await assert.rejects(waiting, (error) => error === reason);
    const aborted = AbortSignal.abort(reason);
    await assert.rejects(lock.acquire({ signal: aborted }), (error) => error === reason);
    assert.throws(() => lock.acquireSync({ signal: aborted }), (error) => error === reason);
    await child.send("release");
    await child.expect("released");
  }
  assert.equal(lock.acquired, false);
  await using other = new Child(CHILD, ["try", "lock", path]);
  assert.equal(await other.line(), "acquired");
  // On a free lock too, an aborted signal refuses at once, and takes nothing.
  await assert.rejects(lock.acquire({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
  assert.throws(() => lock.acquireSync({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
  assert.equal(lock.acquired, false);
});

Deno.test("InterProcessLock.acquireSync() with a signal and no timeout still refuses to deadlock", async () => {
  await using dir = await tempDir();
  const lock = new InterProcessLock(dir.file("a.lock"));
  assert.ok(lock.acquireSync());
  try {
    const signal = new AbortController().signal;
    assert.throws(() => new InterProcessLock(lock.path).acquireSync({ signal }), /wait forever/);
  } finally {
    lock.release();
  }
});

Deno.test("InterProcessLock: the event loop runs while acquire() waits in the kernel", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  await using child = await holder("lock", path);
  let settled = false;
  const waiting = lock.acquire().then((acquired) => (settled = acquired));
  let ticks = 0;
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    ticks++;
  }
  assert.equal(ticks, 5);
  assert.equal(settled, false);
  await child.send("release");
  assert.equal(await waiting, true);
  lock.release();
});

Deno.test("InterProcessLock creates parent folders and keeps an existing file's content", async () => {
  await using dir = await tempDir();
  const nested = dir.file("a/b/c/nested.lock");
  const lock = new InterProcessLock(nested);
  assert.ok(lock.acquireSync());
  lock.release();
  assert.ok((await Deno.stat(nested)).isFile);
  const kept = dir.file("kept.lock");
  await Deno.writeTextFile(kept, "do not touch");
  const other = new InterProcessLock(new URL(`file://${kept.replaceAll("\\", "/")}`));
  assert.equal(other.path, kept);
  assert.ok(await other.acquire());
  other.release();
  assert.equal(await Deno.readTextFile(kept), "do not touch");
  assert.ok((await Deno.stat(kept)).isFile, "the lock file must not be deleted");
});

Deno.test("InterProcessLock rejects bad input with typed errors and stays usable", async () => {
  await using dir = await tempDir();
  assert.throws(() => new InterProcessLock(""), TypeError);
  assert.throws(() => new InterProcessLock("a\0b"), /NUL/);
  assert.throws(() => new InterProcessLock(42 as unknown as string), /got 42/);
  assert.throws(() => new InterProcessLock(new URL("https://example.com/x")), TypeError);
  const lock = new InterProcessLock(dir.file("a.lock"));
  for (
    const [options, error, value] of [
      [{ timeout: -1 }, RangeError, "-1"],
      [{ timeout: NaN }, RangeError, "NaN"],
      [{ delay: -5 }, RangeError, "-5"],
      [{ maxDelay: NaN }, RangeError, "NaN"],
      [{ delay: Infinity }, RangeError, "Infinity"],
      [{ timeout: "10" }, TypeError, '"10"'],
      [{ blocking: 1 }, TypeError, "1"],
      [{ signal: {} }, TypeError, "Object"],
      ["fast", TypeError, '"fast"'],
    ] as const
  ) {
    const pending = lock.acquire(options as never);
    assert.ok(pending instanceof Promise, "an async method must reject, not throw");
    await assert.rejects(pending, (e: Error) => e instanceof error && e.message.includes(value));
    assert.throws(() => lock.acquireSync(options as never), error);
  }
  assert.throws(() => lock.release(), LockError);
  assert.ok(lock.acquireSync(), "still usable after bad input");
  lock.release();
});

Deno.test("InterProcessLock reports a folder, or a file as parent, as a LockError naming the path", async () => {
  await using dir = await tempDir();
  const folder = new InterProcessLock(dir.path);
  await assert.rejects(
    folder.acquire(),
    (e: LockError) => e instanceof LockError && e.path === dir.path && e.message.includes(dir.path),
  );
  assert.throws(() => folder.acquireSync(), (e: LockError) => e.code !== undefined);
  const file = dir.file("plain");
  await Deno.writeTextFile(file, "");
  const underFile = new InterProcessLock(`${file}/x.lock`);
  assert.throws(
    () => underFile.acquireSync(),
    (e: LockError) => e instanceof LockError && e.message.includes(file),
  );
  const good = new InterProcessLock(dir.file("good.lock"));
  assert.ok(good.acquireSync());
  good.release();
});

Deno.test("InterProcessLock.acquireSync() throws rather than deadlock this thread", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  assert.ok(lock.acquireSync());
  try {
    assert.throws(() => lock.acquireSync(), /would wait forever/);
    assert.throws(() => new InterProcessLock(path).acquireSync(), LockError);
    assert.equal(lock.acquireSync({ timeout: 10 }), false, "with a timeout it waits and fails");
  } finally {
    lock.release();
  }
});

Deno.test("InterProcessLock.acquireSync() throws while an acquire() of this thread waits in the kernel", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const lock = new InterProcessLock(path);
  const other = new InterProcessLock(path);
  await using child = await holder("lock", path);
  const waiting = lock.acquire();
  // The kernel may grant that wait at any moment, and then only this thread
  // could release it: a blocking sync wait here would freeze the process.
  assert.throws(() => other.acquireSync(), /waits in acquire\(\)/);
  await child.send("release");
  assert.equal(await waiting, true);
  lock.release();
  assert.ok(other.acquireSync(), "no pending wait is counted after the grant");
  other.release();
});

Deno.test("InterProcessLock guards release with using, and once", async () => {
  await using dir = await tempDir();
  const lock = new InterProcessLock(dir.file("a.lock"));
  {
    using _guard = lock.lockSync();
    assert.equal(lock.acquired, true);
  }
  assert.equal(lock.acquired, false);
  {
    await using _guard = await lock.lock();
    assert.equal(lock.acquired, true);
  }
  assert.equal(lock.acquired, false);
  const guard = lock.lockSync();
  guard.release();
  assert.throws(() => guard.release(), LockError);
  const next = lock.lockSync();
  assert.throws(() => guard.release(), LockError, "a stale guard must not release a later hold");
  assert.equal(lock.acquired, true);
  next[Symbol.dispose]();
  assert.equal(
    await lock.withLock(() => lock.withLock(() => 7)),
    7,
    "nested withLock runs at once",
  );
});

Deno.test("interprocessLocked() wraps functions and decorates methods", async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const probe = new InterProcessLock(path);
  const wrapped = interprocessLocked(path)((n: number) => {
    assert.equal(probe.acquireSync({ blocking: false }), false, "held while the function runs");
    return n + 1;
  });
  assert.equal(await wrapped(1), 2);
  class Counter {
    n = 0;
    @interprocessLocked(path)
    // A decorated method runs after the lock is taken, so it returns a Promise.
    // deno-lint-ignore require-await -- a decorated method returns a Promise
    async bump(by: number): Promise<number> {
      assert.equal(probe.acquireSync({ blocking: false }), false);
      return this.n += by;
    }
  }
  const counter = new Counter();
  assert.equal(await counter.bump(5), 5);
  assert.ok(probe.acquireSync({ blocking: false }), "released after the call");
  probe.release();
});

// Counted from /proc/self/fd; Wine's GetProcessHandleCount always answers 0,
// so a Windows variant would check nothing where it runs in CI.
const noFdCount = Deno.build.os === "linux" ? undefined : "descriptors are counted on Linux only";
if (noFdCount) console.log(`descriptor-count test skipped: ${noFdCount}`);

Deno.test("InterProcessLock leaves the descriptor count unchanged over thousands of cycles", {
  ignore: noFdCount !== undefined,
}, async () => {
  await using dir = await tempDir();
  // In a child of its own, so that other tests' pipes and collected locks don't move the count.
  await using child = new Child(CHILD, ["cycles", dir.file("a.lock")]);
  const [before, after] = (await child.line()).split(" ").map(Number);
  assert.ok(before > 0);
  assert.equal(after, before);
});

Deno.test("importing the module needs no permission; a process lock without --allow-ffi names the flag", async () => {
  await using dir = await tempDir();
  const out = await runDeno(["run", "--no-prompt", String(NO_FFI), dir.file("a.lock")]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^imported\nLockError: .*--allow-ffi/);
});
