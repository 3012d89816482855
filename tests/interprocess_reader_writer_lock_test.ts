import assert from "node:assert/strict";
import {
  InterProcessLock,
  InterProcessReaderWriterLock,
  interprocessReadLocked,
  interprocessWriteLocked,
  LockError,
  LockTimeoutError,
} from "../mod.ts";
import { mechanism, openLockFile } from "../ffi/mod.ts";
import { Child, pythonFasteners, tempDir } from "./_helpers.ts";

const CHILD = new URL("./fixtures/process_child.ts", import.meta.url);

async function holder(kind: "read" | "write", path: string): Promise<Child> {
  const child = new Child(CHILD, ["hold", kind, path]);
  await child.expect("waiting");
  await child.expect("locked");
  return child;
}

async function tryIn(kind: "read" | "write" | "lock", path: string): Promise<string> {
  await using child = new Child(CHILD, ["try", kind, path]);
  return await child.line();
}

Deno.test("InterProcessReaderWriterLock lets readers in several processes hold together", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  await using _a = await holder("read", path);
  await using _b = await holder("read", path);
  const rw = new InterProcessReaderWriterLock(path);
  assert.equal(await rw.acquireReadLock({ blocking: false }), true);
  assert.equal(await tryIn("read", path), "acquired");
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), false);
  assert.equal(await tryIn("write", path), "busy");
  rw.releaseReadLock();
});

Deno.test("InterProcessReaderWriterLock: a writer in another process excludes readers and writers", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const rw = new InterProcessReaderWriterLock(path);
  {
    await using writer = await holder("write", path);
    assert.equal(rw.acquireReadLockSync({ blocking: false }), false);
    assert.equal(await rw.acquireWriteLock({ timeout: 30 }), false);
    assert.equal(await tryIn("read", path), "busy");
    const reading = rw.acquireReadLock();
    await writer.send("release");
    assert.equal(await reading, true, "the waiting reader gets in when the writer leaves");
  }
  assert.equal(rw.readAcquired, 1);
  assert.equal(await tryIn("write", path), "busy");
  rw.releaseReadLock();
  assert.equal(await tryIn("write", path), "acquired");
});

Deno.test("InterProcessReaderWriterLock: a waiting writer gets in when the last reader leaves", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const first = await holder("read", path);
  await using _first = first;
  const second = await holder("read", path);
  await using _second = second;
  await using writer = new Child(CHILD, ["hold", "write", path]);
  await writer.expect("waiting");
  await first.send("release");
  await first.expect("released");
  const left = performance.timeOrigin + performance.now();
  await second.send("release");
  await second.expect("released");
  const locked = Number((await writer.expect("locked")).split(" ")[1]);
  assert.ok(locked >= left, "the writer got in while a reader held the lock");
});

Deno.test("InterProcessReaderWriterLock objects and async tasks in one process exclude each other", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const a = new InterProcessReaderWriterLock(path);
  const b = new InterProcessReaderWriterLock(path);
  assert.ok(a.acquireReadLockSync());
  assert.ok(await a.acquireReadLock(), "two reads on one object");
  assert.ok(b.acquireReadLockSync());
  assert.equal(b.acquireWriteLockSync({ blocking: false }), false);
  a.releaseReadLock();
  a.releaseReadLock();
  b.releaseReadLock();
  let readers = 0;
  let writers = 0;
  let most = 0;
  let overlap = false;
  const tasks = [a, b, a, b].flatMap((lock, i) => [
    lock.withWriteLock(async () => {
      if (readers > 0 || writers > 0) overlap = true;
      writers++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      writers--;
    }),
    lock.withReadLock(async () => {
      if (writers > 0) overlap = true;
      most = Math.max(most, ++readers);
      await new Promise((resolve) => setTimeout(resolve, i));
      readers--;
    }),
  ]);
  await Promise.all(tasks);
  assert.equal(overlap, false);
  assert.ok(most >= 1);
});

