// Bad input sweep: every public constructor and function of mod.ts called with
// wrong types, out-of-range numbers, odd paths and foreign SharedArrayBuffers.
// Each must fail with its documented error (TypeError / RangeError naming the
// bad value; LockError naming the path), Promise-returning methods must reject
// rather than throw, and afterwards every lock must still work.
//
// The last test enumerates `Object.keys(mod.ts)` and fails when an export has
// no case here, so a new export cannot slip in untested.
//
// Run with: deno test --allow-ffi --allow-read --allow-write --allow-env tests/bad_input_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import * as mod from "../mod.ts";
import {
  InterProcessLock,
  InterProcessReaderWriterLock,
  Lock,
  LockError,
  LockTimeoutError,
  ReaderWriterLock,
} from "../mod.ts";

type LockFromFile = Lock;

/** Names of mod.ts exports that a test below covers. */
const covered = new Set<string>();
function cover(...names: string[]): void {
  for (const name of names) covered.add(name);
}

/** A readable rendering of `value` that the error message must contain. */
function rendering(value: unknown): string {
  if (typeof value === "string") return value.slice(0, 100);
  if (typeof value === "number") return String(value);
  if (value === null || value === undefined || typeof value === "boolean") return String(value);
  if (typeof value === "symbol" || typeof value === "function") return String(value).slice(0, 20);
  return Object.prototype.toString.call(value);
}

type ErrorClass = new (...args: never[]) => Error;

function checkError(error: unknown, type: ErrorClass, mention: string, what: string): void {
  assert.ok(
    error instanceof type,
    `${what}: expected ${type.name}, got ${error instanceof Error ? error.name : typeof error}: ${
      String(error)
    }`,
  );
  assert.ok(
    error.message.includes(mention),
    `${what}: the message ${JSON.stringify(error.message)} does not mention ${mention}`,
  );
}

/** Expects `fn()` to throw synchronously. */
function expectThrow(fn: () => unknown, type: ErrorClass, mention: string, what: string): void {
  let thrown: unknown = undefined;
  let threw = false;
  try {
    fn();
  } catch (error) {
    thrown = error;
    threw = true;
  }
  assert.ok(threw, `${what}: did not throw`);
  checkError(thrown, type, mention, what);
}

/** Expects `fn()` to return a Promise that rejects (never a synchronous throw). */
async function expectReject(
  fn: () => unknown,
  type: ErrorClass,
  mention: string,
  what: string,
): Promise<void> {
  let result: unknown;
  try {
    result = fn();
  } catch (error) {
    assert.fail(`${what}: threw synchronously instead of rejecting: ${String(error)}`);
  }
  assert.ok(result instanceof Promise, `${what}: did not return a Promise`);
  let rejected = false;
  try {
    await result;
  } catch (error) {
    rejected = true;
    checkError(error, type, mention, what);
  }
  assert.ok(rejected, `${what}: resolved instead of rejecting`);
}

/** [options, expected error, value the message must mention]. */
const BAD_OPTIONS: [unknown, ErrorClass, unknown][] = [
  [null, TypeError, null],
  [42, TypeError, 42],
  ["fast", TypeError, "fast"],
  [{ blocking: "yes" }, TypeError, "yes"],
  [{ blocking: 1 }, TypeError, 1],
  [{ timeout: -1 }, RangeError, -1],
  [{ timeout: -0.5 }, RangeError, -0.5],
  [{ timeout: NaN }, RangeError, NaN],
  [{ timeout: -Infinity }, RangeError, -Infinity],
  [{ timeout: "10" }, TypeError, "10"],
  [{ timeout: 10n }, TypeError, "10"],
  [{ delay: -1 }, RangeError, -1],
  [{ delay: NaN }, RangeError, NaN],
  [{ delay: Infinity }, RangeError, Infinity],
  [{ delay: {} }, TypeError, {}],
  [{ maxDelay: -3 }, RangeError, -3],
  [{ maxDelay: NaN }, RangeError, NaN],
  [{ maxDelay: Infinity }, RangeError, Infinity],
  [{ signal: {} }, TypeError, {}],
  [{ signal: "abort" }, TypeError, "abort"],
];

/** Options that are odd but valid: each must acquire a free lock. */
const ODD_GOOD_OPTIONS: unknown[] = [
  undefined,
  {},
  { timeout: 0 },
  { timeout: Infinity },
  { timeout: Number.MAX_VALUE },
  { timeout: 2 ** 53 },
  { timeout: 1e-300 },
  { delay: 0 },
  { delay: 2 ** 40, maxDelay: 2 ** 41 },
  { blocking: false, timeout: -0 },
  { signal: new AbortController().signal },
];

