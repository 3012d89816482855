// The etcd figures: EtcdLock against a single-node etcd 3.4 whose data dir is
// on tmpfs (/dev/shm: no disk fsync in the figures, so the client's own costs
// show), started by tests/_etcd.ts on 127.0.0.1.
//
//   deno run --allow-all bench/_etcd.ts [--quick] [--only=pair|handoff|queue]
//     prints a table; bench/run.ts calls etcdFigures and etcdTargets.
//
// 1. acquire+release in one process: EtcdLock vs the floor (two bare gateway
//    txns by fetch: create-if-absent, delete) vs tooz's etcd3gw lock
//    (bench/tooz_party.py). Blocks of EtcdLock and floor pairs alternate.
// 2. Handoff between two processes, p50/p99: a holder releases, a waiter that
//    was queued gets the lock; EtcdLock ↔ EtcdLock (bench/etcd_party.ts),
//    tooz ↔ tooz, and an `etcdctl lock` waiter behind an EtcdLock holder.
//    Compared with one bare txn round trip.
// 3. Idle waiting: a waiter queued for 2 s behind a holder, its requests
//    counted by a proxy (bench/etcd_proxy.ts).
// 4. 2, 10 and 100 clients queued on one name (in 2, 2 and 4 processes),
//    through the proxy: requests and watch events per handoff, handoff p50.

import { EtcdClient, EtcdLock } from "../etcd/mod.ts";
import { type EtcdCluster, etcdMissing, startEtcd } from "../tests/_etcd.ts";
import { type Figure, format } from "./_report.ts";
import { type Party, spawnParty, summarize, type Summary } from "./_parties.ts";
import { startProxy } from "./etcd_proxy.ts";

const PYTHON = "/usr/bin/python3";
const ETCDCTL = "/usr/bin/etcdctl";
const benchDir = decodeURIComponent(new URL(".", import.meta.url).pathname).replace(/\/$/, "");
const deno = Deno.execPath();
const PARTY = ["run", "--allow-net=127.0.0.1", `${benchDir}/etcd_party.ts`];

/** What bench/run.ts checks the targets against (ns; undefined when not measured). */
export interface EtcdResults {
  pair?: number;
  floorPair?: number;
  toozPair?: number;
  txn?: Summary;
  handoff: Map<string, Summary>;
  idle?: { requests: Record<string, number>; seconds: number };
  queued: Map<
    number,
    {
      p50: number;
      requestsPerHandoff: number;
      keepalivesPerHandoff: number;
      eventsPerHandoff: number;
      handoffs: number;
    }
  >;
}

export const SECTION_PAIR = "etcd lock: acquire+release (single-node etcd 3.4 on tmpfs)";
export const SECTION_HANDOFF =
  "etcd lock: handoff between two processes (waiter queued, holder releases)";
export const SECTION_QUEUE = "etcd lock: clients queued on one name";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowNs = () => (performance.timeOrigin + performance.now()) * 1e6;

async function python(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const out = await new Deno.Command(PYTHON, { args, stdout: "piped", stderr: "piped" }).output();
  const d = new TextDecoder();
  return { ok: out.success, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

async function toozMissing(): Promise<string | undefined> {
  try {
    const r = await python(["-c", "import tooz, etcd3gw"]);
    return r.ok
      ? undefined
      : `${PYTHON} cannot import tooz and etcd3gw (apt-get install python3-tooz python3-etcd3gw)`;
  } catch {
    return `no ${PYTHON}`;
  }
}

async function etcdctlMissing(): Promise<string | undefined> {
  try {
    await Deno.stat(ETCDCTL);
    return undefined;
  } catch {
    return `no ${ETCDCTL} (apt-get install etcd-client)`;
  }
}

/** Waits (bounded) until `count` keys are under `name/`. */
async function queued(cluster: EtcdCluster, name: string, count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await cluster.keys(`${name}/`)).length !== count) {
    if (Date.now() > deadline) throw new Error(`${name}: never ${count} keys`);
    await sleep(5);
  }
}

