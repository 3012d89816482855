// A Worker of bench/_rw_scaling.ts: on {kind, control, rw, word}, waits for GO,
// then takes and releases read holds back to back until STOP, and replies
// with how many it took.
//   kind "rw"   ReaderWriterLock acquireReadLockSync() + releaseReadLock()
//   kind "cas"  the layout-2 read path alone: CAS +1 on one shared word (after
//               checking it has no writer bits), then Atomics.sub 1: the floor
//               of any protocol whose every read writes one shared word

import { ReaderWriterLock } from "../mod.ts";

const GO = 0, STOP = 1;

interface Command {
  kind: "rw" | "cas";
  control: SharedArrayBuffer;
  rw: SharedArrayBuffer;
  word: SharedArrayBuffer;
}

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((e: MessageEvent<Command>) => void) | null;
};

let rw: ReaderWriterLock | undefined;
let rwBuffer: SharedArrayBuffer | undefined;

scope.onmessage = (e) => {
  const c = e.data;
  const control = new Int32Array(c.control);
  if (rwBuffer !== c.rw) {
    rw = ReaderWriterLock.from(c.rw);
    rwBuffer = c.rw;
  }
  const lock = rw!;
  const word = new Int32Array(c.word);
  scope.postMessage({ op: "ready", id: lock.id });
  Atomics.wait(control, GO, 0);
  let count = 0;
  if (c.kind === "rw") {
    while (Atomics.load(control, STOP) === 0) {
      for (let i = 0; i < 256; i++) {
        lock.acquireReadLockSync();
        lock.releaseReadLock();
      }
      count += 256;
    }
  } else {
    while (Atomics.load(control, STOP) === 0) {
      for (let i = 0; i < 256; i++) {
        for (;;) {
          const s = Atomics.load(word, 0);
          if ((s & ~0xffff) === 0 && Atomics.compareExchange(word, 0, s, s + 1) === s) break;
        }
        Atomics.sub(word, 0, 1);
      }
      count += 256;
    }
  }
  scope.postMessage({ op: "done", count });
};
