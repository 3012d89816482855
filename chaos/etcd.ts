// Chaos run of the etcd locks on a real 3-member etcd cluster.
//
//   deno task chaos:etcd [--seconds 30] [--seed N] [--clients 4] [--ttl 2000] [--sabotage]
//
// Client processes (chaos/etcd_child.ts) take EtcdLock and EtcdReaderWriterLock
// in a loop, with timeouts, aborts and single tries, and write their fencing
// token to a token-checking store while they hold an exclusive lock. Meanwhile
// this supervisor SIGKILLs random clients (holders more often than not,
// replacing them), SIGSTOPs clients for up to 2.5 ttl (past their lease), and
// SIGKILLs etcd members, one at a time, restarting them after a while.
//
// Checks, from the clients' journals, the store's log and etcd itself:
// - no stale write accepted: per resource, no accepted write carries a token
//   below one accepted before it (the store's log, judged here again);
// - no two live holds of one lock at once: a hold lives from its acquisition
//   to its release, its signal's abort, its process's SIGKILL or SIGSTOP;
//   writer and mutex holds overlap nothing;
// - fencing tokens increase from one exclusive hold to the next;
// - no "X" line (an error the client did not expect);
// - when the run ends: every client closes, every member runs, and no key
//   is left under chaos/ (killed clients' leases expire), and every lock can
//   be taken again.
// --sabotage makes the store accept every write and the clients take one
// mutex hold in four without the lock: the checks must then fail (exit 1).

import { parseArgs } from "node:util";
import { EtcdClient, EtcdLock, EtcdReaderWriterLock } from "../etcd/mod.ts";
import { startEtcd } from "../tests/_etcd.ts";
import { etcdMissing } from "../tests/_etcd.ts";
import { FencingStore } from "../tests/fixtures/etcd_driver.ts";
import { now, rng } from "./_common.ts";
import { MUTEXES, RWLOCK } from "./_etcd.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    seed: { type: "string" },
    clients: { type: "string", default: "4" },
    ttl: { type: "string", default: "2000" },
    sabotage: { type: "boolean", default: false },
  },
});
const seconds = Number(args.seconds);
const seed = Number(args.seed ?? Date.now() % 1_000_000);
const nClients = Number(args.clients);
const ttl = Number(args.ttl);
const sabotage = args.sabotage;
if (!(seconds > 0) || !(nClients >= 1) || !(ttl >= 2000)) {
  console.error(
    "usage: chaos/etcd.ts [--seconds N] [--seed N] [--clients N] [--ttl MS>=2000] [--sabotage]",
  );
  Deno.exit(2);
}
if (etcdMissing !== undefined) {
  console.log(`chaos:etcd skipped: ${etcdMissing}`);
  Deno.exit(0);
}
const random = rng(seed);
/** Mean pause between two faults (ms). */
const FAULT_EVERY_MS = 400;
/** A member stays down this long at most before its restart (ms). */
const MEMBER_DOWN_MAX_MS = 2_000;
console.log(
  `chaos:etcd: ${seconds} s, seed ${seed}, ${nClients} clients, ttl ${ttl} ms${
    sabotage ? ", SABOTAGE (the checks must fail)" : ""
  }`,
);

interface Hold {
  id: string;
  pid: number;
  lock: string;
  mode: "m" | "r" | "w";
  token: bigint;
  /** When the acquisition was asked for (Q) and obtained (A). */
  asked: number;
  start: number;
  /** End of the hold's live part (E, L, SIGKILL or SIGSTOP of its process). */
  end?: number;
  /** What ended it: E, L, kill, pause, a signal sent while its line was in the pipe, the run's end. */
  endedBy?: string;
  /** Its process was SIGSTOPped while it asked: its A line may come after a later holder's. */
  suspect: boolean;
}

interface ClientProcess {
  process: Deno.ChildProcess;
  pid: number;
  alive: boolean;
  paused: boolean;
  pauses: { from: number; to: number }[];
  /** When this supervisor sent it SIGSTOP or SIGKILL (now(), just before sending). */
  stops: number[];
  killed: boolean;
  lastAsked: number;
  open: Map<string, Hold>;
  reading: Promise<void>;
  closed: boolean;
}

