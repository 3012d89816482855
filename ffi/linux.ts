// Linux: glibc's open/close/fcntl with open-file-description (OFD) locks.
//
// OFD locks (F_OFD_SETLK, Linux 3.15+) belong to the open file description,
// not to the process: two descriptors opened separately exclude each other
// even in one process, closing another descriptor of the same file does not
// drop the lock, and they conflict with classic POSIX record locks, which is
// what Python's fasteners takes with fcntl.lockf() — so Deno and Python
// programs can share one lock file.

import type { Mechanism } from "./_mechanism.ts";
import { unixMechanism } from "./_unix.ts";

/** glibc's symbols; every call's errno is read at once with `__errno_location`. */
export const LINUX_SYMBOLS = {
  open: {
    parameters: [
      "buffer", // const char *pathname  (NUL-terminated)
      "i32", // int flags  (the variadic mode_t is never passed: no O_CREAT)
    ],
    result: "i32", // int fd, or -1 with errno
  },
  close: {
    parameters: [
      "i32", // int fd
    ],
    result: "i32",
  },
  fcntl: {
    parameters: [
      "i32", // int fd
      "i32", // int cmd
      "buffer", // struct flock *lock  (variadic in C: safe on Linux x86-64/aarch64 only)
    ],
    result: "i32", // 0, or -1 with errno
  },
  fcntl_wait: {
    name: "fcntl", // the same function, for F_OFD_SETLKW on a pool thread
    parameters: [
      "i32", // int fd
      "i32", // int cmd
      "buffer", // struct flock *lock
    ],
    result: "i32",
    nonblocking: true,
  },
  usleep: {
    parameters: [
      "u32", // useconds_t usec
    ],
    result: "i32", // 0, or -1 with errno (EINTR)
    nonblocking: true, // sleeps on a pool thread: a finer timer than setTimeout's ~2 ms ticks
  },
  __errno_location: {
    parameters: [],
    result: "pointer", // int *: this thread's errno
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The C library's file name. */
export const LIBC = "libc.so.6";

export const O_RDWR = 0o2; // <asm-generic/fcntl.h>
export const O_CLOEXEC = 0o2000000; // <asm-generic/fcntl.h> (same on x86-64 and aarch64)
export const F_OFD_GETLK = 36; // <asm-generic/fcntl.h>, Linux 3.15
export const F_OFD_SETLK = 37; // <asm-generic/fcntl.h>
export const F_OFD_SETLKW = 38; // <asm-generic/fcntl.h>
export const F_RDLCK = 0; // <asm-generic/fcntl.h>
export const F_WRLCK = 1; // <asm-generic/fcntl.h>
export const F_UNLCK = 2; // <asm-generic/fcntl.h>
export const SEEK_SET = 0; // <unistd.h>

// struct flock on x86-64 and aarch64 (LP64, 64-bit off_t), little-endian:
//   short l_type; short l_whence; /* 4 bytes padding */ off_t l_start; off_t l_len; pid_t l_pid;
export const FLOCK_SIZE = 32; // sizeof(struct flock)
export const FLOCK_L_TYPE = 0; // offsetof(struct flock, l_type), short
export const FLOCK_L_WHENCE = 2; // offsetof(struct flock, l_whence), short
export const FLOCK_L_START = 8; // offsetof(struct flock, l_start), off_t
export const FLOCK_L_LEN = 16; // offsetof(struct flock, l_len), off_t: 0 = to the end, whole file
export const FLOCK_L_PID = 24; // offsetof(struct flock, l_pid), pid_t: must be 0 for OFD locks

// errno values (<asm-generic/errno-base.h>, <asm-generic/errno.h>) and their names.
export const EINTR = 4;
export const ENOENT = 2;
export const EAGAIN = 11;
export const EACCES = 13;
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  26: "ETXTBSY",
  30: "EROFS",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  37: "ENOLCK",
  40: "ELOOP",
  95: "EOPNOTSUPP",
  116: "ESTALE",
};

/**
 * A `struct flock` for the whole file (l_whence SEEK_SET, l_start 0, l_len 0,
 * l_pid 0), or, given a `slot`, for the `length` bytes (default 1) from that offset.
 */
export function flock(type: number, slot?: number, length = 1): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(FLOCK_SIZE);
  const view = new DataView(bytes.buffer);
  view.setInt16(FLOCK_L_TYPE, type, true);
  view.setInt16(FLOCK_L_WHENCE, SEEK_SET, true);
  view.setBigInt64(FLOCK_L_START, BigInt(slot ?? 0), true);
  view.setBigInt64(FLOCK_L_LEN, slot === undefined ? 0n : BigInt(length), true);
  view.setInt32(FLOCK_L_PID, 0, true);
  return bytes;
}

