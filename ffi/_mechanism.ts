// The one interface between the locks and the operating system. Each OS has
// one implementation (ffi/linux.ts, ffi/darwin.ts, ffi/windows.ts), chosen
// once in ffi/mod.ts from Deno.build.os; nothing outside ffi/ knows the OS.
//
// Every lock is on the whole file (Linux OFD fcntl, macOS flock) or on byte 0
// (Windows LockFileEx), owned by the open file description / handle, so two
// handles in one process exclude each other like two processes do.
//
// A `slot` (an integer 0..MAX_SLOT) asks instead for an exclusive or shared
// lock on the one byte at that offset, where the OS has byte-range locks
// (`byteRanges`: Linux OFD fcntl, Windows LockFileEx). macOS flock has no
// ranges: there `byteRanges` is false, a slot is ignored, and the caller
// (locks/process/_semaphore_file.ts) locks a separate file per slot instead.
// Without a slot every call behaves exactly as before.

/** An open lock file: a file descriptor on Unix, a HANDLE on Windows. */
export type Handle = number | Deno.PointerObject;

/** The highest byte offset a `slot` may name (the process semaphore's turnstile). */
export const MAX_SLOT = 1024;

/** The OS operations a process lock is built from. */
export interface Mechanism {
  /**
   * Whether a `slot` locks one byte of the file (Linux, Windows). False on
   * macOS, whose flock locks whole files only: there a slot is ignored.
   */
  readonly byteRanges: boolean;
  /**
   * Whether an idle handle may stay open between acquisitions without
   * anyone noticing. True on Unix. False on Windows, where an open handle
   * keeps its file, and so its folder, from being deleted.
   */
  readonly keepsIdleHandles: boolean;
  /**
   * Opens the lock file for reading and writing, close-on-exec, without
   * truncating or writing it. Unix opens only an existing file (no O_CREAT,
   * whose mode argument is variadic); Windows creates a missing file in an
   * existing folder (CreateFileW with OPEN_ALWAYS).
   *
   * @returns the handle, or `null` when the file (Unix) or a parent folder does not exist.
   * @throws {LockError} for every other failure, naming `path` and the OS error.
   */
  open(path: string): Handle | null;
  /** Closes a handle, dropping any lock it holds. Never throws. */
  close(handle: Handle): void;
  /**
   * One attempt to lock, without waiting.
   *
   * @param slot Lock only the byte at this offset (where `byteRanges`); default: the whole lock.
   * @returns `true` when locked, `false` when another handle holds a conflicting lock.
   * @throws {LockError} for any other failure.
   */
  tryLock(handle: Handle, exclusive: boolean, path: string, slot?: number): boolean;
  /**
   * One attempt to lock the two bytes `slot` and `slot + 1` as one range, in
   * one call: true only when both are free (Linux: one F_OFD_SETLK, l_len 2).
   * Undefined where not offered (Windows, macOS): the caller locks each byte.
   *
   * @returns `true` when locked, `false` when another handle holds either byte.
   * @throws {LockError} for any other failure.
   */
  readonly tryLockPair?: (
    handle: Handle,
    exclusive: boolean,
    path: string,
    slot: number,
  ) => boolean;
  /**
   * Unlocks the two bytes that `tryLockPair` locked, in one call.
   *
   * @throws {LockError} when the OS refuses.
   */
  readonly unlockPair?: (handle: Handle, path: string, slot: number) => void;
  /**
   * Whether a `tryLock` in this mode would succeed now, asked without taking
   * anything: no other handle holds a conflicting lock (on the byte `slot`,
   * when given). Linux only (`fcntl(F_OFD_GETLK)`, one call); undefined where
   * the OS has no such test (Windows, macOS), whose callers lock and unlock.
   *
   * @throws {LockError} when the OS refuses.
   */
  readonly wouldLock?: (handle: Handle, exclusive: boolean, path: string, slot?: number) => boolean;
  /** Waits in the kernel, blocking the calling thread, until locked (`slot` as for tryLock). */
  lockSync(handle: Handle, exclusive: boolean, path: string, slot?: number): void;
  /**
   * Waits in the kernel on a pool thread (an FFI call declared
   * `nonblocking: true`), leaving the event loop free. Cannot be cancelled.
   *
   * @returns `true` when locked; `false` when the wait ended without the lock
   *   (interrupted): the caller tries again, and a `tryLock` tells it the error.
   */
  lock(handle: Handle, exclusive: boolean, slot?: number): Promise<boolean>;
  /**
   * Sleeps `ms` milliseconds (fractions too) on a pool thread (an FFI call
   * declared `nonblocking: true`), without blocking the event loop: for
   * polls that must be finer than Deno's `setTimeout`, whose smallest delay
   * takes about 2 ms. Never longer than asked, give or take the scheduling;
   * it may end early. Linux only (`usleep`); undefined elsewhere.
   */
  readonly pause?: (ms: number) => Promise<void>;
  /** Unlocks (the byte `slot`, when given). @throws {LockError} when the OS refuses. */
  unlock(handle: Handle, path: string, slot?: number): void;
}

/** Encodes a path for C: UTF-8, NUL-terminated. */
export function cString(path: string): Uint8Array<ArrayBuffer> {
  const utf8 = new TextEncoder().encode(path);
  const bytes = new Uint8Array(utf8.length + 1);
  bytes.set(utf8);
  return bytes;
}
