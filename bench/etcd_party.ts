// EtcdLock's side of the etcd benchmarks (bench/_etcd.ts), one command a line.
//
//   deno run --allow-net=127.0.0.1 bench/etcd_party.ts serve ENDPOINT NAME [TTL_MS]
//     the handoff protocol of bench/handoff_child.ts: hold / wait / release /
//     quit → held / waiting / "released <ns>" / "got <ns>".
//   deno run --allow-net=127.0.0.1 bench/etcd_party.ts queue ENDPOINT NAME K
//     K clients (K leases); on "queue" ("queued") each asks for the lock, and each time
//     one gets it, it releases it at once and prints "got <ns> <ns>" (when it
//     held it, when it began to release); "done" when all K had it.
//
// Times are `performance.timeOrigin + performance.now()` in ns, as in
// bench/run.ts's other parties.

import { EtcdClient, EtcdLock } from "../etcd/mod.ts";

const [mode, endpoint, name, k] = Deno.args;
const encoder = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n"));
const ns = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

const clients = Array.from(
  { length: mode === "queue" ? Number(k) : 1 },
  // serve's optional 4th argument is the lease ttl (ms): the idle-waiter figure uses a short one.
  () => new EtcdClient({ endpoints: endpoint, ttl: mode === "serve" && k ? Number(k) : 10_000 }),
);
const locks = clients.map((c) => new EtcdLock(c, name));

async function command(line: string): Promise<boolean> {
  const lock = locks[0];
  switch (line) {
    case "hold":
      await lock.acquire();
      say("held");
      break;
    case "wait": {
      say("waiting");
      await lock.acquire();
      const t1 = ns();
      await lock.release();
      say(`got ${t1}`);
      break;
    }
    case "release": {
      const t0 = ns();
      await lock.release();
      say(`released ${t0}`);
      break;
    }
    case "queue": {
      say("queued");
      await Promise.all(locks.map(async (l) => {
        await l.acquire();
        const got = ns();
        const releasing = ns();
        await l.release();
        say(`got ${got} ${releasing}`);
      }));
      say("done");
      break;
    }
    case "quit":
      return false;
  }
  return true;
}

// Warm up: each client's lease is granted before the first measured command.
for (const lock of locks) {
  await lock.acquire({ blocking: false });
  if (lock.acquired) await lock.release();
}
say("ready");
let buffered = "";
const decoder = new TextDecoder();
let running = true;
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  let end;
  while (running && (end = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, end).trim();
    buffered = buffered.slice(end + 1);
    if (line === "wait" || line === "queue") command(line); // replies come later
    else running = await command(line);
  }
  if (!running) break;
}
await Promise.all(clients.map((c) => c.close()));
