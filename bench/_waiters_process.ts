// Many async waiters on one process lock (issue 13), run alone or from bench/run.ts:
//
//   deno run --allow-all bench/_waiters_process.ts [ROUNDS]     prints the table
//
// 1. N = 1, 32, 1,000 async waiters in one process on one lock file that a
//    holder process holds (tests/fixtures/waiting_room_holder.ts and
//    waiting_room_waiter.ts): the time for all N to pass through once the
//    holder releases (first acquisition to last release, each holding across
//    one macrotask), the threads the wait added to the waiting process
//    (/proc/self/status), and the slowest of 5 `await Deno.stat()` during the
//    wait; the same with Deno's `FsFile#lock(true)`, one file handle per waiter.
//    And the CPU time 1,000 waiters with a timeout cost per second of waiting.
// 2. The async cross-process handoff (bench/handoff_child.ts: a holder and a
//    waiter process, the waiter blocked 3 ms): `await acquire()` against the
//    bare `nonblocking: true` fcntl(F_OFD_SETLKW) wait (Linux), alternating
//    round by round so that both see the same noise.

import { type Figure, format } from "./_report.ts";
import { type Party, spawnParty, summarize, type Summary } from "./_parties.ts";

const SECTION = "many async waiters on one process lock";
const COUNTS = [1, 32, 1000];
const here = decodeURIComponent(new URL(".", import.meta.url).pathname).replace(/\/$/, "");
const fixtures = `${here}/../tests/fixtures`;

/** One batch of waiters. */
export interface WaitersFigure {
  /** ms from the first acquisition to the last release. */
  passMs: number;
  threadsAdded: number;
  statMs: number;
  /** With --timed: CPU ms the waiting process used over one second of the wait. */
  cpuMs?: number;
}

/** What bench/run.ts needs for its targets. */
export interface WaitersFigures {
  /** By "<lock|fslock> <n>". */
  waiters: Map<string, WaitersFigure>;
  /** Handoff summaries (ns): "await acquire()" and "bare nonblocking" (Linux). */
  handoff: Map<string, Summary>;
}

const denoRun = (script: string, args: string[]) =>
  spawnParty(Deno.execPath(), ["run", "--no-lock", "--allow-all", script, ...args]);

async function batch(
  dir: string,
  mode: string,
  n: number,
  flags: string[] = [],
): Promise<WaitersFigure> {
  const path = `${dir}/${mode}-${n}${flags.join("")}.lock`;
  await Deno.writeTextFile(path, "");
  const holder = denoRun(`${fixtures}/waiting_room_holder.ts`, ["lock", path]);
  let waiter: Party | undefined;
  try {
    await holder.expect("locked");
    waiter = denoRun(`${fixtures}/waiting_room_waiter.ts`, [mode, String(n), path, ...flags]);
    const waiting = JSON.parse((await waiter.expect("waiting ")).slice(8));
    await holder.ask("release", "released");
    const done = JSON.parse((await waiter.expect("done ")).slice(5));
    return {
      passMs: done.passMs,
      threadsAdded: waiting.threadsDuring - waiting.threadsBefore,
      statMs: waiting.statMs,
      cpuMs: waiting.cpuMs,
    };
  } finally {
    await holder.quit();
    await waiter?.quit();
  }
}