/** A method to call with bad arguments, and whether it returns a Promise. */
interface Method {
  name: string;
  async: boolean;
  call: (options: unknown) => unknown;
  release: () => void;
}

function processMethods(path: string): Method[] {
  const l = new InterProcessLock(path);
  const rw = new InterProcessReaderWriterLock(path);
  const fn = () => {};
  const o = (x: unknown) => x as undefined;
  const releaseGuard = (g: unknown) => (g as { release(): void }).release();
  let guard: unknown;
  return [
    { name: "acquire", async: true, call: (x) => l.acquire(o(x)), release: () => l.release() },
    {
      name: "acquireSync",
      async: false,
      call: (x) => l.acquireSync(o(x)),
      release: () => l.release(),
    },
    {
      name: "lock",
      async: true,
      call: async (x) => (guard = await l.lock(o(x))),
      release: () => releaseGuard(guard),
    },
    {
      name: "lockSync",
      async: false,
      call: (x) => (guard = l.lockSync(o(x))),
      release: () => releaseGuard(guard),
    },
    { name: "withLock", async: true, call: (x) => l.withLock(fn, o(x)), release: () => {} },
    {
      name: "acquireReadLock",
      async: true,
      call: (x) => rw.acquireReadLock(o(x)),
      release: () => rw.releaseReadLock(),
    },
    {
      name: "acquireWriteLock",
      async: true,
      call: (x) => rw.acquireWriteLock(o(x)),
      release: () => rw.releaseWriteLock(),
    },
    {
      name: "acquireReadLockSync",
      async: false,
      call: (x) => rw.acquireReadLockSync(o(x)),
      release: () => rw.releaseReadLock(),
    },
    {
      name: "acquireWriteLockSync",
      async: false,
      call: (x) => rw.acquireWriteLockSync(o(x)),
      release: () => rw.releaseWriteLock(),
    },
    {
      name: "readLock",
      async: true,
      call: async (x) => (guard = await rw.readLock(o(x))),
      release: () => releaseGuard(guard),
    },
    {
      name: "writeLock",
      async: true,
      call: async (x) => (guard = await rw.writeLock(o(x))),
      release: () => releaseGuard(guard),
    },
    {
      name: "readLockSync",
      async: false,
      call: (x) => (guard = rw.readLockSync(o(x))),
      release: () => releaseGuard(guard),
    },
    {
      name: "writeLockSync",
      async: false,
      call: (x) => (guard = rw.writeLockSync(o(x))),
      release: () => releaseGuard(guard),
    },
    {
      name: "withReadLock",
      async: true,
      call: (x) => rw.withReadLock(fn, o(x)),
      release: () => {},
    },
    {
      name: "withWriteLock",
      async: true,
      call: (x) => rw.withWriteLock(fn, o(x)),
      release: () => {},
    },
  ];
}

function threadLockMethods(l: LockFromFile): Method[] {
  const o = (x: unknown) => x as undefined;
  let guard: { release(): void } | undefined;
  return [
    { name: "acquire", async: true, call: (x) => l.acquire(o(x)), release: () => l.release() },
    {
      name: "acquireSync",
      async: false,
      call: (x) => l.acquireSync(o(x)),
      release: () => l.release(),
    },
    {
      name: "lock",
      async: true,
      call: async (x) => (guard = await l.lock(o(x))),
      release: () => guard!.release(),
    },
    {
      name: "lockSync",
      async: false,
      call: (x) => (guard = l.lockSync(o(x))),
      release: () => guard!.release(),
    },
    { name: "withLock", async: true, call: (x) => l.withLock(() => {}, o(x)), release: () => {} },
  ];
}

/** Calls every method with every bad option set, then checks that each still acquires. */
async function sweepOptions(methods: Method[], label: string): Promise<void> {
  for (const m of methods) {
    for (const [options, type, value] of BAD_OPTIONS) {
      const what = `${label}.${m.name}(${rendering(options)})`;
      const mention = rendering(value);
      if (m.async) await expectReject(() => m.call(options), type, mention, what);
      else expectThrow(() => m.call(options), type, mention, what);
    }
  }
  for (const m of methods) {
    for (const options of ODD_GOOD_OPTIONS) {
      const what = `${label}.${m.name}(${JSON.stringify(options)})`;
      const got = await m.call(options);
      assert.notEqual(got, false, `${what}: did not acquire a free lock`);
      m.release();
    }
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fasteners_bad_input_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * This process's open descriptors, counted by `ls` (Deno asks for --allow-all
 * to read /proc/self/fd itself; the test task grants --allow-run).
 */
async function openDescriptors(): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `ls /proc/${Deno.pid}/fd | wc -l`],
  }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/** Whether we run as root (who ignores file permissions); --allow-sys is not granted. */
