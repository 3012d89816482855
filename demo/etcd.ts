// `deno task demo:etcd`: a counter kept by several processes under one
// EtcdLock, on a local 3-member etcd cluster whose leader is killed midway.
//
//   deno task demo:etcd [--clients 4] [--increments 40] [--short]
//
// Each client process adds 1 to a counter file, `--increments` times, each
// time under the lock: read, wait a little (the work), write. Without the lock
// increments would be lost; with it, the counter ends at clients × increments
// even though the etcd leader is SIGKILLed halfway and restarted. Every write
// also carries the hold's fencing token, and the file refuses an older token
// than the last it took, as a resource guarded by a distributed lock should.
// Needs etcd 3.4 (`/usr/bin/etcd`); without it the demo says so and ends.

import { parseArgs } from "node:util";
import { join } from "node:path";
import { EtcdClient, EtcdLock } from "../etcd/mod.ts";

interface Counter {
  value: number;
  token: string;
}

if (Deno.args[0] === "client") {
  await client(Deno.args[1].split(","), Deno.args[2], Number(Deno.args[3]));
  Deno.exit(0);
}

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "4" },
    increments: { type: "string", default: "40" },
    short: { type: "boolean", default: false },
  },
});
const clients = args.short ? 2 : Number(args.clients);
const increments = args.short ? 12 : Number(args.increments);

const { etcdMissing, startEtcd } = await import("../tests/_etcd.ts");
if (etcdMissing !== undefined) {
  console.log(`demo:etcd needs etcd: ${etcdMissing}`);
  Deno.exit(0);
}

console.log("starting a 3-member etcd cluster on 127.0.0.1 …");
await using cluster = await startEtcd({ members: 3 });
const dir = await Deno.makeTempDir({ prefix: "fasteners-demo-etcd-" });
const file = join(dir, "counter.json");
await Deno.writeTextFile(file, JSON.stringify({ value: 0, token: "0" } satisfies Counter));
console.log(`members: ${cluster.endpoints.join(", ")}; leader: m${await cluster.leader()}`);
console.log(
  `${clients} client processes add 1 to ${file}, ${increments} times each, under EtcdLock "demo/counter"`,
);

const children = Array.from({ length: clients }, () =>
  new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      import.meta.filename!,
      "client",
      cluster.endpoints.join(","),
      file,
      String(increments),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn());

let done = 0;
let killed = false;
const total = clients * increments;
let halfway!: () => void;
const half = new Promise<void>((resolve) => halfway = resolve);
const reading = children.map(async (child) => {
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    done += chunk.split("\n").filter((l) => l === "+1").length;
    if (done >= total / 2) halfway();
  }
});
const chaos = (async () => {
  await half;
  const leader = await cluster.leader();
  console.log(
    `${done} of ${total} increments done: SIGKILL of the leader, m${leader} (pid ${
      cluster.pid(leader)
    })`,
  );
  await cluster.kill(leader);
  killed = true;
  console.log(`new leader: m${await cluster.leader()}; the clients carry on`);
  await cluster.restart(leader);
  console.log(`m${leader} restarted with its data dir and rejoined the cluster`);
})();

const statuses = await Promise.all(children.map((c) => c.status));
await Promise.all(reading);
await chaos;
const counter = JSON.parse(await Deno.readTextFile(file)) as Counter;
await Deno.remove(dir, { recursive: true });
const failed = statuses.filter((s) => !s.success).length;
console.log(
  `counter = ${counter.value} (expected ${total}, clients reported ${done})` +
    `${killed ? ", with the leader killed midway" : ""}`,
);
if (counter.value !== total || failed > 0) {
  console.log(`LOST INCREMENTS or failed clients (${failed})`);
  Deno.exit(1);
}
console.log("nothing lost: every increment was made under the lock, one process at a time");

/** A client process: `increments` read-wait-write rounds under the lock. */
async function client(endpoints: string[], file: string, increments: number): Promise<void> {
  await using etcd = new EtcdClient({ endpoints, ttl: 10_000 });
  const lock = new EtcdLock(etcd, "demo/counter");
  for (let i = 0; i < increments; i++) {
    await lock.withLock(async ({ fencingToken, signal }) => {
      const counter = JSON.parse(await Deno.readTextFile(file)) as Counter;
      await new Promise((r) => setTimeout(r, 5)); // the work: a lost update would show here
      signal.throwIfAborted(); // the hold can no longer be trusted: do not write
      if (fencingToken < BigInt(counter.token)) throw new Error("stale fencing token");
      const next: Counter = { value: counter.value + 1, token: String(fencingToken) };
      await Deno.writeTextFile(file, JSON.stringify(next));
    });
    console.log("+1");
  }
}