const violations: string[] = [];
const holds: Hold[] = [];
const outcomes = new Map<string, number>();
const totals = {
  clientKills: 0,
  killedHolders: 0,
  pauses: 0,
  pausesPastTtl: 0,
  memberKills: 0,
  lost: 0,
};
const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

await using cluster = await startEtcd({ members: 3 });
await using store = new FencingStore({ fencing: !sabotage });
const clients: ClientProcess[] = [];
const childUrl = new URL("./etcd_child.ts", import.meta.url).href;

function spawnClient(): ClientProcess {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      childUrl,
      // Each client starts on a different member (failover moves it on).
      [
        ...cluster.endpoints.slice(clients.length % 3),
        ...cluster.endpoints.slice(0, clients.length % 3),
      ]
        .join(","),
      String(ttl),
      String(Math.floor(random() * 2 ** 31)),
      store.url,
      sabotage ? "sabotage" : "",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const client: ClientProcess = {
    process,
    pid: process.pid,
    alive: true,
    paused: false,
    pauses: [],
    stops: [],
    killed: false,
    lastAsked: 0,
    open: new Map(),
    reading: Promise.resolve(),
    closed: false,
  };
  client.reading = readJournal(client);
  process.status.then(() => client.alive = false);
  clients.push(client);
  return client;
}