async function isRoot(): Promise<boolean> {
  const out = await new Deno.Command("id", { args: ["-u"] }).output();
  return new TextDecoder().decode(out.stdout).trim() === "0";
}

/** Takes and releases every process lock kind on a good path. */
async function processLocksStillWork(dir: string): Promise<void> {
  const path = join(dir, "still-works.lock");
  const l = new InterProcessLock(path);
  assert.equal(l.acquireSync({ blocking: false }), true);
  l.release();
  assert.equal(await l.acquire({ timeout: 1000 }), true);
  l.release();
  const rw = new InterProcessReaderWriterLock(path);
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
  rw.releaseWriteLock();
  assert.equal(await rw.acquireReadLock({ timeout: 1000 }), true);
  assert.equal(await rw.acquireReadLock({ blocking: false }), true);
  rw.releaseReadLock();
  rw.releaseReadLock();
}

cover("InterProcessLock", "InterProcessReaderWriterLock");
Deno.test("process lock constructors refuse wrong types, empty and NUL paths with a TypeError naming the value", async () => {
  const values: [unknown, string][] = [
    ["", '""'],
    ["a\0b", "a\\u0000b"],
    ["\0", "\\u0000"],
    [42, "42"],
    [null, "null"],
    [undefined, "undefined"],
    [{}, "[object Object]"],
    [["a"], "[object Array]"],
    [Symbol("s"), "Symbol(s)"],
    [new URL("http://example.com/x.lock"), "http://example.com/x.lock"],
    [new URL("data:text/plain,x"), "data:text/plain,x"],
  ];
  for (const Class of [InterProcessLock, InterProcessReaderWriterLock]) {
    for (const [value, mention] of values) {
      expectThrow(
        () => new Class(value as string),
        TypeError,
        mention,
        `new ${Class.name}(${String(value)})`,
      );
    }
  }
  await withTempDir(processLocksStillWork);
});

Deno.test("process lock methods refuse bad options (TypeError/RangeError naming the value) and accept odd valid ones", async () => {
  await withTempDir(async (dir) => {
    const before = Deno.build.os === "linux" ? await openDescriptors() : 0;
    await sweepOptions(processMethods(join(dir, "options.lock")), "process lock");
    await processLocksStillWork(dir);
    if (Deno.build.os === "linux") {
      // One idle descriptor per live path and lock range may stay open: the
      // whole file, and the reader-writer lock's two bytes, of 2 paths; nothing more.
      assert.ok(await openDescriptors() <= before + 6, "descriptors leaked by failed calls");
    }
  });
});

Deno.test("process lock methods refuse a non-function callback with a TypeError", async () => {
  await withTempDir(async (dir) => {
    const l = new InterProcessLock(join(dir, "fn.lock"));
    const rw = new InterProcessReaderWriterLock(join(dir, "fn.lock"));
    for (const bad of [undefined, null, 42, "fn", {}]) {
      const m = rendering(bad);
      await expectReject(() => l.withLock(bad as () => void), TypeError, m, `withLock(${m})`);
      await expectReject(() => rw.withReadLock(bad as () => void), TypeError, m, `withReadLock`);
      await expectReject(() => rw.withWriteLock(bad as () => void), TypeError, m, `withWriteLock`);
    }
    await processLocksStillWork(dir);
  });
});

Deno.test("process lock releases without a hold throw LockError naming the lock", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "release.lock");
    const l = new InterProcessLock(path);
    const rw = new InterProcessReaderWriterLock(path);
    expectThrow(() => l.release(), LockError, path, "InterProcessLock.release()");
    expectThrow(() => rw.releaseReadLock(), LockError, path, "releaseReadLock()");
    expectThrow(() => rw.releaseWriteLock(), LockError, path, "releaseWriteLock()");
    // A guard released twice.
    const g = l.lockSync();
    g.release();
    expectThrow(() => g.release(), LockError, "", "guard released twice");
    await processLocksStillWork(dir);
  });
});

/** Odd lock paths: each gives a LockError naming the path on every acquisition method. */
async function oddPaths(dir: string, root: boolean): Promise<[string, string][]> {
  const folder = join(dir, "a-folder");
  await Deno.mkdir(folder);
  const file = join(dir, "a-file");
  await Deno.writeTextFile(file, "");
  const dangling = join(dir, "dangling.lock");
  await Deno.symlink(join(dir, "nowhere"), dangling);
  const loop = join(dir, "loop.lock");
  await Deno.symlink(loop, loop);
  const paths: [string, string][] = [
    [folder, "a folder"],
    [join(file, "x.lock"), "a parent that is a file"],
    [dangling, "a dangling symlink"],
    [loop, "a symlink loop"],
    [join(dir, "x".repeat(300) + ".lock"), "a name longer than NAME_MAX"],
    [join(dir, ...Array(20).fill("d".repeat(250)), "x.lock"), "a path longer than PATH_MAX"],
  ];
  if (!root) {
    const locked = join(dir, "no-permission");
    await Deno.mkdir(locked, { mode: 0o000 });
    await Deno.chmod(locked, 0o000);
    paths.push([join(locked, "x.lock"), "a folder without permission"]);
    const readOnly = join(dir, "read-only.lock");
    await Deno.writeTextFile(readOnly, "");
    await Deno.chmod(readOnly, 0o444);
    paths.push([readOnly, "a read-only file"]);
  }
  return paths;
}

