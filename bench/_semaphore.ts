// InterProcessSemaphore's figures (issue 11), run alone or from bench/run.ts:
//
//   deno run --allow-all bench/_semaphore.ts          prints the table
//
// 1. Uncontended acquireSync()+release() of InterProcessSemaphore(path, 4)
//    against InterProcessLock's, in this process, alternating rounds (best
//    round of each).
// 2. Handoff when every slot is busy: a holder process holds both slots of a
//    2-slot semaphore, a waiter process is blocked (acquireSync() or
//    `await acquire()`, default options) for 5–25 ms, the holder releases one
//    slot; t1 - t0 between the release and the waiter's return, on the clock
//    performance.timeOrigin + performance.now() that every process shares.
//    The parties are this file run as `party PATH SLOTS`, speaking the
//    protocol of bench/handoff_child.ts with `fill` for `hold`.
// 3. The same handoff between two Python processes with portalocker's
//    BoundedSemaphore (Debian python3-portalocker, default options: it polls
//    every 0.25 s), bench/portalocker_party.py.

import { InterProcessLock, InterProcessSemaphore } from "../mod.ts";
import { type Figure, format } from "./_report.ts";
import { type Party, spawnParty, summarize, type Summary } from "./_parties.ts";

const SECTION = "process semaphore";
const SLOTS = 2;
const PYTHON = "/usr/bin/python3";
const here = decodeURIComponent(new URL(".", import.meta.url).pathname).replace(/\/$/, "");

/** What bench/run.ts needs for its targets. */
export interface SemaphoreFigures {
  /** ns per uncontended acquireSync()+release(): the semaphore's and InterProcessLock's. */
  pair?: { semaphore: number; lock: number };
  /** Handoff summaries (ns) by waiter: "acquireSync()", "await acquire()", "portalocker". */
  handoff: Map<string, Summary>;
}

/**
 * Measures the semaphore's figures, reporting each through `add` (and what
 * cannot be measured through `skip`).
 *
 * @param add Receives each figure.
 * @param skip Receives what was skipped and why.
 * @param rounds Handoff rounds per Deno waiter kind.
 * @returns The figures bench/run.ts compares with its targets.
 */
