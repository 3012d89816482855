// Struct layouts and constants of every OS's symbol table. The pure checks run
// on every OS; on Linux with a C compiler the values are also checked against
// the system headers.

import assert from "node:assert/strict";
import * as linux from "../ffi/linux.ts";
import * as darwin from "../ffi/darwin.ts";
import * as windows from "../ffi/windows.ts";
import { cString } from "../ffi/_mechanism.ts";
import { tempDir } from "./_helpers.ts";

Deno.test("Linux struct flock is 32 bytes with the fields where LP64 glibc puts them", () => {
  const bytes = linux.flock(linux.F_WRLCK);
  assert.equal(bytes.byteLength, linux.FLOCK_SIZE);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getInt16(linux.FLOCK_L_TYPE, true), 1);
  assert.equal(view.getInt16(linux.FLOCK_L_WHENCE, true), linux.SEEK_SET);
  assert.equal(view.getBigInt64(linux.FLOCK_L_START, true), 0n);
  assert.equal(view.getBigInt64(linux.FLOCK_L_LEN, true), 0n);
  assert.equal(view.getInt32(linux.FLOCK_L_PID, true), 0);
  assert.deepEqual([...linux.flock(linux.F_RDLCK)], new Array(32).fill(0));
  assert.equal(linux.flock(linux.F_UNLCK)[0], 2);
  assert.deepEqual(
    [linux.F_OFD_GETLK, linux.F_OFD_SETLK, linux.F_OFD_SETLKW, linux.O_RDWR, linux.O_CLOEXEC],
    [36, 37, 38, 2, 0x80000],
  );
  assert.equal(linux.ERRNO_NAMES[linux.EAGAIN], "EAGAIN");
});

Deno.test("macOS flock constants are those of <sys/fcntl.h>", () => {
  assert.deepEqual(
    [darwin.LOCK_SH, darwin.LOCK_EX, darwin.LOCK_NB, darwin.LOCK_UN],
    [1, 2, 4, 8],
  );
  assert.deepEqual([darwin.O_RDWR, darwin.O_CLOEXEC, darwin.EWOULDBLOCK], [2, 0x1000000, 35]);
  assert.equal(darwin.ERRNO_NAMES[darwin.EWOULDBLOCK], "EWOULDBLOCK");
  // flock(2) is not variadic: two plain int parameters.
  assert.deepEqual(darwin.DARWIN_SYMBOLS.flock.parameters, ["i32", "i32"]);
});

Deno.test("symbol tables pass paths as NUL-terminated UTF-8 and never a variadic mode", () => {
  assert.deepEqual([...cString("é/a")], [0xc3, 0xa9, 0x2f, 0x61, 0]);
  assert.deepEqual(linux.LINUX_SYMBOLS.open.parameters, ["buffer", "i32"]);
  assert.deepEqual(darwin.DARWIN_SYMBOLS.open.parameters, ["buffer", "i32"]);
  assert.equal(linux.LINUX_SYMBOLS.fcntl_wait.nonblocking, true);
  assert.equal(darwin.DARWIN_SYMBOLS.flock_wait.nonblocking, true);
});

Deno.test("Windows x64 OVERLAPPED is 32 bytes, zeroed, with Offset at 16 and hEvent at 24", () => {
  assert.deepEqual(
    [
      windows.OVERLAPPED_SIZE,
      windows.OVERLAPPED_INTERNAL,
      windows.OVERLAPPED_INTERNAL_HIGH,
      windows.OVERLAPPED_OFFSET,
      windows.OVERLAPPED_OFFSET_HIGH,
      windows.OVERLAPPED_H_EVENT,
    ],
    [32, 0, 8, 16, 20, 24],
  );
  assert.deepEqual([...windows.overlapped()], new Array(32).fill(0), "byte 0, no event");
  assert.deepEqual([windows.LOCK_OFFSET, windows.LOCK_LENGTH], [0, 1]);
  assert.deepEqual(
    [windows.LOCKFILE_FAIL_IMMEDIATELY, windows.LOCKFILE_EXCLUSIVE_LOCK, windows.OPEN_ALWAYS],
    [1, 2, 4],
  );
  assert.equal((windows.GENERIC_READ | windows.GENERIC_WRITE) >>> 0, 0xc0000000);
  assert.equal(windows.ERROR_LOCK_VIOLATION, 33);
  assert.equal(windows.INVALID_HANDLE_VALUE, 2n ** 64n - 1n);
});

const cc = Deno.build.os === "linux" ? await compiler() : undefined;
if (Deno.build.os !== "linux") console.log("layout check against the C headers skipped: not Linux");

async function compiler(): Promise<string | undefined> {
  for (const name of ["cc", "gcc", "clang"]) {
    try {
      const out = await new Deno.Command(name, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      if (out.success) return name;
    } catch {
      // not installed
    }
  }
  console.log("layout check against the C headers skipped: no C compiler (cc, gcc, clang)");
  return undefined;
}

Deno.test({
  name: "Linux constants and struct flock offsets match the system headers",
  ignore: cc === undefined,
  async fn() {
    await using dir = await tempDir();
    const source = dir.file("layout.c");
    await Deno.writeTextFile(
      source,
      `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu\\n", sizeof(struct flock), offsetof(struct flock, l_type),
         offsetof(struct flock, l_whence), offsetof(struct flock, l_start),
         offsetof(struct flock, l_len), offsetof(struct flock, l_pid));
  printf("%d %d %d %d %d %d %d %d\\n", F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_RDLCK, F_WRLCK,
         F_UNLCK, O_RDWR, O_CLOEXEC);
  printf("%d %d %d %d\\n", EINTR, ENOENT, EAGAIN, EACCES);
  return 0;
}
`,
    );
    const binary = dir.file("layout");
    const built = await new Deno.Command(cc!, { args: ["-o", binary, source] }).output();
    assert.ok(built.success, new TextDecoder().decode(built.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(binary).output()).stdout);
    assert.equal(
      out,
      [
        [
          linux.FLOCK_SIZE,
          linux.FLOCK_L_TYPE,
          linux.FLOCK_L_WHENCE,
          linux.FLOCK_L_START,
          linux.FLOCK_L_LEN,
          linux.FLOCK_L_PID,
        ],
        [
          linux.F_OFD_GETLK,
          linux.F_OFD_SETLK,
          linux.F_OFD_SETLKW,
          linux.F_RDLCK,
          linux.F_WRLCK,
          linux.F_UNLCK,
          linux.O_RDWR,
          linux.O_CLOEXEC,
        ],
        [linux.EINTR, linux.ENOENT, linux.EAGAIN, linux.EACCES],
      ].map((row) => row.join(" ") + "\n").join(""),
    );
  },
});