if (Deno.build.os === "windows") {
  console.log(
    "odd-path sweep skipped on Windows: its symlink, NAME_MAX and PATH_MAX cases are POSIX",
  );
}

Deno.test({
  name:
    "process locks on odd paths fail with a LockError naming the path, and nothing stays locked",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const root = await isRoot();
    if (root) {
      console.log(
        "bad_input_test: running as root, so file permissions do not stop us: " +
          "the no-permission paths are skipped",
      );
    }
    await withTempDir(async (dir) => {
      const before = Deno.build.os === "linux" ? await openDescriptors() : 0;
      for (const [path, label] of await oddPaths(dir, root)) {
        for (const m of processMethods(path)) {
          const what = `${m.name}() on ${label}`;
          if (m.async) await expectReject(() => m.call(undefined), LockError, path, what);
          else expectThrow(() => m.call(undefined), LockError, path, what);
        }
      }
      // Undo the no-permission folder so the temp folder can be removed.
      await Deno.chmod(join(dir, "a-folder"), 0o755);
      try {
        await Deno.chmod(join(dir, "no-permission"), 0o755);
      } catch {
        // not made as root
      }
      await processLocksStillWork(dir);
      if (Deno.build.os === "linux") {
        assert.ok(await openDescriptors() <= before + 2, "descriptors leaked by failed opens");
      }
    });
  },
});

cover("interprocessLocked", "interprocessReadLocked", "interprocessWriteLocked");
Deno.test("process lock wrappers refuse bad paths, bad options and non-functions", async () => {
  await withTempDir(async (dir) => {
    const wrappers = {
      interprocessLocked: mod.interprocessLocked,
      interprocessReadLocked: mod.interprocessReadLocked,
      interprocessWriteLocked: mod.interprocessWriteLocked,
    };
    for (const [name, make] of Object.entries(wrappers)) {
      expectThrow(() => make(""), TypeError, '""', `${name}("")`);
      expectThrow(() => make("a\0b"), TypeError, "\\u0000", `${name}(NUL)`);
      expectThrow(() => make(7 as unknown as string), TypeError, "7", `${name}(7)`);
      const good = make(join(dir, `${name}.lock`));
      for (const bad of [undefined, null, 42, "fn"]) {
        expectThrow(
          () => good(bad as unknown as () => void),
          TypeError,
          rendering(bad),
          `${name}(path)(${rendering(bad)})`,
        );
      }
      // Bad options: refused when the wrapper is made, or (checked lazily) when it is called.
      for (const [options, type, value] of BAD_OPTIONS) {
        const what = `${name}(path, ${rendering(options)})`;
        let wrapper;
        try {
          wrapper = make(join(dir, `${name}.lock`), options as undefined);
        } catch (error) {
          checkError(error, type, rendering(value), what);
          continue;
        }
        await expectReject(() => wrapper(() => 1)(), type, rendering(value), `${what}(fn)()`);
      }
      assert.equal(await good(() => 7)(), 7);
      const folder = join(dir, `${name}-folder`);
      await Deno.mkdir(folder);
      await expectReject(() => make(folder)(() => 1)(), LockError, folder, `${name}(folder)`);
    }
    await processLocksStillWork(dir);
  });
});

cover("LockError", "LockTimeoutError");
Deno.test("LockError and LockTimeoutError accept odd arguments without throwing", () => {
  for (const Class of [LockError, LockTimeoutError]) {
    for (const message of [undefined, "", "m", 42 as unknown as string]) {
      const e = new Class(message as string);
      assert.ok(e instanceof LockError && e instanceof Error);
      assert.equal(e.name, Class.name);
      assert.equal(e.path, undefined);
    }
    const cause = new Error("inner");
    const e = new Class("m", { path: "/p", code: "ENOENT", errno: 2, cause });
    assert.equal(e.path, "/p");
    assert.equal(e.code, "ENOENT");
    assert.equal(e.errno, 2);
    assert.equal(e.cause, cause);
    assert.equal(new Class("m", {}).cause, undefined);
  }
});

