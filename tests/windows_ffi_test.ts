// The Windows mechanism (ffi/windows.ts) where the rest of the suite does not
// reach it: the OVERLAPPED offsets as the kernel reads them, paths longer than
// MAX_PATH, and Windows' own error codes. The path tests run on every OS; the
// tests that call kernel32 are ignored elsewhere (there is no kernel32 to
// call). In CI they run under Wine (tests/windows/run.sh).

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { InterProcessLock, LockError } from "../mod.ts";
import {
  ERROR_LOCK_VIOLATION,
  ERROR_NOT_LOCKED,
  KERNEL32,
  LOCKFILE_EXCLUSIVE_LOCK,
  LOCKFILE_FAIL_IMMEDIATELY,
  OVERLAPPED_OFFSET,
  OVERLAPPED_OFFSET_HIGH,
  OVERLAPPED_SIZE,
  wideString,
  WINDOWS_SYMBOLS,
  windowsMechanism,
} from "../ffi/windows.ts";
import { tempDir } from "./_helpers.ts";

const onWindows = Deno.build.os === "windows";

Deno.test("wideString() encodes UTF-16 with a final NUL and prefixes only long absolute paths", () => {
  assert.deepEqual([...wideString("C:\\é😀")], [67, 58, 92, 0xe9, 0xd83d, 0xde00, 0]);
  const folder = "x".repeat(250);
  assert.equal(decode(wideString(`C:\\${folder}`)), `\\\\?\\C:\\${folder}`);
  assert.equal(decode(wideString(`C:/${folder}/a`)), `\\\\?\\C:\\${folder}\\a`);
  assert.equal(
    decode(wideString(`\\\\host\\share\\${folder}`)),
    `\\\\?\\UNC\\host\\share\\${folder}`,
  );
  assert.equal(decode(wideString(`\\\\?\\C:\\${folder}`)), `\\\\?\\C:\\${folder}`);
  assert.equal(decode(wideString(`relative\\${folder}`)), `relative\\${folder}`);
  assert.equal(decode(wideString("C:\\short")), "C:\\short");
});

Deno.test("InterProcessLock locks a non-ASCII path", async () => {
  await using dir = await tempDir();
  await assertLocks(dir.file("verrou-é-😀.lock"));
});

/** A lock file path longer than Windows' MAX_PATH (260), in a folder longer than it too. */
const longPath = (dir: string) =>
  join(dir, "d".repeat(120), "e".repeat(120), "f".repeat(30) + ".lock");

Deno.test("InterProcessLock locks a path longer than MAX_PATH (260) in existing folders", async () => {
  await using dir = await tempDir();
  const path = longPath(dir.path);
  await Deno.mkdir(dirname(path), { recursive: true });
  await assertLocks(path);
});

if (underWine()) {
  console.log(
    "long-path creation test skipped under Wine: Deno.openSync fails past MAX_PATH there (os error 234)",
  );
}
if (!onWindows) console.log("kernel32 tests skipped: not on Windows");

Deno.test("InterProcessLock creates the missing folders of a path longer than MAX_PATH (260)", {
  // Under Wine 8.0, Deno's own file creation (Deno.openSync, which ffi/mod.ts
  // uses to create a missing lock file) fails with os error 234
  // (ERROR_MORE_DATA) in any folder whose path is longer than 260 characters.
  ignore: underWine(),
}, async () => {
  await using dir = await tempDir();
  await assertLocks(longPath(dir.path));
});

Deno.test("Windows: OVERLAPPED's Offset and OffsetHigh place the locked range as the layout says", {
  ignore: !onWindows,
}, async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const mechanism = windowsMechanism(Deno.dlopen);
  const kernel32 = Deno.dlopen(KERNEL32, WINDOWS_SYMBOLS);
  const { LockFileEx, GetLastError } = kernel32.symbols;
  const first = mechanism.open(path) as Deno.PointerObject;
  const second = mechanism.open(path) as Deno.PointerObject;
  const tryByte = (handle: Deno.PointerObject, low: number, high: number) => {
    const at = new Uint8Array(OVERLAPPED_SIZE);
    const view = new DataView(at.buffer);
    view.setUint32(OVERLAPPED_OFFSET, low, true);
    view.setUint32(OVERLAPPED_OFFSET_HIGH, high, true);
    const flags = LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY;
    if (LockFileEx(handle, flags, 0, 1, 0, at)) return "locked";
    const error = GetLastError();
    assert.equal(error, ERROR_LOCK_VIOLATION);
    return "busy";
  };
  try {
    assert.equal(tryByte(first, 5, 0), "locked");
    assert.equal(tryByte(second, 5, 0), "busy", "Offset is where the kernel reads it");
    assert.equal(tryByte(second, 5, 1), "locked", "OffsetHigh is where the kernel reads it");
    assert.equal(mechanism.tryLock(second, true, path), true, "byte 0 is not byte 5");
  } finally {
    mechanism.close(first);
    mechanism.close(second);
    kernel32.close();
  }
});

Deno.test("Windows: unlocking a handle that holds nothing is a LockError with the OS error", {
  ignore: !onWindows,
}, async () => {
  await using dir = await tempDir();
  const path = dir.file("a.lock");
  const mechanism = windowsMechanism(Deno.dlopen);
  const handle = mechanism.open(path)!;
  try {
    assert.throws(() => mechanism.unlock(handle, path), (error) => {
      assert.ok(error instanceof LockError);
      assert.equal(error.path, path);
      // Windows says ERROR_NOT_LOCKED; Wine 8.0 says ERROR_LOCK_VIOLATION.
      assert.ok([ERROR_NOT_LOCKED, ERROR_LOCK_VIOLATION].includes(error.errno!), error.message);
      return true;
    });
  } finally {
    mechanism.close(handle);
  }
});

Deno.test("Windows: a name Windows refuses is a LockError naming ERROR_INVALID_NAME", {
  ignore: !onWindows,
}, async () => {
  await using dir = await tempDir();
  const path = dir.file("a<b.lock");
  const lock = new InterProcessLock(path);
  await assert.rejects(lock.acquire(), (error) => {
    assert.ok(error instanceof LockError);
    assert.equal(error.code, "ERROR_INVALID_NAME");
    assert.match(error.message, /a<b\.lock/);
    return true;
  });
  assert.equal(lock.acquired, false);
});

/** Locks `path` with one object, checks that a second is kept out, releases. */
async function assertLocks(path: string): Promise<void> {
  const lock = new InterProcessLock(path);
  const other = new InterProcessLock(path);
  assert.equal(await lock.acquire(), true, path);
  assert.equal(other.acquireSync({ blocking: false }), false, path);
  lock.release();
  assert.equal(other.acquireSync({ blocking: false }), true, path);
  other.release();
  assert.equal((await Deno.stat(path)).isFile, true, path);
}

/** Whether this is Wine rather than Windows: Wine's ntdll exports wine_get_version. */
function underWine(): boolean {
  if (!onWindows) return false;
  try {
    Deno.dlopen("ntdll.dll", { wine_get_version: { parameters: [], result: "pointer" } }).close();
    return true;
  } catch {
    return false;
  }
}

function decode(wide: Uint16Array): string {
  assert.equal(wide.at(-1), 0, "NUL-terminated");
  return String.fromCharCode(...wide.subarray(0, -1));
}
