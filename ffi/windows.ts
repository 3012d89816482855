// Windows: kernel32's CreateFileW/LockFileEx/UnlockFileEx on one byte.
//
// The lock is on byte 0 of the file, as fasteners' Windows locks take it, with
// LockFileEx: exclusive or shared, owned by the handle, so two handles in one
// process exclude each other like two processes do. Windows byte-range locks
// are mandatory: while a handle holds byte 0 exclusively, reads and writes of
// that byte through other handles fail (ERROR_LOCK_VIOLATION). The rest of the
// file is free. A `slot` k locks byte k instead (the process semaphore's
// slots, and its turnstile at byte MAX_SLOT); the file is never written, so
// the mandatory locking is never felt.
//
// Handles are opened synchronous (no FILE_FLAG_OVERLAPPED), so a LockFileEx
// without LOCKFILE_FAIL_IMMEDIATELY waits until it holds the lock, and not
// inheritable (lpSecurityAttributes NULL), so child processes never hold them.

import type { Handle, Mechanism } from "./_mechanism.ts";
import { osError } from "../errors.ts";

/** kernel32's symbols; every call's error is read at once with `GetLastError`. */
export const WINDOWS_SYMBOLS = {
  CreateFileW: {
    parameters: [
      "buffer", // LPCWSTR lpFileName  (UTF-16, NUL-terminated)
      "u32", // DWORD dwDesiredAccess
      "u32", // DWORD dwShareMode
      "pointer", // LPSECURITY_ATTRIBUTES lpSecurityAttributes  (NULL: not inheritable)
      "u32", // DWORD dwCreationDisposition
      "u32", // DWORD dwFlagsAndAttributes
      "pointer", // HANDLE hTemplateFile  (NULL)
    ],
    result: "pointer", // HANDLE, or INVALID_HANDLE_VALUE with GetLastError()
  },
  LockFileEx: {
    parameters: [
      "pointer", // HANDLE hFile
      "u32", // DWORD dwFlags
      "u32", // DWORD dwReserved  (must be 0)
      "u32", // DWORD nNumberOfBytesToLockLow
      "u32", // DWORD nNumberOfBytesToLockHigh
      "buffer", // LPOVERLAPPED lpOverlapped  (Offset/OffsetHigh: where the range starts)
    ],
    result: "i32", // BOOL: nonzero on success, 0 with GetLastError()
  },
  LockFileEx_wait: {
    name: "LockFileEx", // the same function, waiting for the lock on a pool thread
    parameters: [
      "pointer", // HANDLE hFile
      "u32", // DWORD dwFlags  (without LOCKFILE_FAIL_IMMEDIATELY)
      "u32", // DWORD dwReserved
      "u32", // DWORD nNumberOfBytesToLockLow
      "u32", // DWORD nNumberOfBytesToLockHigh
      "buffer", // LPOVERLAPPED lpOverlapped  (kept alive until the call returns)
    ],
    result: "i32", // BOOL
    nonblocking: true,
  },
  UnlockFileEx: {
    parameters: [
      "pointer", // HANDLE hFile
      "u32", // DWORD dwReserved  (must be 0)
      "u32", // DWORD nNumberOfBytesToUnlockLow
      "u32", // DWORD nNumberOfBytesToUnlockHigh
      "buffer", // LPOVERLAPPED lpOverlapped
    ],
    result: "i32", // BOOL
  },
  CloseHandle: {
    parameters: [
      "pointer", // HANDLE hObject
    ],
    result: "i32", // BOOL
  },
  GetLastError: {
    parameters: [],
    result: "u32", // DWORD: this thread's last error
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The library's file name. */
export const KERNEL32 = "kernel32.dll";

// Flag values from <winnt.h> / <fileapi.h> / <minwinbase.h>, as documented on
// learn.microsoft.com (CreateFileW, LockFileEx). Passed as u32: values with
// bit 31 set must be made unsigned (`>>> 0`), or Deno rejects them.
export const GENERIC_READ = 0x80000000; // <winnt.h>, CreateFileW dwDesiredAccess
export const GENERIC_WRITE = 0x40000000; // <winnt.h>
export const FILE_SHARE_READ = 0x1; // <winnt.h>, CreateFileW dwShareMode
export const FILE_SHARE_WRITE = 0x2; // <winnt.h>
export const FILE_SHARE_DELETE = 0x4; // <winnt.h>
export const OPEN_EXISTING = 3; // <fileapi.h>, CreateFileW dwCreationDisposition
export const OPEN_ALWAYS = 4; // <fileapi.h>: open, or create when missing; never truncates
export const FILE_ATTRIBUTE_NORMAL = 0x80; // <winnt.h>, CreateFileW dwFlagsAndAttributes
export const LOCKFILE_FAIL_IMMEDIATELY = 0x1; // <minwinbase.h>, LockFileEx dwFlags
export const LOCKFILE_EXCLUSIVE_LOCK = 0x2; // <minwinbase.h>: without it, a shared lock
/** `(HANDLE)-1`, CreateFileW's failure value, as the unsigned 64-bit pointer value. */
export const INVALID_HANDLE_VALUE = 0xffff_ffff_ffff_ffffn;

// OVERLAPPED on Windows x64 (<minwinbase.h>), little-endian:
//   ULONG_PTR Internal; ULONG_PTR InternalHigh;
//   union { struct { DWORD Offset; DWORD OffsetHigh; }; PVOID Pointer; }; HANDLE hEvent;
// On 32-bit Windows ULONG_PTR is 4 bytes (Offset 8, OffsetHigh 12, hEvent 16,
// size 20); only x64 is supported here. The kernel writes the I/O status into
// Internal/InternalHigh and only reads the rest.
export const OVERLAPPED_SIZE = 32; // sizeof(OVERLAPPED)
export const OVERLAPPED_INTERNAL = 0; // offsetof(OVERLAPPED, Internal), ULONG_PTR: status out
export const OVERLAPPED_INTERNAL_HIGH = 8; // offsetof(OVERLAPPED, InternalHigh), ULONG_PTR
export const OVERLAPPED_OFFSET = 16; // offsetof(OVERLAPPED, Offset), DWORD: range start, low
export const OVERLAPPED_OFFSET_HIGH = 20; // offsetof(OVERLAPPED, OffsetHigh), DWORD: high
export const OVERLAPPED_H_EVENT = 24; // offsetof(OVERLAPPED, hEvent), HANDLE: NULL here

/** Where the locked range starts, and how long it is: fasteners' byte. */
export const LOCK_OFFSET = 0;
export const LOCK_LENGTH = 1;

// System error codes (<winerror.h>, learn.microsoft.com "System Error Codes").
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_PATH_NOT_FOUND = 3;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_SHARING_VIOLATION = 32;
export const ERROR_LOCK_VIOLATION = 33; // LockFileEx: the range is locked by another handle
export const ERROR_NOT_LOCKED = 158; // UnlockFileEx: not locked (Wine 8.0 reports 33 instead)
export const ERROR_NAMES: Readonly<Record<number, string>> = {
  1: "ERROR_INVALID_FUNCTION",
  2: "ERROR_FILE_NOT_FOUND",
  3: "ERROR_PATH_NOT_FOUND",
  4: "ERROR_TOO_MANY_OPEN_FILES",
  5: "ERROR_ACCESS_DENIED",
  6: "ERROR_INVALID_HANDLE",
  8: "ERROR_NOT_ENOUGH_MEMORY",
  15: "ERROR_INVALID_DRIVE",
  19: "ERROR_WRITE_PROTECT",
  21: "ERROR_NOT_READY",
  32: "ERROR_SHARING_VIOLATION",
  33: "ERROR_LOCK_VIOLATION",
  50: "ERROR_NOT_SUPPORTED",
  53: "ERROR_BAD_NETPATH",
  67: "ERROR_BAD_NET_NAME",
  80: "ERROR_FILE_EXISTS",
  87: "ERROR_INVALID_PARAMETER",
  123: "ERROR_INVALID_NAME",
  158: "ERROR_NOT_LOCKED",
  161: "ERROR_BAD_PATHNAME",
  206: "ERROR_FILENAME_EXCED_RANGE",
  267: "ERROR_DIRECTORY",
  995: "ERROR_OPERATION_ABORTED",
  1450: "ERROR_NO_SYSTEM_RESOURCES",
  1920: "ERROR_CANT_ACCESS_FILE",
  1921: "ERROR_CANT_RESOLVE_FILENAME",
};

/** An OVERLAPPED whose range starts at `offset` (default LOCK_OFFSET, 0), with no event. */
export function overlapped(offset: number = LOCK_OFFSET): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(OVERLAPPED_SIZE);
  new DataView(bytes.buffer).setUint32(OVERLAPPED_OFFSET, offset, true);
  return bytes;
}

/**
 * A path for CreateFileW: UTF-16LE, NUL-terminated. A long absolute path gets
 * the `\\?\` prefix, which lifts the MAX_PATH (260) limit; that prefix turns
 * off Win32 path parsing, so it is only added to a drive or UNC path, with
 * slashes made backslashes.
 */
export function wideString(path: string): Uint16Array<ArrayBuffer> {
  let p = path;
  if (p.length >= MAX_PATH - 12) { // CreateFileW's limit for the folder part is MAX_PATH - 12
    const backslashed = p.replaceAll("/", "\\");
    if (/^[A-Za-z]:\\/.test(backslashed)) p = `\\\\?\\${backslashed}`;
    else if (/^\\\\[^\\?.]/.test(backslashed)) p = `\\\\?\\UNC\\${backslashed.slice(2)}`;
  }
  const wide = new Uint16Array(p.length + 1);
  for (let i = 0; i < p.length; i++) wide[i] = p.charCodeAt(i);
  return wide;
}
const MAX_PATH = 260; // <minwindef.h>

/** The Windows mechanism over an opened kernel32. */
export function windowsMechanism(dlopen: typeof Deno.dlopen): Mechanism {
  const { CreateFileW, LockFileEx, LockFileEx_wait, UnlockFileEx, CloseHandle, GetLastError } =
    dlopen(KERNEL32, WINDOWS_SYMBOLS).symbols;
  const ACCESS = (GENERIC_READ | GENERIC_WRITE) >>> 0;
  const SHARE = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
  // Sync calls run one at a time on this thread, and the kernel never writes
  // Offset, OffsetHigh or hEvent, so one OVERLAPPED serves them all.
  const AT_BYTE_0 = overlapped();
  const atSlot: Uint8Array<ArrayBuffer>[] = [];
  const where = (slot: number | undefined) =>
    slot === undefined ? AT_BYTE_0 : (atSlot[slot] ??= overlapped(slot));
  // A pending wait's OVERLAPPED, referenced until the pool thread's call
  // returns: the kernel writes its status there.
  const waiting = new Set<Uint8Array>();
  const fail = (operation: string, path: string, e: number) =>
    osError(operation, path, e, ERROR_NAMES[e]);
  const flags = (exclusive: boolean) => exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0;

  return {
    // An open handle keeps the file from being deleted (and its folder from
    // being removed) even when idle: close handles as soon as they are released.
    keepsIdleHandles: false,
    byteRanges: true,
    open(path: string): Handle | null {
      const handle = CreateFileW(
        wideString(path),
        ACCESS,
        SHARE,
        null,
        OPEN_ALWAYS,
        FILE_ATTRIBUTE_NORMAL,
        null,
      );
      if (handle !== null && BigInt(Deno.UnsafePointer.value(handle)) !== INVALID_HANDLE_VALUE) {
        return handle;
      }
      const e = GetLastError();
      // OPEN_ALWAYS creates a missing file, so only a missing folder gets here.
      if (e === ERROR_PATH_NOT_FOUND || e === ERROR_FILE_NOT_FOUND) return null;
      throw fail("open", path, e);
    },
    close(handle: Handle): void {
      // Windows frees a closed handle's locks "depending on available system
      // resources" (LockFileEx docs), not necessarily at once: unlock first.
      // Fails harmlessly when nothing is locked.
      UnlockFileEx(handle as Deno.PointerObject, 0, LOCK_LENGTH, 0, AT_BYTE_0);
      CloseHandle(handle as Deno.PointerObject);
    },
    tryLock(handle: Handle, exclusive: boolean, path: string, slot?: number): boolean {
      const how = flags(exclusive) | LOCKFILE_FAIL_IMMEDIATELY;
      if (LockFileEx(handle as Deno.PointerObject, how, 0, LOCK_LENGTH, 0, where(slot))) {
        return true;
      }
      const e = GetLastError();
      if (e === ERROR_LOCK_VIOLATION) return false;
      throw fail("lock", path, e);
    },
    lockSync(handle: Handle, exclusive: boolean, path: string, slot?: number): void {
      const how = flags(exclusive);
      if (LockFileEx(handle as Deno.PointerObject, how, 0, LOCK_LENGTH, 0, where(slot))) return;
      throw fail("lock", path, GetLastError());
    },
    async lock(handle: Handle, exclusive: boolean, slot?: number): Promise<boolean> {
      // GetLastError after this call would read the JS thread's error, not
      // the pool thread's: on failure the caller finds out with a tryLock.
      const at = overlapped(slot);
      waiting.add(at);
      try {
        const how = flags(exclusive);
        return await LockFileEx_wait(handle as Deno.PointerObject, how, 0, LOCK_LENGTH, 0, at) !==
          0;
      } finally {
        waiting.delete(at);
      }
    },
    unlock(handle: Handle, path: string, slot?: number): void {
      if (UnlockFileEx(handle as Deno.PointerObject, 0, LOCK_LENGTH, 0, where(slot))) return;
      throw fail("unlock", path, GetLastError());
    },
  };
}