/** A SharedArrayBuffer of `bytes` bytes filled by `fill`. */
function sab(bytes: number, fill?: (view: Uint8Array) => void): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(bytes);
  fill?.(new Uint8Array(buffer));
  return buffer;
}

/** Foreign buffers for `from()`: each gets a TypeError mentioning the given text. */
function foreignBuffers(good: SharedArrayBuffer): [unknown, string, string][] {
  const size = good.byteLength;
  const otherLayout = sab(size, (v) => v.set(new Uint8Array(good)));
  new Int32Array(otherLayout)[1] += 1; // the layout version word
  const otherMagic = sab(size, (v) => v.set(new Uint8Array(good)));
  new Int32Array(otherMagic)[0] ^= 0x01010101;
  const seed = 12345;
  let x = seed;
  const random = sab(size, (v) => {
    for (let i = 0; i < v.length; i++) v[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  });
  return [
    [undefined, "undefined", "undefined"],
    [null, "null", "null"],
    [42, "42", "a number"],
    ["buffer", '"buffer"', "a string"],
    [new ArrayBuffer(size), "ArrayBuffer", "an ArrayBuffer of the right size"],
    [new Int32Array(good), "Int32Array", "a view of the right buffer"],
    [sab(0), "0 bytes", "an empty buffer"],
    [sab(8), "8 bytes", "a buffer too small"],
    [sab(size + 4), `${size + 4} bytes`, "a buffer too large"],
    [sab(size * 1024), `${size * 1024} bytes`, "a huge buffer"],
    [sab(size), "not made by", "a zeroed buffer of the right size"],
    [random, "not made by", "random bytes of the right size"],
    [otherMagic, "not made by", "another primitive's magic"],
    [otherLayout, "layout version", "another layout version"],
  ];
}

/** The thread-lock surface the sweeps use, whichever module it comes from. */
interface ThreadRwLock {
  readonly buffer: SharedArrayBuffer;
  acquireReadLock(o?: unknown): Promise<boolean>;
  acquireWriteLock(o?: unknown): Promise<boolean>;
  acquireReadLockSync(o?: unknown): boolean;
  acquireWriteLockSync(o?: unknown): boolean;
  releaseReadLock(): void;
  releaseWriteLock(): void;
  readLock(o?: unknown): Promise<{ release(): void }>;
  writeLock(o?: unknown): Promise<{ release(): void }>;
  readLockSync(o?: unknown): { release(): void };
  writeLockSync(o?: unknown): { release(): void };
  withReadLock(fn: () => unknown, o?: unknown): Promise<unknown>;
  withWriteLock(fn: () => unknown, o?: unknown): Promise<unknown>;
}
interface ThreadRwLockClass {
  new (): ThreadRwLock;
  from(buffer: SharedArrayBuffer): ThreadRwLock;
}

cover("Lock");
Deno.test("Lock.from() refuses foreign buffers with a TypeError, and every attachment still works", async () => {
  const lock = new Lock();
  for (const [buffer, mention, label] of foreignBuffers(lock.buffer)) {
    expectThrow(
      () => Lock.from(buffer as SharedArrayBuffer),
      TypeError,
      mention,
      `Lock.from(${label})`,
    );
  }
  const other = Lock.from(lock.buffer);
  assert.equal(other.acquireSync({ blocking: false }), true);
  assert.equal(lock.acquireSync({ blocking: false }), false);
  other.release();
  assert.equal(await lock.acquire({ timeout: 100 }), true);
  lock.release();
});

Deno.test("Lock methods refuse bad options and bad ids, and the lock still works", async () => {
  const lock = new Lock();
  await sweepOptions(threadLockMethods(lock), "Lock");
  for (const id of [NaN, 1.5, "1", null, undefined, Infinity]) {
    expectThrow(
      () => lock.forceRelease(id as number),
      TypeError,
      rendering(id),
      `forceRelease(${rendering(id)})`,
    );
  }
  for (const id of [0, -1, 2 ** 31, -(2 ** 53), Number.MAX_SAFE_INTEGER]) {
    assert.equal(lock.forceRelease(id), false, `forceRelease(${id}) on a free lock`);
  }
  expectThrow(() => lock.release(), LockError, "not locked", "Lock.release() when free");
  for (const bad of [undefined, null, 42]) {
    await expectReject(
      () => lock.withLock(bad as unknown as () => void),
      TypeError,
      rendering(bad),
      `Lock.withLock(${rendering(bad)})`,
    );
  }
  assert.equal(lock.locked, false);
  assert.equal(lock.acquireSync({ blocking: false }), true);
  lock.release();
});

// --- Semaphore (locks/thread/semaphore.ts) ---
cover("Semaphore");
Deno.test("Semaphore refuses bad slot counts, foreign buffers, bad options and bad ids, and still works", async () => {
  for (const bad of [0, -1, 1.5, 1025, NaN, Infinity, -Infinity, 2 ** 31]) {
    expectThrow(() => new mod.Semaphore(bad), RangeError, rendering(bad), `new Semaphore(${bad})`);
  }
  for (const bad of ["3", undefined, null, 3n, {}, [2], true]) {
    expectThrow(
      () => new mod.Semaphore(bad as unknown as number),
      TypeError,
      typeof bad === "bigint" ? "3n" : rendering(bad),
      `new Semaphore(${rendering(bad)})`,
    );
  }
  const sem = new mod.Semaphore(2);
  for (const [buffer, mention, label] of foreignBuffers(sem.buffer)) {
    expectThrow(
      () => mod.Semaphore.from(buffer as SharedArrayBuffer),
      TypeError,
      mention,
      `Semaphore.from(${label})`,
    );
  }
  expectThrow(
    () => mod.Semaphore.from(new Lock().buffer),
    TypeError,
    "Semaphore",
    "Semaphore.from(a Lock's buffer)",
  );
  const o = (x: unknown) => x as undefined;
  let guard: { release(): void } | undefined;
  await sweepOptions([
    { name: "acquire", async: true, call: (x) => sem.acquire(o(x)), release: () => sem.release() },
    {
      name: "acquireSync",
      async: false,
      call: (x) => sem.acquireSync(o(x)),
      release: () => sem.release(),
    },
    {
      name: "lock",
      async: true,
      call: async (x) => (guard = await sem.lock(o(x))),
      release: () => guard!.release(),
    },
    {
      name: "lockSync",
      async: false,
      call: (x) => (guard = sem.lockSync(o(x))),
      release: () => guard!.release(),
    },
    { name: "withLock", async: true, call: (x) => sem.withLock(() => {}, o(x)), release: () => {} },
    {
      name: "withLockSync",
      async: false,
      call: (x) => sem.withLockSync(() => {}, o(x)),
      release: () => {},
    },
  ], "Semaphore");
  for (const id of [NaN, 1.5, "1", null, undefined, Infinity]) {
    expectThrow(
      () => sem.forceRelease(id as number),
      TypeError,
      rendering(id),
      `Semaphore.forceRelease(${rendering(id)})`,
    );
  }
  const other = mod.Semaphore.from(sem.buffer);
  other.acquireSync();
  for (const id of [0, -1, 2 ** 31, 2 ** 32 + other.id, -(2 ** 53), Number.MAX_SAFE_INTEGER]) {
    assert.equal(sem.forceRelease(id), 0, `Semaphore.forceRelease(${id})`);
  }
  assert.equal(sem.available, 1);
  other.release();
  expectThrow(() => sem.release(), LockError, "no slot held", "Semaphore.release() when none held");
  for (const bad of [undefined, null, 42]) {
    await expectReject(
      () => sem.withLock(bad as unknown as () => void),
      TypeError,
      rendering(bad),
      `Semaphore.withLock(${rendering(bad)})`,
    );
    expectThrow(
      () => sem.withLockSync(bad as unknown as () => void),
      TypeError,
      rendering(bad),
      `Semaphore.withLockSync(${rendering(bad)})`,
    );
  }
  assert.equal(sem.available, 2);
  assert.equal(sem.held, 0);
});
// --- end Semaphore ---

cover("ReaderWriterLock");
Deno.test({
  name: "ReaderWriterLock refuses foreign buffers and bad options, and still works",
  fn: async () => {
    const RW = ReaderWriterLock as unknown as ThreadRwLockClass;
    const lock = new RW();
    for (const [buffer, mention, label] of foreignBuffers(lock.buffer)) {
      expectThrow(
        () => RW.from(buffer as SharedArrayBuffer),
        TypeError,
        mention,
        `ReaderWriterLock.from(${label})`,
      );
    }
    // A Lock buffer is not a ReaderWriterLock buffer, and the other way round.
    expectThrow(() => RW.from(new Lock().buffer), TypeError, "", "ReaderWriterLock.from(Lock)");
    expectThrow(() => Lock.from(lock.buffer), TypeError, "", "Lock.from(ReaderWriterLock)");
    let guard: { release(): void } | undefined;
    const o = (x: unknown) => x;
    const methods: Method[] = [
      {
        name: "acquireReadLock",
        async: true,
        call: (x) => lock.acquireReadLock(o(x)),
        release: () => lock.releaseReadLock(),
      },
      {
        name: "acquireWriteLock",
        async: true,
        call: (x) => lock.acquireWriteLock(o(x)),
        release: () => lock.releaseWriteLock(),
      },
      {
        name: "acquireReadLockSync",
        async: false,
        call: (x) => lock.acquireReadLockSync(o(x)),
        release: () => lock.releaseReadLock(),
      },
      {
        name: "acquireWriteLockSync",
        async: false,
        call: (x) => lock.acquireWriteLockSync(o(x)),
        release: () => lock.releaseWriteLock(),
      },
      {
        name: "readLock",
        async: true,
        call: async (x) => (guard = await lock.readLock(o(x))),
        release: () => guard!.release(),
      },
      {
        name: "writeLock",
        async: true,
        call: async (x) => (guard = await lock.writeLock(o(x))),
        release: () => guard!.release(),
      },
      {
        name: "readLockSync",
        async: false,
        call: (x) => (guard = lock.readLockSync(o(x))),
        release: () => guard!.release(),
      },
      {
        name: "writeLockSync",
        async: false,
        call: (x) => (guard = lock.writeLockSync(o(x))),
        release: () => guard!.release(),
      },
      {
        name: "withReadLock",
        async: true,
        call: (x) => lock.withReadLock(() => {}, o(x)),
        release: () => {},
      },
      {
        name: "withWriteLock",
        async: true,
        call: (x) => lock.withWriteLock(() => {}, o(x)),
        release: () => {},
      },
    ];
    await sweepOptions(methods, "ReaderWriterLock");
    expectThrow(() => lock.releaseReadLock(), LockError, "", "releaseReadLock() when free");
    expectThrow(() => lock.releaseWriteLock(), LockError, "", "releaseWriteLock() when free");
    const other = RW.from(lock.buffer);
    assert.equal(other.acquireWriteLockSync({ blocking: false }), true);
    other.releaseWriteLock();
    assert.equal(await lock.acquireReadLock({ timeout: 100 }), true);
    lock.releaseReadLock();
  },
});

cover("locked", "readLocked", "writeLocked", "DEFAULT_LOCK_PROPERTY");
Deno.test("locked/readLocked/writeLocked refuse non-locks at once, and a missing this[key] by rejecting", async () => {
  assert.equal(mod.DEFAULT_LOCK_PROPERTY, "_lock");
  const decorators = {
    locked: mod.locked as (x: unknown) => (fn: unknown) => (...a: unknown[]) => Promise<unknown>,
    readLocked: mod.readLocked as (
      x: unknown,
    ) => (fn: unknown) => (...a: unknown[]) => Promise<unknown>,
    writeLocked: mod.writeLocked as (
      x: unknown,
    ) => (fn: unknown) => (...a: unknown[]) => Promise<unknown>,
  };
  const lock = new Lock();
  const rw = new ReaderWriterLock();
  for (const [name, decorate] of Object.entries(decorators)) {
    const good = name === "locked" ? lock : rw;
    // A number is taken as a property key (like a string), so it is checked by rejecting below.
    for (const bad of [null, true, {}, [{}], [good, 7], new ArrayBuffer(8)]) {
      expectThrow(() => decorate(bad), TypeError, "", `${name}(${rendering(bad)})`);
    }
    // The lock of the other family has no withLock / withReadLock.
    if (name !== "locked") expectThrow(() => decorate(lock), TypeError, "", `${name}(Lock)`);
    else expectThrow(() => decorate(rw), TypeError, "", `locked(ReaderWriterLock)`);
    const wrapper = decorate(good);
    for (const bad of [undefined, null, 42, "fn"]) {
      expectThrow(
        () => wrapper(bad),
        TypeError,
        rendering(bad),
        `${name}(lock)(${rendering(bad)})`,
      );
    }
    assert.equal(await wrapper((x: number) => x * 2)(21), 42);
    // By key: this[key] that is missing or not a lock rejects with a TypeError naming the key.
    // A number is neither a lock nor a property key: refused when decorating.
    assert.throws(
      () => decorate(42 as never),
      (e: Error) => e instanceof TypeError && e.message.includes("42"),
    );
    for (const key of ["_lock", "other", Symbol("k")]) {
      const method = decorate(key)(function () {
        return 1;
      });
      for (const self of [{}, { _lock: 5, other: "x" }]) {
        await expectReject(() => method.call(self), TypeError, "", `${name}(${String(key)})`);
      }
    }
  }
  assert.equal(lock.acquireSync({ blocking: false }), true);
  lock.release();
  assert.equal(rw.acquireWriteLockSync({ blocking: false }), true);
  rw.releaseWriteLock();
});

cover("tryLock");
Deno.test("tryLock refuses non-locks with a TypeError naming the value, and the locks still work", async () => {
  for (
    const bad of [undefined, null, 42, "lock", {}, { acquireSync() {} }, new ReaderWriterLock()]
  ) {
    expectThrow(
      () => mod.tryLock(bad as unknown as Lock),
      TypeError,
      rendering(bad),
      `tryLock(${rendering(bad)})`,
    );
  }
  const lock = new Lock();
  {
    using first = mod.tryLock(lock);
    using second = mod.tryLock(lock);
    assert.equal(first.acquired, true);
    assert.equal(second.acquired, false);
  }
  assert.equal(lock.locked, false);
  await withTempDir(async (dir) => {
    const ipl = new InterProcessLock(join(dir, "try.lock"));
    {
      using t = mod.tryLock(ipl);
      assert.equal(t.acquired, true);
    }
    await processLocksStillWork(dir);
  });
});

Deno.test("every export of mod.ts is covered by this sweep", () => {
  const missing = Object.keys(mod).filter((name) => !covered.has(name));
  assert.deepEqual(missing, [], `exports of mod.ts without bad-input cases: ${missing.join(", ")}`);
});

// --- InterProcessSemaphore (issue 11, process half) ----------------------------------

/** The acquisition methods of an InterProcessSemaphore, as the sweeps above take them. */
function semaphoreMethods(path: string): Method[] {
  const s = new mod.InterProcessSemaphore(path, 2);
  const o = (x: unknown) => x as undefined;
  let guard: unknown;
  const releaseGuard = () => (guard as { release(): void }).release();
  return [
    { name: "acquire", async: true, call: (x) => s.acquire(o(x)), release: () => s.release() },
    {
      name: "acquireSync",
      async: false,
      call: (x) => s.acquireSync(o(x)),
      release: () => s.release(),
    },
    {
      name: "lock",
      async: true,
      call: async (x) => (guard = await s.lock(o(x))),
      release: releaseGuard,
    },
    {
      name: "lockSync",
      async: false,
      call: (x) => (guard = s.lockSync(o(x))),
      release: releaseGuard,
    },
    { name: "withLock", async: true, call: (x) => s.withLock(() => {}, o(x)), release: () => {} },
  ];
}

cover("InterProcessSemaphore", "interprocessSemaphoreLocked");
Deno.test("InterProcessSemaphore refuses bad slots, paths and options naming the value; a folder is a LockError", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "s.sem");
    const badSlots: [unknown, ErrorClass, string][] = [
      [0, RangeError, "0"],
      [-1, RangeError, "-1"],
      [1.5, RangeError, "1.5"],
      [1025, RangeError, "1025"],
      [NaN, RangeError, "NaN"],
      [Infinity, RangeError, "Infinity"],
      ["3", TypeError, '"3"'],
      [undefined, TypeError, "undefined"],
      [null, TypeError, "null"],
      [3n, TypeError, "3n"],
    ];
    for (const [slots, type, mention] of badSlots) {
      const what = `new InterProcessSemaphore(path, ${mention})`;
      expectThrow(() => new mod.InterProcessSemaphore(path, slots as number), type, mention, what);
      expectThrow(
        () => mod.interprocessSemaphoreLocked(path, slots as number),
        type,
        mention,
        `interprocessSemaphoreLocked(path, ${mention})`,
      );
    }
    for (const [value, mention] of [["", '""'], ["a\0b", "a\\u0000b"], [42, "42"]] as const) {
      expectThrow(
        () => new mod.InterProcessSemaphore(value as string, 2),
        TypeError,
        mention,
        `new InterProcessSemaphore(${mention}, 2)`,
      );
    }
    await sweepOptions(semaphoreMethods(path), "InterProcessSemaphore");
    const s = new mod.InterProcessSemaphore(path, 2);
    for (const bad of [undefined, null, 42, "fn"]) {
      const m = rendering(bad);
      await expectReject(
        () => s.withLock(bad as unknown as () => void),
        TypeError,
        m,
        `withLock(${m})`,
      );
    }
    expectThrow(() => s.release(), LockError, "no slot held", "release() with no slot held");
    const folder = join(dir, "a-folder");
    await Deno.mkdir(folder);
    for (const m of semaphoreMethods(folder)) {
      const what = `InterProcessSemaphore(folder).${m.name}()`;
      if (m.async) await expectReject(() => m.call(undefined), LockError, folder, what);
      else expectThrow(() => m.call(undefined), LockError, folder, what);
    }
    await expectReject(
      () => mod.interprocessSemaphoreLocked(folder, 2)(() => 1)(),
      LockError,
      folder,
      "interprocessSemaphoreLocked(folder)",
    );
    // Still works: both slots free, a third refused.
    assert.equal(s.acquireSync({ blocking: false }), true);
    assert.equal(await s.acquire({ blocking: false }), true);
    assert.equal(s.acquireSync({ blocking: false }), false);
    s.release();
    s.release();
    assert.equal(s.held, 0);
    await processLocksStillWork(dir);
  });
});
// --- end InterProcessSemaphore --------------------------------------------------------
