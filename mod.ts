/**
 * Cross-platform locks for threads and processes, for Deno: the counterpart
 * of Python's `fasteners`, and more.
 *
 * - {@linkcode InterProcessLock} and {@linkcode InterProcessReaderWriterLock}
 *   lock a file between processes, Workers, lock objects and async tasks
 *   (Linux OFD `fcntl` locks, macOS `flock`, Windows `LockFileEx`, called
 *   through `Deno.dlopen`; they need `--allow-ffi`).
 * - {@linkcode Lock} and {@linkcode ReaderWriterLock} live in a
 *   `SharedArrayBuffer` and are shared between Workers by posting their
 *   `buffer`; they need no permission.
 * - {@linkcode Semaphore} admits at most N holders at once across Workers,
 *   the same way.
 * - {@linkcode locked}, {@linkcode readLocked}, {@linkcode writeLocked} and
 *   {@linkcode tryLock} are fasteners' decorators and helper.
 *
 * Every lock has the same shape: `acquire()` / `acquireSync()` / `release()`,
 * guards for `using` and `await using`, `with…` callbacks, options in
 * milliseconds, and typed errors ({@linkcode LockError},
 * {@linkcode LockTimeoutError}).
 *
 * @example
 * ```ts
 * import { InterProcessLock } from "@fasteners/fasteners";
 *
 * const lock = new InterProcessLock(await Deno.makeTempFile());
 * {
 *   await using _held = await lock.lock({ timeout: 1000 });
 *   // Only one process at a time runs this.
 * }
 * ```
 *
 * @module
 */

export type { AcquireOptions } from "./locks/_options.ts";
export { LockError, type LockErrorOptions, LockTimeoutError } from "./errors.ts";
export type { Guard, LockedWrapper } from "./locks/guard.ts";
export { InterProcessLock, interprocessLocked } from "./locks/process/interprocess_lock.ts";
export {
  InterProcessReaderWriterLock,
  interprocessReadLocked,
  interprocessWriteLocked,
} from "./locks/process/interprocess_reader_writer_lock.ts";
// InterProcessSemaphore (issue 11, process half)
export { InterProcessSemaphore } from "./locks/process/interprocess_semaphore.ts";
// end InterProcessSemaphore
export { Lock } from "./locks/thread/lock.ts";
export { ReaderWriterLock } from "./locks/thread/reader_writer_lock.ts";
export { Semaphore } from "./locks/thread/semaphore.ts";
export {
  DEFAULT_LOCK_PROPERTY,
  interprocessSemaphoreLocked,
  locked,
  type LockedMethod,
  readLocked,
  type TryLock,
  tryLock,
  type TryLockable,
  type WithLock,
  type WithReadWriteLock,
  writeLocked,
} from "./locks/decorators.ts";
