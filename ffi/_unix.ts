// The mechanism common to Linux and macOS: a file descriptor per handle, calls
// that return -1 and set errno, EINTR retried. Each OS supplies its calls and
// errno values (ffi/linux.ts: fcntl OFD locks; ffi/darwin.ts: flock).

import { cString, type Handle, type Mechanism } from "./_mechanism.ts";
import { osError } from "../errors.ts";

/** One OS's calls, each returning 0 (or a descriptor) on success and -1 with errno on failure. */
export interface UnixCalls {
  /** open(2) for reading and writing, close-on-exec, never creating. */
  open(path: Uint8Array<ArrayBuffer>): number;
  close(fd: number): number;
  /** One attempt to lock (the byte `slot` when given, and the OS has ranges), without waiting. */
  tryLock(fd: number, exclusive: boolean, slot?: number): number;
  /**
   * Tests for a conflicting lock without taking one (Linux's F_OFD_GETLK):
   * 0 when none, 1 when another descriptor holds one, -1 with errno on
   * failure. Absent where the OS cannot test (macOS flock).
   */
  testLock?(fd: number, exclusive: boolean, slot?: number): number;
  /** Waits on this thread until locked. */
  lockWait(fd: number, exclusive: boolean, slot?: number): number;
  /** Waits on a pool thread until locked (errno is lost). */
  lockWaitAsync(fd: number, exclusive: boolean, slot?: number): Promise<number>;
  unlock(fd: number, slot?: number): number;
  /** tryLock on the bytes `slot` and `slot + 1` as one range; absent without byte ranges. */
  tryLockPair?(fd: number, exclusive: boolean, slot: number): number;
  /** unlock of the two bytes from `slot`; absent without byte ranges. */
  unlockPair?(fd: number, slot: number): number;
  /** Sleeps `us` microseconds on a pool thread (usleep); absent where not declared. */
  pause?(us: number): Promise<number>;
  /** This thread's errno, read right after a failed call. */
  errno(): number;
}

/** One OS's errno values. */
export interface UnixErrors {
  ENOENT: number;
  EINTR: number;
  /** The errno values of a try that found the lock held elsewhere. */
  busy: readonly number[];
  names: Readonly<Record<number, string>>;
}

/** A mechanism over one Unix's calls. */
export function unixMechanism(
  calls: UnixCalls,
  errors: UnixErrors,
  byteRanges: boolean,
): Mechanism {
  const { ENOENT, EINTR, busy, names } = errors;
  const fail = (operation: string, path: string, e: number) =>
    osError(operation, path, e, names[e]);
  /** One non-blocking lock call, EINTR retried: true when locked, false when busy. */
  const attempt = <S extends number | undefined>(
    call: (fd: number, exclusive: boolean, slot: S) => number,
    fd: number,
    exclusive: boolean,
    slot: S,
    path: string,
  ): boolean => {
    let seen = 0;
    for (let n = 1;; n++) {
      if (call(fd, exclusive, slot) === 0) return true;
      const e = calls.errno();
      if (busy.includes(e)) return false;
      if (e === EINTR) continue;
      // A 10-minute soak once read ENOENT after a failed F_OFD_SETLK, which
      // fcntl never reports: errno had been overwritten on this thread between
      // the two FFI calls. Trust an error only when a second attempt repeats it.
      if (e === seen || n >= 3) throw fail("lock", path, e);
      seen = e;
    }
  };

  return {
    keepsIdleHandles: true,
    byteRanges,
    open(path: string): Handle | null {
      const fd = calls.open(cString(path));
      if (fd >= 0) return fd;
      const e = calls.errno();
      if (e === ENOENT) return null;
      throw fail("open", path, e);
    },
    close(handle: Handle): void {
      calls.close(handle as number);
    },
    tryLock(handle: Handle, exclusive: boolean, path: string, slot?: number): boolean {
      return attempt(calls.tryLock, handle as number, exclusive, slot, path);
    },
    tryLockPair: calls.tryLockPair === undefined ? undefined : (handle, exclusive, path, slot) => {
      return attempt(calls.tryLockPair!, handle as number, exclusive, slot, path);
    },
    unlockPair: calls.unlockPair === undefined ? undefined : (handle, path, slot) => {
      if (calls.unlockPair!(handle as number, slot) !== 0) {
        throw fail("unlock", path, calls.errno());
      }
    },
    wouldLock: calls.testLock === undefined ? undefined : (handle, exclusive, path, slot) => {
      const test = calls.testLock!;
      let seen = 0;
      for (let attempt = 1;; attempt++) {
        const held = test(handle as number, exclusive, slot);
        if (held >= 0) return held === 0;
        const e = calls.errno();
        if (e === EINTR) continue;
        if (e === seen || attempt >= 3) throw fail("test the lock on", path, e); // as in tryLock
        seen = e;
      }
    },
    pause: calls.pause === undefined ? undefined : async (ms) => {
      // An interrupted sleep (EINTR) only ends early: the caller tries its lock again.
      await calls.pause!(Math.max(1, Math.round(ms * 1000)));
    },
    lockSync(handle: Handle, exclusive: boolean, path: string, slot?: number): void {
      let seen = 0;
      for (let attempt = 1;; attempt++) {
        if (calls.lockWait(handle as number, exclusive, slot) === 0) return;
        const e = calls.errno();
        if (e === EINTR) continue;
        if (e === seen || attempt >= 3) throw fail("lock", path, e); // as in tryLock
        seen = e;
      }
    },
    async lock(handle: Handle, exclusive: boolean, slot?: number): Promise<boolean> {
      return await calls.lockWaitAsync(handle as number, exclusive, slot) === 0;
    },
    unlock(handle: Handle, path: string, slot?: number): void {
      if (calls.unlock(handle as number, slot) !== 0) throw fail("unlock", path, calls.errno());
    },
  };
}