async function readJournal(client: ClientProcess): Promise<void> {
  let buffered = "";
  for await (const chunk of client.process.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end;
    while ((end = buffered.indexOf("\n")) >= 0) {
      record(client, buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
    }
  }
}

function record(client: ClientProcess, line: string): void {
  const f = line.split(" ");
  switch (f[0]) {
    case "Q":
      client.lastAsked = Number(f[3]);
      break;
    case "A": {
      const start = Number(f[5]);
      const hold: Hold = {
        id: f[1],
        pid: client.pid,
        lock: f[2],
        mode: f[3] as Hold["mode"],
        token: BigInt(f[4]),
        asked: client.lastAsked,
        start,
        suspect: client.pauses.some((p) => p.to >= client.lastAsked && p.from <= start),
      };
      holds.push(hold);
      count(`held ${hold.mode}`);
      // A line still in the pipe when the process was stopped or killed: the
      // hold's live part ended at that signal.
      const cut = client.stops.filter((t) => t >= start);
      if (cut.length > 0) hold.end = Math.min(...cut);
      else if (client.paused || client.killed) hold.end = start;
      else client.open.set(hold.id, hold);
      if (hold.end !== undefined) hold.endedBy = "signal with its A line in the pipe";
      break;
    }
    case "E":
    case "L": {
      const hold = client.open.get(f[1]);
      if (f[0] === "L") {
        totals.lost++;
        count(`lost ${f[2]}`);
      }
      if (hold === undefined) break;
      const at = Number(f[0] === "E" ? f[2] : f[3]);
      hold.end = Math.min(hold.end ?? Infinity, at);
      hold.endedBy = f[0];
      client.open.delete(hold.id);
      break;
    }
    case "O":
      count(`${f[2]} ${f[3]}`);
      break;
    case "X":
      violations.push(`client ${client.pid}: unexpected error: ${line.slice(2)}`);
      break;
    case "ready":
      break;
    case "closed":
      client.closed = true;
      break;
    default:
      violations.push(`client ${client.pid}: unknown journal line ${JSON.stringify(line)}`);
  }
}

/** Ends the live part of every open hold of `client` at `at`. */
function endOpenHolds(client: ClientProcess, at: number, why: string): number {
  let n = 0;
  for (const hold of client.open.values()) {
    hold.end = Math.min(hold.end ?? Infinity, at);
    hold.endedBy = why;
    n++;
  }
  client.open.clear();
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pending = new Set<Promise<unknown>>();
const track = (p: Promise<unknown>) => {
  pending.add(p);
  p.finally(() => pending.delete(p));
};

for (let i = 0; i < nClients; i++) spawnClient();

// --- faults ----------------------------------------------------------------------

let memberDown = false;
const runUntil = now() + seconds * 1000;
while (now() < runUntil) {
  await sleep(random() * 2 * FAULT_EVERY_MS);
  const live = clients.filter((c) => c.alive && !c.paused && !c.closed);
  const dice = random();
  if (dice < 0.4 && live.length > 0) {
    // Kill a client, a holder two times in three when there is one.
    const holders = live.filter((c) => c.open.size > 0);
    const victim = holders.length > 0 && random() < 0.67
      ? holders[Math.floor(random() * holders.length)]
      : live[Math.floor(random() * live.length)];
    const at = now();
    victim.stops.push(at);
    victim.killed = true;
    victim.process.kill("SIGKILL");
    victim.alive = false;
    totals.clientKills++;
    if (endOpenHolds(victim, at, "SIGKILL") > 0) totals.killedHolders++;
    spawnClient();
  } else if (dice < 0.7 && live.length > 0) {
    // Pause a client, sometimes past its lease.
    const victim = live[Math.floor(random() * live.length)];
    const ms = (0.2 + random() * 2.3) * ttl;
    const at = now();
    victim.stops.push(at);
    victim.paused = true;
    victim.process.kill("SIGSTOP");
    endOpenHolds(victim, at, "SIGSTOP");
    totals.pauses++;
    if (ms > ttl) totals.pausesPastTtl++;
    track((async () => {
      await sleep(ms);
      victim.pauses.push({ from: at, to: now() });
      try {
        victim.process.kill("SIGCONT");
      } catch {
        // killed meanwhile
      }
      victim.paused = false;
    })());
  } else if (!memberDown) {
    // SIGKILL a member (the leader one time in two) and restart it later.
    memberDown = true;
    totals.memberKills++;
    track((async () => {
      const victim = random() < 0.5 ? await cluster.leader() : Math.floor(random() * 3);
      await cluster.kill(victim);
      await sleep(300 + random() * (MEMBER_DOWN_MAX_MS - 300));
      await cluster.restart(victim);
      memberDown = false;
    })());
  }
}

// --- the end: every client stops and closes, every member runs --------------------

await Promise.all(pending);
for (const client of clients) {
  if (!client.alive) continue;
  await client.process.stdin.getWriter().write(new TextEncoder().encode("stop\n")).catch(() => {});
}
const closeBy = now() + 4 * ttl + 10_000;
for (const client of clients) {
  if (!client.alive) continue;
  const left = closeBy - now();
  const status = await Promise.race([
    client.process.status,
    sleep(Math.max(0, left)).then(() => undefined),
  ]);
  if (status === undefined || !client.closed) {
    if (!sabotage) violations.push(`client ${client.pid} did not stop and close in time`);
    try {
      client.process.kill("SIGKILL");
    } catch {
      // ended
    }
  }
}
for (const client of clients) {
  await client.process.status;
  await client.reading.catch(() => {});
  await client.process.stdin.close().catch(() => {});
  if (client.open.size > 0) endOpenHolds(client, now(), "the run's end");
}

// Keys: killed clients' leases expire within ttl; wait for that, bounded.
const keysBy = now() + ttl + 5_000;
let keys = await cluster.keys("chaos/");
while (keys.length > 0 && now() < keysBy) {
  await sleep(200);
  keys = await cluster.keys("chaos/");
}
if (keys.length > 0) {
  violations.push(`keys left at the end: ${keys.map((k) => k.key).join(", ")}`);
}
{
  await using client = new EtcdClient({ endpoints: cluster.endpoints, ttl });
  for (const name of MUTEXES) {
    if (!(await new EtcdLock(client, name).acquire({ timeout: 2 * ttl }))) {
      violations.push(`${name} cannot be taken at the end`);
    } else await new EtcdLock(client, name).release().catch(() => {});
  }
  const rw = new EtcdReaderWriterLock(client, RWLOCK);
  if (!(await rw.acquireWriteLock({ timeout: 2 * ttl }))) {
    violations.push(`${RWLOCK} cannot be write-locked at the end`);
  } else await rw.releaseWriteLock();
}

// --- checks ------------------------------------------------------------------------

// 1. No stale write accepted, judged from the store's log in arrival order.
let staleAccepted = 0;
let staleRejected = 0;
{
  const highest = new Map<string, bigint>();
  for (const w of store.writes) {
    const top = highest.get(w.resource);
    const stale = top !== undefined && w.token < top;
    if (stale && w.accepted) {
      staleAccepted++;
      if (staleAccepted <= 5) {
        violations.push(
          `stale write accepted: ${w.resource} token ${w.token} by ${w.writer} after ${top}`,
        );
      }
    }
    if (stale && !w.accepted) staleRejected++;
    if (w.accepted && (top === undefined || w.token > top)) highest.set(w.resource, w.token);
  }
  if (staleAccepted > 5) violations.push(`… ${staleAccepted} stale writes accepted in all`);
}

// 2. No two live holds at once; 3. tokens increase from one exclusive hold to the next.
let overlaps = 0;
let tokenOrder = 0;
for (const lock of [...MUTEXES, RWLOCK]) {
  const of = holds.filter((h) => h.lock === lock && !h.suspect).sort((a, b) => a.start - b.start);
  for (let i = 0; i < of.length; i++) {
    const a = of[i];
    const aEnd = a.end ?? Infinity;
    for (let j = i + 1; j < of.length && of[j].start < aEnd; j++) {
      const b = of[j];
      if (a.mode === "r" && b.mode === "r") continue;
      overlaps++;
      if (overlaps <= 5) {
        violations.push(
          `two live holds of ${lock}: ${a.id} (${a.mode}, token ${a.token}, ${a.start.toFixed(1)}–${
            aEnd.toFixed(1)
          }, ended by ${a.endedBy ?? "nothing"}) and ${b.id} (${b.mode}, token ${b.token}, from ${
            b.start.toFixed(1)
          })`,
        );
      }
    }
  }
  const exclusive = of.filter((h) => h.mode !== "r");
  for (let i = 1; i < exclusive.length; i++) {
    if (exclusive[i].token <= exclusive[i - 1].token) {
      tokenOrder++;
      if (tokenOrder <= 5) {
        violations.push(
          `fencing token did not increase on ${lock}: ${exclusive[i - 1].id} had ${
            exclusive[i - 1].token
          }, then ${exclusive[i].id} got ${exclusive[i].token}`,
        );
      }
    }
  }
}
if (overlaps > 5) violations.push(`… ${overlaps} overlapping pairs in all`);
if (tokenOrder > 5) violations.push(`… ${tokenOrder} token order violations in all`);

const accepted = store.writes.filter((w) => w.accepted).length;
console.log(
  `holds: ${holds.length} (${
    holds.filter((h) => h.suspect).length
  } asked across a pause, not ordered); ` +
    `store writes: ${store.writes.length}, accepted ${accepted}, stale rejected ${staleRejected}, stale accepted ${staleAccepted}`,
);
console.log(
  `faults: ${totals.clientKills} client SIGKILLs (${totals.killedHolders} of holders), ` +
    `${totals.pauses} SIGSTOP pauses (${totals.pausesPastTtl} past the ttl), ` +
    `${totals.memberKills} member SIGKILLs (restarted); holds lost (signal aborted): ${totals.lost}`,
);
console.log(
  `outcomes: ${[...outcomes].sort().map(([k, v]) => `${k} ${v}`).join(", ")}`,
);
console.log(`overlapping live holds: ${overlaps}; token order violations: ${tokenOrder}`);
if (violations.length > 0) {
  console.log(`${violations.length} VIOLATION(S):`);
  for (const v of violations) console.log(`  ${v}`);
  if (sabotage) console.log("(sabotage run: the checks saw the planted failures, as they must)");
  await cluster.close();
  await store[Symbol.asyncDispose]();
  Deno.exit(1);
}
if (sabotage) {
  console.log("sabotage run found NO violation: the checks cannot see planted failures");
  await cluster.close();
  await store[Symbol.asyncDispose]();
  Deno.exit(3);
}
console.log(`chaos:etcd OK (seed ${seed}): 0 violations`);