/** Runs every etcd measurement, reporting each figure through `add`. */
export async function etcdFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
  options: { quick?: boolean; only?: string } = {},
): Promise<EtcdResults> {
  const results: EtcdResults = { handoff: new Map(), queued: new Map() };
  if (etcdMissing !== undefined) {
    skip("etcd figures", etcdMissing);
    return results;
  }
  const quick = options.quick ?? false;
  const tooz = await toozMissing();
  if (tooz !== undefined) skip("tooz etcd3gw figures", tooz);
  const etcdctl = await etcdctlMissing();
  if (etcdctl !== undefined) skip("etcdctl lock handoff", etcdctl);

  await using cluster = await startEtcd({ members: 1, tmpfs: true });
  const endpoint = cluster.endpoints[0];
  const cmd = "deno run --allow-all bench/_etcd.ts";

  const part = (n: string) => options.only === undefined || options.only === n;

  // --- 1. acquire+release -------------------------------------------------------
  if (part("pair")) {
    await using client = new EtcdClient({ endpoints: endpoint, ttl: 10_000 });
    const lock = new EtcdLock(client, "bench/pair");
    const key = btoa("bench/floor");
    const txn = async (body: unknown) => {
      const r = await fetch(endpoint + "/v3/kv/txn", {
        method: "POST",
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`txn: ${r.status} ${await r.text()}`);
      await r.json();
    };
    const create = {
      compare: [{ key, target: "CREATE", result: "EQUAL", create_revision: "0" }],
      success: [{ request_put: { key, value: "" } }],
    };
    const remove = { success: [{ request_delete_range: { key } }] };
    // One EtcdLock pair, then one floor pair, and so on: both see the same
    // noise. The figures are per-pair medians (this machine is shared: means
    // follow whoever else runs), with the means beside them.
    const N = quick ? 200 : 600, WARMUP = 50;
    const oursS: number[] = [], floorS: number[] = [], txns: number[] = [];
    const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    let requests = 0;
    for (let i = -WARMUP; i < N; i++) {
      const before = total(client.requestCounts());
      let t = performance.now();
      await lock.acquire();
      await lock.release();
      if (i >= 0) oursS.push((performance.now() - t) * 1e6);
      if (i >= 0) requests += total(client.requestCounts()) - before;
      t = performance.now();
      await txn(create);
      const t1 = performance.now();
      await txn(remove);
      if (i >= 0) {
        txns.push((t1 - t) * 1e6);
        floorS.push((performance.now() - t) * 1e6);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const ours = summarize(oursS), floor = summarize(floorS);
    results.pair = ours.p50;
    results.floorPair = floor.p50;
    results.txn = summarize(txns);
    const n = N;
    add({
      section: SECTION_PAIR,
      name: "EtcdLock acquire()+release() p50",
      value: results.pair,
      unit: "ns",
      detail: `mean ${format(mean(oursS), "ns")}, p99 ${format(ours.p99, "ns")}, ${
        (requests / n).toFixed(2)
      } requests per pair, ${n} pairs alternating with the floor's`,
      command: cmd,
      ours: true,
    });
    add({
      section: SECTION_PAIR,
      name: "floor: two bare gateway txns (create-if-absent, delete) by fetch p50",
      value: results.floorPair,
      unit: "ns",
      detail: `mean ${format(mean(floorS), "ns")}, p99 ${format(floor.p99, "ns")}, ${n} pairs`,
      command: cmd,
      ours: false,
    });
    add({
      section: SECTION_PAIR,
      name: "one bare txn round trip (create-if-absent) p50",
      value: results.txn.p50,
      unit: "ns",
      detail: `p99 ${format(results.txn.p99, "ns")}, ${n} txns`,
      command: cmd,
      ours: false,
    });
  }
  if (tooz === undefined && part("pair")) {
    const n = quick ? 50 : 200;
    const r = await python([
      `${benchDir}/tooz_party.py`,
      "pairs",
      endpoint,
      "bench/tooz-pair",
      String(n),
    ]);
    if (!r.ok) skip("tooz acquire+release", r.stderr.slice(-500));
    else {
      const p = JSON.parse(r.stdout) as { pairNs: number; meanNs: number; version: string };
      results.toozPair = p.pairNs;
      add({
        section: SECTION_PAIR,
        name: `tooz ${p.version} etcd3gw lock acquire()+release() p50`,
        value: p.pairNs,
        unit: "ns",
        detail: `mean ${format(p.meanNs, "ns")}, ${n} pairs`,
        command: `/usr/bin/python3 bench/tooz_party.py pairs ENDPOINT NAME ${n}`,
        ours: false,
      });
    }
  }

  // --- 2. handoff between two processes --------------------------------------------
  if (part("handoff")) {
    const rounds = quick ? 20 : 100;
    // etcd serves a watch that starts at a past revision from its "unsynced"
    // group, which catches up every 100 ms: a waiter queued for less than that
    // is woken by the next sync, not by the delete. Give each waiter 150-250 ms.
    const settle = () => 150 + Math.random() * 100;
    const record = (name: string, samples: number[], ours: boolean, detail = "") => {
      const s = summarize(samples);
      results.handoff.set(name, s);
      add({
        section: SECTION_HANDOFF,
        name: `${name} p50`,
        value: s.p50,
        unit: "ns",
        detail: `min ${format(s.min, "ns")}, p90 ${format(s.p90, "ns")}, p99 ${
          format(s.p99, "ns")
        }, max ${format(s.max, "ns")}, ${s.n} rounds${detail}`,
        command: cmd,
        ours,
      });
      add({
        section: SECTION_HANDOFF,
        name: `${name} p99`,
        value: s.p99,
        unit: "ns",
        command: cmd,
        ours,
      });
    };
    // EtcdLock ↔ EtcdLock, and an etcdctl waiter behind an EtcdLock holder, round by round.
    const holder = spawnParty(deno, [...PARTY, "serve", endpoint, "bench/handoff"]);
    const waiter = spawnParty(deno, [...PARTY, "serve", endpoint, "bench/handoff"]);
    const ours: number[] = [], ctl: number[] = [];
    try {
      await holder.expect("ready");
      await waiter.expect("ready");
      for (let i = 0; i < rounds + 5; i++) {
        await holder.ask("hold", "held");
        await waiter.ask("wait", "waiting");
        await queued(cluster, "bench/handoff", 2);
        await sleep(settle()); // its watch is open
        const t0 = Number((await holder.ask("release", "released ")).slice(9));
        const t1 = Number((await waiter.expect("got ")).slice(4));
        if (i >= 5) ours.push(t1 - t0);
        if (etcdctl !== undefined || i >= rounds / 2 + 5) continue;
        await holder.ask("hold", "held");
        const sample = await etcdctlWaiter(cluster, endpoint, holder, settle);
        if (i >= 5) ctl.push(sample);
      }
    } finally {
      await holder.quit();
      await waiter.quit();
    }
    record("EtcdLock → EtcdLock", ours, true);
    if (ctl.length > 0) {
      record("EtcdLock → etcdctl lock", ctl, false, " (etcdctl's line read through a pipe)");
    }
    if (tooz === undefined) {
      const a = spawnParty(PYTHON, [
        `${benchDir}/tooz_party.py`,
        "serve",
        endpoint,
        "bench/tooz-handoff",
      ]);
      const b = spawnParty(PYTHON, [
        `${benchDir}/tooz_party.py`,
        "serve",
        endpoint,
        "bench/tooz-handoff",
      ]);
      const samples: number[] = [];
      try {
        await a.expect("ready");
        await b.expect("ready");
        for (let i = 0; i < (quick ? 10 : 40) + 2; i++) {
          await a.ask("hold", "held");
          await b.ask("wait", "waiting");
          await sleep(settle()); // tooz's waiter retries with back-off: vary its phase
          const t0 = Number((await a.ask("release", "released ")).slice(9));
          const t1 = Number((await b.expect("got ")).slice(4));
          if (i >= 2) samples.push(t1 - t0);
        }
      } finally {
        await a.quit();
        await b.quit();
      }
      record("tooz → tooz", samples, false, " (the waiter polls with back-off)");
    }
  }

  // --- 3 and 4: through the counting proxy -----------------------------------------
  if (part("queue")) {
    await using proxy = startProxy(endpoint);
    // 3. Idle waiter.
    await using holderClient = new EtcdClient({ endpoints: endpoint, ttl: 10_000 });
    const holdLock = new EtcdLock(holderClient, "bench/idle");
    await holdLock.acquire();
    // ttl 2 s: a keep-alive every ~667 ms, so the 2 s show that they are counted.
    const waiter = spawnParty(deno, [...PARTY, "serve", proxy.url, "bench/idle", "2000"]);
    try {
      await waiter.expect("ready");
      await waiter.ask("wait", "waiting");
      await queued(cluster, "bench/idle", 2);
      const deadline = Date.now() + 10_000;
      while (!proxy.snapshot().requests["/v3/watch"] && Date.now() < deadline) await sleep(5);
      await sleep(50);
      proxy.reset();
      await sleep(2_000);
      const counts = proxy.snapshot();
      results.idle = { requests: counts.requests, seconds: 2 };
      const detail = Object.entries(counts.requests).map(([p, n]) => `${p} ${n}`).join(", ") ||
        "none";
      console.error(
        `  idle waiter, requests in 2 s: ${counts.total} (${detail}); watch events ${counts.watchEvents}`,
      );
      await holdLock.release();
      await waiter.expect("got ");
    } finally {
      await waiter.quit();
    }

    // 4. Clients queued on one name.
    const setups: [number, number, number][] = quick
      ? [[2, 2, 10], [10, 2, 2], [100, 4, 1]]
      : [[2, 2, 40], [10, 2, 8], [100, 4, 2]];
    for (const [clients, processes, rounds] of setups) {
      const name = `bench/queue-${clients}`;
      const lock = new EtcdLock(holderClient, name);
      const parties: Party[] = [];
      try {
        for (let p = 0; p < processes; p++) {
          parties.push(
            spawnParty(deno, [...PARTY, "queue", proxy.url, name, String(clients / processes)]),
          );
        }
        for (const p of parties) await p.expect("ready");
        const handoffs: number[] = [];
        let requests = 0, keepalives = 0, events = 0, count = 0;
        for (let r = 0; r < rounds; r++) {
          await lock.acquire();
          const before = proxy.snapshot().requests["/v3/watch"] ?? 0;
          for (const p of parties) await p.ask("queue", "queued");
          await queued(cluster, name, clients + 1);
          // Every waiter has opened its watch (bounded).
          const deadline = Date.now() + 10_000;
          while (
            (proxy.snapshot().requests["/v3/watch"] ?? 0) - before < clients &&
            Date.now() < deadline
          ) await sleep(5);
          await sleep(150); // the watches are synced (see settle above)
          proxy.reset();
          const t0 = nowNs();
          await lock.release();
          const got: [number, number][] = [];
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            Promise.all(parties.map(async (p) => {
              for (;;) {
                const line = await p.expect("");
                if (line === "done") return;
                const [, a, b] = line.split(" ");
                got.push([Number(a), Number(b)]);
              }
            })),
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`${name}: a round took over 60 s`)),
                60_000,
              );
            }),
          ]).finally(() => clearTimeout(timer));
          const counts = proxy.snapshot();
          got.sort((a, b) => a[0] - b[0]);
          let previous = t0;
          for (const [gotAt, releasedAt] of got) {
            handoffs.push(gotAt - previous);
            previous = releasedAt;
          }
          const ka = counts.requests["/v3/lease/keepalive"] ?? 0;
          requests += counts.total - ka;
          keepalives += ka;
          events += counts.watchEvents;
          count += got.length;
        }
        const s = summarize(handoffs);
        const figure = {
          p50: s.p50,
          requestsPerHandoff: requests / count,
          keepalivesPerHandoff: keepalives / count,
          eventsPerHandoff: events / count,
          handoffs: count,
        };
        results.queued.set(clients, figure);
        add({
          section: SECTION_QUEUE,
          name: `${clients} clients queued: handoff p50`,
          value: s.p50,
          unit: "ns",
          detail: `p99 ${format(s.p99, "ns")}; per handoff: ${
            figure.requestsPerHandoff.toFixed(2)
          } requests + ${figure.keepalivesPerHandoff.toFixed(2)} keep-alives, ${
            figure.eventsPerHandoff.toFixed(2)
          } watch events; ${count} handoffs, ${processes} processes`,
          command: cmd,
          ours: true,
        });
      } finally {
        for (const p of parties) await p.quit();
      }
    }
  }
  return results;
}