Deno.test("InterProcessReaderWriterLock nests a read in a write and refuses a write in a read", async () => {
  await using dir = await tempDir();
  const rw = new InterProcessReaderWriterLock(dir.file("rw.lock"));
  assert.equal(
    await rw.withWriteLock(() => rw.withReadLock(() => "read inside write")),
    "read inside write",
  );
  await assert.rejects(rw.withReadLock(() => rw.withWriteLock(() => "upgrade")), /deadlock/);
  assert.equal(rw.readAcquired, 0);
  assert.equal(rw.writeAcquired, false);
  assert.ok(rw.acquireWriteLockSync({ blocking: false }), "nothing left held");
  rw.releaseWriteLock();
});

Deno.test("InterProcessReaderWriterLock sync waits that only this thread could end throw", async () => {
  await using dir = await tempDir();
  const rw = new InterProcessReaderWriterLock(dir.file("rw.lock"));
  assert.ok(rw.acquireReadLockSync());
  assert.throws(() => rw.acquireWriteLockSync(), LockError);
  assert.ok(rw.acquireReadLockSync(), "readers share, even in one thread");
  rw.releaseReadLock();
  rw.releaseReadLock();
  assert.ok(rw.acquireWriteLockSync());
  assert.throws(() => rw.acquireReadLockSync(), LockError);
  assert.equal(rw.acquireReadLockSync({ timeout: 5 }), false);
  rw.releaseWriteLock();
});

Deno.test("InterProcessReaderWriterLock guards, timeouts and misuse", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const rw = new InterProcessReaderWriterLock(path);
  assert.throws(() => rw.releaseReadLock(), LockError);
  assert.throws(() => rw.releaseWriteLock(), LockError);
  {
    using _r1 = rw.readLockSync();
    await using _r2 = await rw.readLock();
    assert.equal(rw.readAcquired, 2);
    assert.throws(() => rw.writeLockSync({ blocking: false }), LockTimeoutError);
    await assert.rejects(rw.writeLock({ timeout: 10 }), LockTimeoutError);
  }
  assert.equal(rw.readAcquired, 0);
  const write = rw.writeLockSync();
  write.release();
  assert.throws(() => write.release(), LockError);
  {
    await using _w = await rw.writeLock();
    assert.equal(rw.writeAcquired, true);
  }
  await assert.rejects(rw.acquireReadLock({ timeout: -1 }), /-1/);
  assert.throws(() => rw.acquireWriteLockSync({ delay: NaN }), RangeError);
  assert.throws(() => new InterProcessReaderWriterLock(""), TypeError);
  await assert.rejects(new InterProcessReaderWriterLock(dir.path).acquireWriteLock(), LockError);
  assert.ok(rw.acquireWriteLockSync({ blocking: false }));
  rw.releaseWriteLock();
});

Deno.test("interprocessReadLocked() and interprocessWriteLocked() wrap and decorate", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const probe = new InterProcessReaderWriterLock(path);
  const read = interprocessReadLocked(path)(() => {
    assert.ok(probe.acquireReadLockSync({ blocking: false }), "readers share");
    probe.releaseReadLock();
    assert.equal(probe.acquireWriteLockSync({ blocking: false }), false);
    return "r";
  });
  assert.equal(await read(), "r");
  class Store {
    @interprocessWriteLocked(path)
    // deno-lint-ignore require-await -- a decorated method returns a Promise
    async save(): Promise<string> {
      assert.equal(probe.acquireReadLockSync({ blocking: false }), false);
      return "w";
    }
  }
  assert.equal(await new Store().save(), "w");
  assert.ok(probe.acquireWriteLockSync({ blocking: false }));
  probe.releaseWriteLock();
});

Deno.test("InterProcessReaderWriterLock.releaseReadLock() leaves read locks held by guards alone", async () => {
  await using dir = await tempDir();
  const rw = new InterProcessReaderWriterLock(dir.file("rw.lock"));
  const guard = await rw.readLock();
  assert.ok(await rw.acquireReadLock());
  assert.ok(rw.acquireReadLockSync());
  rw.releaseReadLock();
  rw.releaseReadLock();
  assert.throws(() => rw.releaseReadLock(), /belong to guards/);
  assert.equal(rw.readAcquired, 1);
  guard.release();
  assert.equal(rw.readAcquired, 0);
  assert.throws(() => rw.releaseReadLock(), /without a read lock held/);
});

