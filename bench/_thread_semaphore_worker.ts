// The Worker side of bench/_thread_semaphore.ts's handoff figure. Each message
// is a command; the reply is posted back with the same `op`.
//
//   attach   {sem, lock}: the buffers of a Semaphore and a Lock
//   fill     {kind}: take every slot (the Lock), reply
//   wait     {kind, mode: "sync" | "async"}: reply "waiting", acquire, read the clock (t1),
//            release, reply {t: t1}
//   release  {kind}: read the clock (t0), release one slot (the Lock), reply {t: t0}
//   drain    {kind}: release what is still held, reply
//   queue    {count}: queue `count` async waiters on the Semaphore (each takes a slot and gives
//            it back), reply "queued", then reply "queue" once all have passed
//
// Times are performance.timeOrigin + performance.now() in ms.

import { Lock, Semaphore } from "../mod.ts";

declare const self: Worker;

let sem: Semaphore | undefined;
let lock: Lock | undefined;
const clock = () => performance.timeOrigin + performance.now();

interface Command {
  op: string;
  kind?: "Semaphore" | "Lock";
  mode?: "sync" | "async";
  sem?: SharedArrayBuffer;
  lock?: SharedArrayBuffer;
  count?: number;
}

self.onmessage = async (e: MessageEvent<Command>) => {
  const c = e.data;
  const reply = (extra: Record<string, unknown> = {}) => self.postMessage({ op: c.op, ...extra });
  const it = c.kind === "Lock" ? lock! : sem!;
  switch (c.op) {
    case "attach":
      sem = Semaphore.from(c.sem!);
      lock = Lock.from(c.lock!);
      return reply();
    case "fill":
      if (c.kind === "Lock") lock!.acquireSync();
      else while (sem!.acquireSync({ blocking: false }));
      return reply();
    case "wait": {
      self.postMessage({ op: "waiting" });
      if (c.mode === "sync") it.acquireSync();
      else await it.acquire();
      const t = clock();
      it.release();
      return reply({ t });
    }
    case "release": {
      const t = clock();
      it.release();
      return reply({ t });
    }
    case "queue": {
      const all = Array.from({ length: c.count! }, async () => {
        await sem!.acquire();
        sem!.release();
      });
      self.postMessage({ op: "queued" });
      await Promise.all(all);
      return reply();
    }
    case "drain":
      if (c.kind === "Lock") {
        if (lock!.locked) lock!.release();
      } else while (sem!.held > 0) sem!.release();
      return reply();
  }
};