/**
 * One handoff from an EtcdLock holder (holding now) to an `etcdctl lock`
 * waiter: ns from the holder's release to the waiter printing its key.
 */
async function etcdctlWaiter(
  cluster: EtcdCluster,
  endpoint: string,
  holder: Party,
  settle: () => number,
): Promise<number> {
  const child = new Deno.Command(ETCDCTL, {
    args: [`--endpoints=${endpoint}`, "lock", "bench/handoff"],
    env: { ETCDCTL_API: "3" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    await queued(cluster, "bench/handoff", 2);
    await sleep(settle());
    const t0 = Number((await holder.ask("release", "released ")).slice(9));
    const { value } = await lines.read();
    const t1 = nowNs();
    if (value === undefined) throw new Error("etcdctl lock ended without a line");
    return t1 - t0;
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await lines.cancel().catch(() => {});
    // etcdctl's session lease is revoked on SIGTERM; wait for its key to go.
    await queued(cluster, "bench/handoff", 0);
  }
}

if (import.meta.main) {
  const figures: Figure[] = [];
  const quick = Deno.args.includes("--quick");
  const only = Deno.args.find((a) => a.startsWith("--only="))?.slice(7);
  const results = await etcdFigures(
    (f) => {
      figures.push(f);
      console.error(`  ${f.name}: ${format(f.value, f.unit)}${f.detail ? ` (${f.detail})` : ""}`);
    },
    (what, why) => console.error(`  SKIP ${what}: ${why}`),
    { quick, only },
  );
  console.log("| group | what | figure | detail |\n| --- | --- | --- | --- |");
  for (const f of figures) {
    console.log(`| ${f.section} | ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`);
  }
  console.log("\n| target | measured | |\n| --- | --- | --- |");
  for (const t of etcdTargets(results)) {
    console.log(
      `| ${t.target} | ${t.measured} | ${
        t.met === undefined ? "—" : t.met ? "met" : "**missed**"
      } |`,
    );
  }
  if (results.idle !== undefined) {
    const { requests } = results.idle;
    console.log(
      `| ${SECTION_QUEUE} | idle waiter: requests in 2 s (ttl 2 s) | ${
        Object.values(requests).reduce((a, b) => a + b, 0)
      } | ${Object.entries(requests).map(([p, n]) => `${p} ${n}`).join(", ") || "none"} |`,
    );
  }
}

/** One row of bench/run.ts's targets table. */
export interface EtcdTarget {
  target: string;
  measured: string;
  met: boolean | undefined;
}

/** The issue's etcd targets, judged on `r` (rows for bench/run.ts's targets block). */
export function etcdTargets(r: EtcdResults): EtcdTarget[] {
  const rows: EtcdTarget[] = [];
  const ratio = (target: string, a: number | undefined, b: number | undefined, limit: number) =>
    rows.push({
      target,
      measured: a === undefined || b === undefined
        ? "not measured (see skips)"
        : `${format(a, "ns")} / ${format(b, "ns")} = ${(a / b).toFixed(2)}×`,
      met: a === undefined || b === undefined ? undefined : a / b <= limit,
    });
  ratio(
    "EtcdLock acquire+release ≤ 1.3 × the floor (two bare gateway txns)",
    r.pair,
    r.floorPair,
    1.3,
  );
  ratio("EtcdLock acquire+release ≤ 0.5 × tooz etcd3gw lock", r.pair, r.toozPair, 0.5);
  const ours = r.handoff.get("EtcdLock → EtcdLock")?.p50;
  ratio("EtcdLock handoff p50 ≤ 3 × one bare txn round trip (p50)", ours, r.txn?.p50, 3);
  ratio(
    "EtcdLock handoff p50 ≤ 0.1 × tooz handoff p50",
    ours,
    r.handoff.get("tooz → tooz")?.p50,
    0.1,
  );
  const idle = r.idle?.requests;
  const others = idle === undefined
    ? undefined
    : Object.entries(idle).filter(([p]) => p !== "/v3/lease/keepalive");
  rows.push({
    target: "idle waiter (2 s, ttl 2 s): no request but keep-alives",
    measured: idle === undefined
      ? "not measured (see skips)"
      : Object.entries(idle).map(([p, n]) => `${p} ${n}`).join(", ") || "0 requests",
    met: others === undefined ? undefined : others.length === 0,
  });
  const two = r.queued.get(2);
  for (const n of [10, 100]) {
    const q = r.queued.get(n);
    rows.push({
      target: `${n} clients queued: requests and watch events per handoff constant, ` +
        `handoff p50 ≤ 1.5 × the 2-client figure`,
      measured: q === undefined || two === undefined
        ? "not measured (see skips)"
        : `${q.requestsPerHandoff.toFixed(2)} requests, ${q.eventsPerHandoff.toFixed(2)} events ` +
          `(2 clients: ${two.requestsPerHandoff.toFixed(2)}, ${
            two.eventsPerHandoff.toFixed(2)
          }); ` +
          `p50 ${format(q.p50, "ns")} / ${format(two.p50, "ns")} = ${
            (q.p50 / two.p50).toFixed(2)
          }×`,
      met: q === undefined || two === undefined ? undefined : q.p50 <= 1.5 * two.p50 &&
        q.requestsPerHandoff <= 1.5 * two.requestsPerHandoff && q.eventsPerHandoff <= 1.1,
    });
  }
  return rows;
}
