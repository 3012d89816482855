// Micro benchmarks of the process locks, uncontended, beside what they are
// built on: a bare FFI fcntl(F_OFD_SETLK) pair (the floor in Deno) and Deno's
// own FsFile#lockSync()/lock().
//
//   deno bench --allow-ffi --allow-read --allow-write bench/process_bench.ts
//
// bench/run.ts runs this file with --json and puts the figures in RESULTS.md.

import { InterProcessLock, InterProcessReaderWriterLock } from "../mod.ts";
import {
  F_OFD_SETLK,
  F_UNLCK,
  F_WRLCK,
  flock,
  LINUX_SYMBOLS,
  O_CLOEXEC,
  O_RDWR,
} from "../ffi/linux.ts";

const dir = Deno.makeTempDirSync({ prefix: "fasteners-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const file = (name: string) => `${dir}/${name}.lock`;
const onLinux = Deno.build.os === "linux";

// --- sync: acquire + release, uncontended -----------------------------------

const SYNC = "process lock: sync acquire+release";

if (onLinux) {
  const { fcntl } = Deno.dlopen("libc.so.6", { fcntl: LINUX_SYMBOLS.fcntl }).symbols;
  Deno.writeTextFileSync(file("ffi"), "");
  // An FsFile does not show its descriptor number: open the file through FFI.
  const { open } = Deno.dlopen("libc.so.6", { open: LINUX_SYMBOLS.open }).symbols;
  const raw = open(new TextEncoder().encode(file("ffi") + "\0"), O_RDWR | O_CLOEXEC);
  if (raw < 0) throw new Error("open failed");
  const WRITE = flock(F_WRLCK);
  const UNLOCK = flock(F_UNLCK);
  Deno.bench("bare FFI fcntl(F_OFD_SETLK) lock+unlock", {
    group: SYNC,
    baseline: true,
  }, () => {
    if (fcntl(raw, F_OFD_SETLK, WRITE) !== 0) throw new Error("fcntl lock failed");
    if (fcntl(raw, F_OFD_SETLK, UNLOCK) !== 0) throw new Error("fcntl unlock failed");
  });
}

{
  const lock = new InterProcessLock(file("ipl"));
  Deno.bench("InterProcessLock acquireSync()+release()", { group: SYNC }, () => {
    lock.acquireSync();
    lock.release();
  });
}
{
  const rw = new InterProcessReaderWriterLock(file("iprw"));
  Deno.bench("InterProcessReaderWriterLock read sync", { group: SYNC }, () => {
    rw.acquireReadLockSync();
    rw.releaseReadLock();
  });
  Deno.bench("InterProcessReaderWriterLock write sync", { group: SYNC }, () => {
    rw.acquireWriteLockSync();
    rw.releaseWriteLock();
  });
}
{
  Deno.writeTextFileSync(file("fs-sync"), "");
  const f = Deno.openSync(file("fs-sync"), { read: true, write: true });
  Deno.bench("Deno FsFile lockSync(true)+unlockSync()", { group: SYNC }, () => {
    f.lockSync(true);
    f.unlockSync();
  });
}

// --- async: await acquire + release, uncontended ------------------------------

const ASYNC = "process lock: async acquire+release";

{
  Deno.writeTextFileSync(file("fs-async"), "");
  const f = Deno.openSync(file("fs-async"), { read: true, write: true });
  Deno.bench("Deno FsFile await lock(true)+await unlock()", {
    group: ASYNC,
    baseline: true,
  }, async () => {
    await f.lock(true);
    await f.unlock();
  });
}
{
  const lock = new InterProcessLock(file("ipl-async"));
  Deno.bench("InterProcessLock await acquire()+release()", { group: ASYNC }, async () => {
    await lock.acquire();
    lock.release();
  });
}
{
  const rw = new InterProcessReaderWriterLock(file("iprw-async"));
  Deno.bench("InterProcessReaderWriterLock read async", { group: ASYNC }, async () => {
    await rw.acquireReadLock();
    rw.releaseReadLock();
  });
  Deno.bench("InterProcessReaderWriterLock write async", { group: ASYNC }, async () => {
    await rw.acquireWriteLock();
    rw.releaseWriteLock();
  });
}