/** The Linux mechanism over an opened libc. */
export function linuxMechanism(dlopen: typeof Deno.dlopen): Mechanism {
  const { open, close, fcntl, fcntl_wait, usleep, __errno_location } =
    dlopen(LIBC, LINUX_SYMBOLS).symbols;
  // The kernel only reads these, so one of each serves every call on every thread.
  const WRITE = flock(F_WRLCK);
  const READ = flock(F_RDLCK);
  const UNLOCK = flock(F_UNLCK);
  // F_OFD_GETLK writes the conflicting lock into its struct: one scratch
  // struct per isolate (calls are synchronous), refilled from a template per call.
  const probe = flock(F_UNLCK);
  const probed = new DataView(probe.buffer);
  // Per-slot structs, made on first use: [write, read, unlock] for byte k.
  const slots: (readonly Uint8Array<ArrayBuffer>[])[] = [];
  const at = (slot: number, i: number) =>
    (slots[slot] ??= [flock(F_WRLCK, slot), flock(F_RDLCK, slot), flock(F_UNLCK, slot)])[i];
  // Two-byte structs from byte k, made on first use: [write, read, unlock].
  const pairs: (readonly Uint8Array<ArrayBuffer>[])[] = [];
  const pairAt = (slot: number, i: number) =>
    (pairs[slot] ??= [F_WRLCK, F_RDLCK, F_UNLCK].map((type) => flock(type, slot, 2)))[i];
  const lockArg = (exclusive: boolean, slot: number | undefined) =>
    slot === undefined ? (exclusive ? WRITE : READ) : at(slot, exclusive ? 0 : 1);
  return unixMechanism(
    {
      open: (path) => open(path, O_RDWR | O_CLOEXEC),
      close,
      tryLock: (fd, exclusive, slot) => fcntl(fd, F_OFD_SETLK, lockArg(exclusive, slot)),
      testLock: (fd, exclusive, slot) => {
        probe.set(lockArg(exclusive, slot));
        if (fcntl(fd, F_OFD_GETLK, probe) !== 0) return -1;
        return probed.getInt16(FLOCK_L_TYPE, true) === F_UNLCK ? 0 : 1;
      },
      lockWait: (fd, exclusive, slot) => fcntl(fd, F_OFD_SETLKW, lockArg(exclusive, slot)),
      lockWaitAsync: (fd, exclusive, slot) =>
        fcntl_wait(fd, F_OFD_SETLKW, lockArg(exclusive, slot)),
      tryLockPair: (fd, exclusive, slot) => fcntl(fd, F_OFD_SETLK, pairAt(slot, exclusive ? 0 : 1)),
      unlockPair: (fd, slot) => fcntl(fd, F_OFD_SETLK, pairAt(slot, 2)),
      pause: (us) => usleep(us),
      unlock: (fd, slot) => fcntl(fd, F_OFD_SETLK, slot === undefined ? UNLOCK : at(slot, 2)),
      errno: () => new Deno.UnsafePointerView(__errno_location()!).getInt32(),
    },
    { ENOENT, EINTR, busy: [EAGAIN, EACCES], names: ERRNO_NAMES },
    true,
  );
}