// Writer preference (the gate byte, Linux and Windows; macOS flock has none).

const WRITER = new URL("./fixtures/rw_writer.ts", import.meta.url);
const gated = Deno.build.os !== "darwin";

/** Starts a writer process that waits for the write lock. */
async function waitingWriter(path: string, timeout: string, how: "sync" | "async") {
  const child = new Child(WRITER, ["write", path, timeout, how]);
  await child.expect("waiting");
  return child;
}

/**
 * Waits until a new reader of `path` is turned away, that is until a writer
 * waits (a bounded wait for a state: it fails after 20 s).
 */
async function untilReadersWait(path: string): Promise<void> {
  const probe = new InterProcessReaderWriterLock(path);
  const deadline = performance.now() + 20_000;
  while (probe.acquireReadLockSync({ blocking: false })) {
    probe.releaseReadLock();
    if (performance.now() > deadline) throw new Error("new readers still get in after 20 s");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

for (
  const [timeout, how] of [["forever", "async"], ["60000", "async"], ["60000", "sync"]] as const
) {
  const what = `${how} writer${timeout === "forever" ? "" : " with a timeout"}`;
  Deno.test({
    name:
      `InterProcessReaderWriterLock: a waiting ${what} in another process goes before new readers`,
    ignore: !gated,
    async fn() {
      await using dir = await tempDir();
      const path = dir.file("rw.lock");
      await using reader = await holder("read", path);
      await using writer = await waitingWriter(path, timeout, how);
      await untilReadersWait(path);
      // Without preference a reader would join the one holding the lock.
      assert.equal(await tryIn("read", path), "busy", "a reader process waits behind the writer");
      const rw = new InterProcessReaderWriterLock(path);
      let read = false;
      const reading = rw.acquireReadLock().then((ok) => (read = ok));
      await reader.send("release");
      await writer.expect("locked");
      assert.equal(read, false, "the waiting reader does not pass the writer");
      await writer.send("release");
      await writer.expect("released");
      assert.equal(await reading, true, "the reader gets in after the writer");
      assert.equal(await tryIn("read", path), "acquired", "readers share again");
      rw.releaseReadLock();
    },
  });
}

Deno.test({
  name:
    "InterProcessReaderWriterLock: a reader process that arrives while a writer waits gets in after it",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    await using first = await holder("read", path);
    await using writer = await waitingWriter(path, "forever", "async");
    await untilReadersWait(path);
    // A sync reader: it looks at the gate, finds the writer there and blocks in the kernel.
    await using late = new Child(CHILD, ["hold", "read", path, "sync"]);
    await late.expect("waiting");
    const lateLocked = late.expect("locked").then(() => "reader");
    const writerLocked = writer.expect("locked").then(() => "writer");
    await first.send("release");
    // Without preference the late reader would join the first and the writer
    // would wait for it, which is released only below: the reader would win.
    assert.equal(await Promise.race([lateLocked, writerLocked]), "writer");
    await writer.send("release");
    await writer.expect("released");
    assert.equal(await lateLocked, "reader", "the reader gets in once the writer leaves");
    assert.equal(await tryIn("read", path), "acquired", "readers share again");
  },
});

Deno.test({
  name:
    "InterProcessReaderWriterLock: readers and writers racing in processes exclude each other and readers share",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    const state = dir.file("state");
    await Deno.mkdir(state);
    const race = new URL("./fixtures/rw_race.ts", import.meta.url);
    // Back to back with no pauses, so that writers take the gate between
    // readers' looks at it and their locks, in both sync and async code.
    const children = [
      new Child(race, ["writer", path, state, "300", "async"]),
      new Child(race, ["writer", path, state, "300", "sync"]),
      new Child(race, ["reader", path, state, "600", "sync"]),
      new Child(race, ["reader", path, state, "600", "async"]),
      new Child(race, ["reader", path, state, "600", "sync"]),
    ];
    try {
      const results = await Promise.all(children.map((c) => c.line()));
      for (const line of results) assert.match(line, /^ok /);
      const shared = results.slice(2).reduce((sum, line) => sum + Number(line.split(" ")[1]), 0);
      assert.ok(shared > 0, "readers held the lock together at least once");
    } finally {
      for (const child of children) await child[Symbol.asyncDispose]();
    }
  },
});