async function handoffRounds(dir: string, waits: string[], rounds: number, warmup: number) {
  const path = `${dir}/handoff.lock`;
  await Deno.writeTextFile(path, "");
  const holder = denoRun(`${here}/handoff_child.ts`, [path]);
  const waiter = denoRun(`${here}/handoff_child.ts`, [path]);
  const samples = new Map(waits.map((w) => [w, [] as number[]]));
  try {
    await holder.expect("ready");
    await waiter.expect("ready");
    for (let i = 0; i < warmup + rounds; i++) {
      for (const wait of waits) {
        await holder.ask("hold", "held");
        await waiter.ask(wait, "waiting");
        await new Promise((r) => setTimeout(r, 3)); // time for the waiter to block
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

/**
 * Measures the figures, reporting each through `add` (and what cannot be
 * measured through `skip`).
 *
 * @param add Receives each figure.
 * @param skip Receives what was skipped and why.
 * @param rounds Handoff rounds per waiter kind.
 * @returns The figures bench/run.ts compares with its targets.
 */
export async function waitersProcessFigures(
  add: (f: Figure) => void,
  skip: (what: string, why: string) => void,
  rounds = 300,
): Promise<WaitersFigures> {
  const dir = await Deno.makeTempDir({ prefix: "fasteners-bench-waiters-" });
  const waiters = new Map<string, WaitersFigure>();
  const handoff = new Map<string, Summary>();
  try {
    for (const n of COUNTS) {
      for (
        const [mode, name, ours] of [
          ["lock", "InterProcessLock await acquire()", true],
          ["fslock", "Deno FsFile await lock(true)", false],
        ] as const
      ) {
        const f = await batch(dir, mode, n);
        waiters.set(`${mode} ${n}`, f);
        const command = "deno run --allow-all bench/_waiters_process.ts: holder " +
          "tests/fixtures/waiting_room_holder.ts, waiters tests/fixtures/waiting_room_waiter.ts " +
          `${mode} ${n} FILE`;
        add({
          section: SECTION,
          name: `${name}, ${n} waiter${n > 1 ? "s" : ""}: all through after release`,
          value: f.passMs * 1e6,
          unit: "ns",
          detail: `${f.threadsAdded} threads added while waiting; Deno.stat meanwhile ${
            format(f.statMs * 1e6, "ns")
          }`,
          command,
          ours,
        });
        add({
          section: SECTION,
          name: `${name}, ${n} waiter${n > 1 ? "s" : ""}: Deno.stat during the wait`,
          value: f.statMs * 1e6,
          unit: "ns",
          command,
          ours,
        });
      }
    }
    const linux = Deno.build.os === "linux";
    if (!linux) skip("CPU of 1,000 timed waiters", "read from /proc/self/stat (Linux)");
    else {
      const f = await batch(dir, "lock", 1000, ["--timed"]);
      waiters.set("timed 1000", f);
      add({
        section: SECTION,
        name: "InterProcessLock, 1000 waiters with a timeout: CPU per second of waiting",
        value: f.cpuMs! * 1e6,
        unit: "ns",
        detail:
          "all in one waiting room, which polls once per maxDelay (10 ms); /proc/self/stat, " +
          "10 ms ticks",
        command: "deno run --allow-all bench/_waiters_process.ts: waiters " +
          "tests/fixtures/waiting_room_waiter.ts lock 1000 FILE --timed",
        ours: true,
      });
    }
    if (!linux) skip("bare nonblocking FFI handoff", "fcntl(F_OFD_SETLKW) is Linux only");
    const waits = linux ? ["wait-async", "wait-ffi-async"] : ["wait-async"];
    const samples = await handoffRounds(dir, waits, rounds, 30);
    const command = "deno run --allow-all bench/_waiters_process.ts: two " +
      "`bench/handoff_child.ts FILE` processes, waiter blocked 3 ms, kinds alternating, " +
      `${rounds} rounds`;
    for (
      const [wait, key, name, ours] of [
        ["wait-async", "await acquire()", "InterProcessLock await acquire() handoff", true],
        ["wait-ffi-async", "bare nonblocking", "bare FFI F_OFD_SETLKW nonblocking handoff", false],
      ] as const
    ) {
      if (!samples.has(wait)) continue;
      const s = summarize(samples.get(wait)!);
      handoff.set(key, s);
      add({
        section: SECTION,
        name: `${name} p50`,
        value: s.p50,
        unit: "ns",
        detail: `min ${format(s.min, "ns")}, p90 ${format(s.p90, "ns")}, p99 ${
          format(s.p99, "ns")
        }, ${s.n} rounds`,
        command,
        ours,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return { waiters, handoff };
}

if (import.meta.main) {
  const figures: Figure[] = [];
  const r = await waitersProcessFigures(
    (f) => figures.push(f),
    (what, why) => console.log(`SKIP ${what}: ${why}`),
    Number(Deno.args[0] ?? 300),
  );
  console.log("| figure | value | detail |\n|---|---|---|");
  for (const f of figures) {
    console.log(`| ${f.name} | ${format(f.value, f.unit)} | ${f.detail ?? ""} |`);
  }
  const ours = r.handoff.get("await acquire()"), bare = r.handoff.get("bare nonblocking");
  if (ours && bare) {
    console.log(
      `\nasync handoff p50 / bare nonblocking wait p50 = ${(ours.p50 / bare.p50).toFixed(2)}×`,
    );
  }
}
