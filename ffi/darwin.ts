// macOS: flock(2). Like Linux OFD locks, flock locks belong to the open file
// description. fcntl is not used: its third argument is variadic, which Deno
// FFI cannot pass correctly on Apple arm64 (variadic arguments go on the
// stack there). open's mode is variadic too, so it is never passed.
//
// flock has no byte ranges (`byteRanges: false`): a slot argument is ignored,
// and the process semaphore locks one file per slot (`<path>.slot-<k>`).

import type { Mechanism } from "./_mechanism.ts";
import { unixMechanism } from "./_unix.ts";

/** libSystem's symbols; errno is read at once with `__error`. */
export const DARWIN_SYMBOLS = {
  open: {
    parameters: [
      "buffer", // const char *path  (NUL-terminated)
      "i32", // int oflag  (no O_CREAT: the variadic mode is never passed)
    ],
    result: "i32", // int fd, or -1 with errno
  },
  close: {
    parameters: [
      "i32", // int fildes
    ],
    result: "i32",
  },
  flock: {
    parameters: [
      "i32", // int fd
      "i32", // int operation
    ],
    result: "i32", // 0, or -1 with errno
  },
  flock_wait: {
    name: "flock", // the same function, for a blocking LOCK_SH/LOCK_EX on a pool thread
    parameters: [
      "i32", // int fd
      "i32", // int operation
    ],
    result: "i32",
    nonblocking: true,
  },
  __error: {
    parameters: [],
    result: "pointer", // int *: this thread's errno
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The C library's file name. */
export const LIBSYSTEM = "libSystem.B.dylib";

export const O_RDWR = 0x0002; // <sys/fcntl.h>
export const O_CLOEXEC = 0x01000000; // <sys/fcntl.h>
export const LOCK_SH = 1; // <sys/fcntl.h>: shared lock
export const LOCK_EX = 2; // <sys/fcntl.h>: exclusive lock
export const LOCK_NB = 4; // <sys/fcntl.h>: don't block when locking
export const LOCK_UN = 8; // <sys/fcntl.h>: unlock

// errno values (<sys/errno.h>) and their names.
export const ENOENT = 2;
export const EINTR = 4;
export const EWOULDBLOCK = 35; // = EAGAIN on macOS
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  30: "EROFS",
  35: "EWOULDBLOCK",
  45: "ENOTSUP",
  62: "ELOOP",
  63: "ENAMETOOLONG",
  77: "ENOLCK",
};

/** The macOS mechanism over an opened libSystem. */
export function darwinMechanism(dlopen: typeof Deno.dlopen): Mechanism {
  const { open, close, flock, flock_wait, __error } = dlopen(LIBSYSTEM, DARWIN_SYMBOLS).symbols;
  return unixMechanism(
    {
      open: (path) => open(path, O_RDWR | O_CLOEXEC),
      close,
      tryLock: (fd, exclusive) => flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB),
      lockWait: (fd, exclusive) => flock(fd, exclusive ? LOCK_EX : LOCK_SH),
      lockWaitAsync: (fd, exclusive) => flock_wait(fd, exclusive ? LOCK_EX : LOCK_SH),
      unlock: (fd) => flock(fd, LOCK_UN),
      errno: () => new Deno.UnsafePointerView(__error()!).getInt32(),
    },
    { ENOENT, EINTR, busy: [EWOULDBLOCK], names: ERRNO_NAMES },
    false,
  );
}