Deno.test({
  name: "InterProcessReaderWriterLock: a waiting writer SIGKILLed never blocks readers",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    await using _reader = await holder("read", path);
    const writer = await waitingWriter(path, "forever", "async");
    await untilReadersWait(path);
    writer.process.kill("SIGKILL");
    await writer.end();
    const rw = new InterProcessReaderWriterLock(path);
    assert.equal(await rw.acquireReadLock({ timeout: 20_000 }), true, "the kernel freed the gate");
    assert.equal(await tryIn("read", path), "acquired", "readers share with the first reader");
    rw.releaseReadLock();
  },
});

Deno.test({
  name: "InterProcessReaderWriterLock: a writer that times out lets new readers in again",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    await using _reader = await holder("read", path);
    for (const how of ["async", "sync"] as const) {
      await using writer = await waitingWriter(path, "300", how);
      await writer.expect("timed out");
      assert.equal(await tryIn("read", path), "acquired", `after the ${how} writer gave up`);
    }
  },
});

Deno.test({
  name:
    "InterProcessReaderWriterLock: an abortable writer waiting at the gate leaves on abort and lets readers in",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    await using _reader = await holder("read", path);
    const rw = new InterProcessReaderWriterLock(path);
    const controller = new AbortController();
    const writing = rw.acquireWriteLock({ signal: controller.signal });
    await untilReadersWait(path); // it holds the gate and polls byte 0
    controller.abort(new Error("stop waiting"));
    await assert.rejects(writing, /stop waiting/);
    assert.equal(rw.writeAcquired, false);
    assert.equal(await tryIn("read", path), "acquired", "the gate was let go");
  },
});

Deno.test({
  name: "InterProcessReaderWriterLock: a waiting writer in a Worker goes before new readers",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    const first = new InterProcessReaderWriterLock(path);
    assert.ok(await first.acquireReadLock());
    const worker = new Worker(new URL("./fixtures/rw_writer_worker.ts", import.meta.url), {
      type: "module",
    });
    const messages: string[] = [];
    let notify = () => {};
    worker.onmessage = (event) => {
      messages.push(event.data);
      notify();
    };
    const next = async () => {
      while (messages.length === 0) await new Promise<void>((resolve) => (notify = resolve));
      return messages.shift();
    };
    try {
      worker.postMessage({ path });
      assert.equal(await next(), "waiting");
      await untilReadersWait(path);
      assert.equal(await tryIn("read", path), "busy", "a reader process waits behind the Worker");
      const late = new InterProcessReaderWriterLock(path);
      let read = false;
      const reading = late.acquireReadLock().then((ok) => (read = ok));
      first.releaseReadLock();
      assert.equal(await next(), "locked");
      assert.equal(read, false, "the reader of this isolate waits behind the Worker");
      worker.postMessage("release");
      assert.equal(await next(), "released");
      assert.equal(await reading, true);
      late.releaseReadLock();
    } finally {
      worker.terminate();
    }
  },
});

Deno.test({
  name:
    "InterProcessReaderWriterLock: readers of this process wait behind a writer of this process",
  ignore: !gated,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    const [first, writer, late] = [0, 1, 2].map(() => new InterProcessReaderWriterLock(path));
    assert.ok(await first.acquireReadLock());
    const writing = writer.acquireWriteLock();
    await untilReadersWait(path);
    const order: string[] = [];
    const reading = late.acquireReadLock().then(() => order.push("reader"));
    first.releaseReadLock();
    assert.ok(await writing);
    order.push("writer");
    writer.releaseWriteLock();
    await reading;
    assert.deepEqual(order, ["writer", "reader"]);
    late.releaseReadLock();
  },
});

const PYTHON_HOLDER = new URL("./fixtures/python_holder.py", import.meta.url).pathname;
const noPython = Deno.build.os === "linux" ? await pythonFasteners() : "interop is Linux-only";

