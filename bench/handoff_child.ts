// One party of a cross-process handoff, driven by bench/run.ts over stdin/stdout,
// one command a line. The C (fcntl_floor.c) and Python (fasteners_party.py)
// parties speak the same protocol:
//
//   hold        acquire the lock (it is free), answer "held"
//   wait-sync   answer "waiting", then block in acquireSync(); once it returns, read the
//               clock (t1), release, answer "got <t1>"
//   wait-async  the same with `await acquire()`
//   wait-ffi-sync, wait-ffi-async   the same through bare FFI on a descriptor of its own
//               (Linux): fcntl(F_OFD_SETLKW), called directly or as a `nonblocking: true`
//               symbol on Deno's pool thread — the floor of the library's two waits
//   release     read the clock (t0), release, answer "released <t0>"
//   quit
//
// Times are integer nanoseconds since the epoch from performance.timeOrigin +
// performance.now(), a clock shared by every process on the machine, so run.ts
// takes t1 - t0 as the handoff latency. The coordinator gives the waiter a few
// milliseconds to block in the kernel before it sends "release".
//
//   deno run --allow-ffi --allow-read --allow-write bench/handoff_child.ts PATH

import { InterProcessLock } from "../mod.ts";
import {
  F_OFD_SETLK,
  F_OFD_SETLKW,
  F_UNLCK,
  F_WRLCK,
  flock,
  LINUX_SYMBOLS,
  O_CLOEXEC,
  O_RDWR,
} from "../ffi/linux.ts";

const lock = new InterProcessLock(Deno.args[0]);

/** Bare FFI on a descriptor of its own, opened on first use (Linux only). */
let bare: { wait(sync: boolean): Promise<void> | void; unlock(): void } | undefined;
function bareFfi() {
  if (bare !== undefined) return bare;
  const { open, fcntl, fcntl_wait } = Deno.dlopen("libc.so.6", {
    open: LINUX_SYMBOLS.open,
    fcntl: LINUX_SYMBOLS.fcntl,
    fcntl_wait: LINUX_SYMBOLS.fcntl_wait,
  }).symbols;
  const fd = open(new TextEncoder().encode(Deno.args[0] + "\0"), O_RDWR | O_CLOEXEC);
  const WRITE = flock(F_WRLCK), UNLOCK = flock(F_UNLCK);
  const check = (r: number) => {
    if (r !== 0) throw new Error("fcntl failed");
  };
  return bare = {
    wait: (sync) =>
      sync
        ? check(fcntl(fd, F_OFD_SETLKW, WRITE))
        : fcntl_wait(fd, F_OFD_SETLKW, WRITE).then(check),
    unlock: () => check(fcntl(fd, F_OFD_SETLK, UNLOCK)),
  };
}
const encoder = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n"));
const clock = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

say("ready");
let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let end;
  while ((end = buffered.indexOf("\n")) >= 0) {
    const command = buffered.slice(0, end);
    buffered = buffered.slice(end + 1);
    if (command === "hold") {
      lock.acquireSync();
      say("held");
    } else if (command === "wait-sync") {
      say("waiting");
      lock.acquireSync();
      const t1 = clock();
      lock.release();
      say(`got ${t1}`);
    } else if (command === "wait-async") {
      say("waiting");
      await lock.acquire();
      const t1 = clock();
      lock.release();
      say(`got ${t1}`);
    } else if (command === "wait-ffi-sync" || command === "wait-ffi-async") {
      const ffi = bareFfi();
      say("waiting");
      await ffi.wait(command === "wait-ffi-sync");
      const t1 = clock();
      ffi.unlock();
      say(`got ${t1}`);
    } else if (command === "release") {
      const t0 = clock();
      lock.release();
      say(`released ${t0}`);
    } else if (command === "quit") {
      Deno.exit(0);
    }
  }
}