export async function semaphoreFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
  rounds = 300,
): Promise<SemaphoreFigures> {
  const tmp = await Deno.makeTempDir({ prefix: "fasteners-bench-semaphore-" });
  const handoff = new Map<string, Summary>();
  let pair: SemaphoreFigures["pair"];
  try {
    pair = uncontended(`${tmp}/pair`);
    const command = "deno run --allow-all bench/_semaphore.ts (in process, best of 25 rounds)";
    add({
      section: SECTION,
      name: "InterProcessSemaphore acquireSync()+release()",
      value: pair.semaphore,
      unit: "ns",
      detail: `${(pair.semaphore / pair.lock).toFixed(2)}× InterProcessLock's`,
      command,
      ours: true,
    });
    add({
      section: SECTION,
      name: "InterProcessLock acquireSync()+release() (same run)",
      value: pair.lock,
      unit: "ns",
      command,
      ours: true,
    });

    const deno = (path: string) =>
      spawnParty(Deno.execPath(), [
        "run",
        "--no-lock",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        `${here}/_semaphore.ts`,
        "party",
        path,
        String(SLOTS),
      ]);
    const denoCommand = "deno run --allow-all bench/_semaphore.ts: holder and waiter processes " +
      `(bench/_semaphore.ts party FILE ${SLOTS}), waiter blocked 5–25 ms, ${rounds} rounds`;
    const samples = await handoffRounds(
      `${tmp}/handoff.sem`,
      deno,
      [
        "wait-sync",
        "wait-async",
      ],
      rounds,
      20,
    );
    for (
      const [wait, name] of [["wait-sync", "acquireSync()"], ["wait-async", "await acquire()"]]
    ) {
      const s = summarize(samples.get(wait)!);
      handoff.set(name, s);
      report(add, `InterProcessSemaphore ${name} waiter, handoff`, s, denoCommand, true);
    }

    const why = await portalockerMissing();
    if (why !== undefined) skip("portalocker BoundedSemaphore", why);
    else {
      const py = (path: string) =>
        spawnParty(PYTHON, [`${here}/portalocker_party.py`, path, String(SLOTS)]);
      const pyRounds = 16;
      const p = await handoffRounds(`${tmp}/portalocker`, py, ["wait"], pyRounds, 2);
      const s = summarize(p.get("wait")!);
      handoff.set("portalocker", s);
      report(
        add,
        "portalocker BoundedSemaphore waiter, handoff",
        s,
        "deno run --allow-all bench/_semaphore.ts: two `/usr/bin/python3 " +
          `bench/portalocker_party.py DIR ${SLOTS}\` (defaults: polls every 0.25 s), ${pyRounds} rounds`,
        false,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  return { pair, handoff };
}

function report(
  add: (f: Figure) => void,
  name: string,
  s: Summary,
  command: string,
  ours: boolean,
): void {
  add({
    section: SECTION,
    name: `${name} p50`,
    value: s.p50,
    unit: "ns",
    detail: `min ${format(s.min, "ns")}, p90 ${format(s.p90, "ns")}, p99 ${
      format(s.p99, "ns")
    }, max ${format(s.max, "ns")}, ${s.n} rounds`,
    command,
    ours,
  });
  add({ section: SECTION, name: `${name} p99`, value: s.p99, unit: "ns", command, ours });
}

/** ns per pair, best of alternating rounds. */
function uncontended(dir: string): { semaphore: number; lock: number } {
  Deno.mkdirSync(dir, { recursive: true });
  const semaphore = new InterProcessSemaphore(`${dir}/s.sem`, 4);
  const lock = new InterProcessLock(`${dir}/l.lock`);
  const N = 20_000;
  const time = (fn: () => void) => {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn();
    return (performance.now() - t0) * 1e6 / N;
  };
  const sem = () => {
    semaphore.acquireSync();
    semaphore.release();
  };
  const ipl = () => {
    lock.acquireSync();
    lock.release();
  };
  time(sem); // warm up
  time(ipl);
  let s = Infinity, l = Infinity;
  for (let round = 0; round < 25; round++) {
    s = Math.min(s, time(sem));
    l = Math.min(l, time(ipl));
  }
  return { semaphore: s, lock: l };
}

/** Rounds of hold-both / wait / release-one, the waiter kinds alternating. */
async function handoffRounds(
  path: string,
  start: (path: string) => Party,
  waits: string[],
  rounds: number,
  warmup: number,
): Promise<Map<string, number[]>> {
  const holder = start(path), waiter = start(path);
  const samples = new Map(waits.map((w) => [w, [] as number[]]));
  try {
    await holder.expect("ready");
    await waiter.expect("ready");
    for (let i = 0; i < warmup + rounds; i++) {
      for (const wait of waits) {
        await holder.ask("fill", "held");
        await waiter.ask(wait, "waiting");
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
        const t0 = BigInt((await holder.ask("release", "released ")).slice(9));
        const t1 = BigInt((await waiter.expect("got ")).slice(4));
        if (i >= warmup) samples.get(wait)!.push(Number(t1 - t0));
      }
    }
  } finally {
    await holder.quit();
    await waiter.quit();
  }
  return samples;
}

async function portalockerMissing(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import portalocker"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success
      ? undefined
      : "python3 has no portalocker (apt-get install python3-portalocker)";
  } catch {
    return `no ${PYTHON}`;
  }
}

/** A handoff party: `fill` takes every free slot, `release` gives back one. */
async function party(path: string, slots: number): Promise<void> {
  const encoder = new TextEncoder();
  const say = (line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n"));
  const clock = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
  const semaphore = new InterProcessSemaphore(path, slots);
  say("ready");
  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let end;
    while ((end = buffered.indexOf("\n")) >= 0) {
      const command = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (command === "fill") {
        while (semaphore.held < slots) semaphore.acquireSync();
        say("held");
      } else if (command === "wait-sync") {
        say("waiting");
        semaphore.acquireSync();
        const t1 = clock();
        semaphore.release();
        say(`got ${t1}`);
      } else if (command === "wait-async") {
        say("waiting");
        await semaphore.acquire();
        const t1 = clock();
        semaphore.release();
        say(`got ${t1}`);
      } else if (command === "release") {
        const t0 = clock();
        semaphore.release();
        say(`released ${t0}`);
      } else if (command === "quit") {
        Deno.exit(0);
      }
    }
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "party") {
    await party(Deno.args[1], Number(Deno.args[2]));
  } else {
    const figures: Figure[] = [];
    const r = await semaphoreFigures(
      (f) => figures.push(f),
      (what, why) => console.log(`SKIP ${what}: ${why}`),
      Number(Deno.args[0] ?? 300),
    );
    console.log("| figure | value | detail |\n|---|---|---|");
    for (const f of figures) {
      console.log(`| ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`);
    }
    if (r.pair) {
      console.log(
        `\nuncontended pair: ${(r.pair.semaphore / r.pair.lock).toFixed(2)}× InterProcessLock's`,
      );
    }
  }
}