Deno.test({
  name:
    "InterProcessReaderWriterLock: Python fasteners' readers wait behind our waiting writer too",
  ignore: noPython !== undefined,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("rw.lock");
    const pythonTry = async () => {
      const out = await new Deno.Command("/usr/bin/python3", {
        args: [PYTHON_HOLDER, "try", "read", path],
        stdout: "piped",
      }).output();
      return new TextDecoder().decode(out.stdout).trim();
    };
    await using reader = await holder("read", path);
    assert.equal(await pythonTry(), "acquired", "a Python reader shares with ours");
    await using writer = await waitingWriter(path, "forever", "async");
    await untilReadersWait(path);
    assert.equal(await pythonTry(), "busy", "its whole-file lock covers the gate");
    await reader.send("release");
    await writer.expect("locked");
    assert.equal(await pythonTry(), "busy");
    await writer.send("release");
    await writer.expect("released");
    assert.equal(await pythonTry(), "acquired");
  },
});

Deno.test("InterProcessReaderWriterLock and an InterProcessLock on one path: sync waits only this thread could end throw", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const rw = new InterProcessReaderWriterLock(path);
  const lock = new InterProcessLock(path);
  rw.acquireReadLockSync();
  assert.throws(() => lock.acquireSync(), LockError, "a read lock of this thread blocks it");
  rw.releaseReadLock();
  lock.acquireSync();
  assert.throws(() => rw.acquireReadLockSync(), LockError, "the whole-file lock covers both bytes");
  assert.throws(() => rw.acquireWriteLockSync(), LockError);
  lock.release();
  assert.ok(rw.acquireWriteLockSync({ blocking: false }));
  rw.releaseWriteLock();
});

Deno.test({
  name:
    "mechanism: wouldLock() sees other descriptors' locks on a byte without taking one; tryLockPair() takes two bytes at once",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("m.lock");
    const m = mechanism();
    const [a, b] = [openLockFile(path), openLockFile(path)];
    try {
      assert.equal(m.wouldLock!(b, true, path, 1), true, "nothing held");
      assert.equal(m.tryLock(a, false, path, 1), true);
      assert.equal(m.wouldLock!(b, false, path, 1), true, "shared beside shared");
      assert.equal(m.wouldLock!(b, true, path, 1), false, "exclusive against shared");
      assert.equal(m.wouldLock!(a, true, path, 1), true, "a descriptor's own lock is no conflict");
      assert.equal(m.wouldLock!(b, true, path, 0), true, "the next byte is free");
      assert.equal(m.tryLock(b, true, path, 1), false, "a look took nothing: still shared");
      m.unlock(a, path, 1);
      assert.equal(m.wouldLock!(b, true, path, 1), true);
      // Two bytes in one call: all or nothing.
      assert.equal(m.tryLockPair!(a, true, path, 0), true);
      assert.equal(m.tryLock(b, false, path, 0), false, "byte 0 held");
      assert.equal(m.tryLock(b, false, path, 1), false, "byte 1 held");
      assert.equal(m.tryLock(b, false, path, 2), true, "byte 2 is not in the pair");
      m.unlock(b, path, 2);
      m.unlockPair!(a, path, 0);
      assert.equal(m.tryLock(b, true, path, 1), true, "both released in one call");
      assert.equal(m.tryLockPair!(a, true, path, 0), false, "one busy byte fails the pair");
      assert.equal(m.tryLock(a, true, path, 0), true, "and the pair took nothing");
      m.unlock(a, path, 0);
      m.unlock(b, path, 1);
      // A whole-file lock (the range Python fasteners' lockf takes) meets both.
      assert.equal(m.tryLock(b, false, path), true);
      assert.equal(m.wouldLock!(a, true, path, 1), false);
      assert.equal(m.tryLockPair!(a, true, path, 0), false);
      m.unlock(b, path);
      await Promise.all([m.pause!(0.2), m.pause!(1)]); // pool-thread sleeps end
    } finally {
      m.close(a);
      m.close(b);
    }
  },
});
