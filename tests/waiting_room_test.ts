// The waiting rooms of process locks (locks/process/_file_lock.ts): many async
// waiters in one process, while a child process holds the lock. The waiters
// run in a child of their own (tests/fixtures/waiting_room_waiter.ts), so
// that its thread count is its own.

import assert from "node:assert/strict";
import { Child, tempDir } from "./_helpers.ts";
import { MAX_KERNEL_WAITS } from "../locks/process/_kernel_waits.ts";

const HOLDER = new URL("./fixtures/waiting_room_holder.ts", import.meta.url);
const WAITER = new URL("./fixtures/waiting_room_waiter.ts", import.meta.url);
const linux = Deno.build.os === "linux";

/**
 * Threads the waiting may add beyond the parked kernel waits: the pool
 * thread that runs Deno.stat, and one the runtime may start meanwhile.
 */
const SPARE_THREADS = 3;

interface Waiting {
  threadsBefore: number;
  threadsDuring: number;
  statMs: number;
  statMedianMs: number;
  parked: number;
}
interface Done {
  records: { order: number[]; maxInside: number; aborted: number }[];
  parked: number;
}

const parse = <T>(line: string): T => JSON.parse(line.slice(line.indexOf(" ") + 1));

/** Starts the holder of `paths`, then the waiters; returns both, with the "waiting" report. */
async function setUp(holderKind: string, waiterArgs: string[], paths: string[]) {
  for (const path of paths) await Deno.writeTextFile(path, "");
  const holder = new Child(HOLDER, [holderKind, ...paths]);
  await holder.expect("locked");
  const waiter = new Child(WAITER, [...waiterArgs, ...paths]);
  const waiting = parse<Waiting>(await waiter.expect("waiting"));
  return { holder, waiter, waiting };
}

function assertWaitCheap(waiting: Waiting): void {
  // The one timing bound: a file operation is not held up by lock waits.
  // The median of 5 tries, so that one hiccup of a loaded machine does not
  // fail it, while a stall (every stat waits for the lock) still does.
  assert.ok(
    waiting.statMedianMs < 100,
    `Deno.stat took ${waiting.statMedianMs} ms (median of 5) during the wait`,
  );
  assert.ok(waiting.parked <= MAX_KERNEL_WAITS, `${waiting.parked} kernel waits parked`);
  if (linux) {
    const added = waiting.threadsDuring - waiting.threadsBefore;
    assert.ok(
      added <= MAX_KERNEL_WAITS + SPARE_THREADS,
      `the wait added ${added} threads (${waiting.threadsBefore} → ${waiting.threadsDuring})`,
    );
  }
}

function assertServedInOrder(order: number[], expected: number[]): void {
  assert.deepEqual(order, expected);
}

const range = (n: number, step = 1) => Array.from({ length: n / step }, (_, i) => i * step);

Deno.test("1,000 async waiters on one process lock: the process stays responsive, all pass in order", async () => {
  await using dir = await tempDir();
  const path = dir.file("one.lock");
  const { holder, waiter, waiting } = await setUp("lock", ["lock", "1000"], [path]);
  await using _h = holder;
  await using _w = waiter;
  assertWaitCheap(waiting);
  assert.equal(waiting.parked, 1, "one kernel wait for one file and mode");
  await holder.send("release");
  const done = parse<Done>(await waiter.expect("done"));
  const [record] = done.records;
  assert.equal(record.maxInside, 1, "two waiters inside at once");
  assertServedInOrder(record.order, range(1000));
  assert.equal(done.parked, 0);
});

Deno.test("1 async waiter on each of 100 process locks: the cap holds and a SIGKILLed holder frees all", async () => {
  await using dir = await tempDir();
  const paths = range(100).map((i) => dir.file(`f${i}.lock`));
  const { holder, waiter, waiting } = await setUp("lock", ["lock", "1"], paths);
  await using _h = holder;
  await using _w = waiter;
  assertWaitCheap(waiting);
  assert.equal(waiting.parked, MAX_KERNEL_WAITS, "rooms beyond the cap poll instead");
  holder.process.kill("SIGKILL");
  const done = parse<Done>(await waiter.expect("done"));
  for (const record of done.records) assert.deepEqual(record.order, [0]);
  assert.equal(done.parked, 0);
});

Deno.test("aborting half of the waiters midway leaves the rest served in arrival order", async () => {
  await using dir = await tempDir();
  const path = dir.file("abort.lock");
  // Odd waiters have a signal (abortable: they never park a kernel wait), even ones none.
  const { holder, waiter, waiting } = await setUp("lock", ["lock", "200", "--abort"], [path]);
  await using _h = holder;
  await using _w = waiter;
  assertWaitCheap(waiting);
  await holder.send("release");
  const done = parse<Done>(await waiter.expect("done"));
  const [record] = done.records;
  assert.equal(record.aborted, 100);
  assert.equal(record.maxInside, 1);
  assertServedInOrder(record.order, range(200, 2));
});

Deno.test("300 readers waiting behind a writer are all inside together when it leaves", async () => {
  await using dir = await tempDir();
  const path = dir.file("rw.lock");
  const { holder, waiter, waiting } = await setUp("write", ["read", "300"], [path]);
  await using _h = holder;
  await using _w = waiter;
  assertWaitCheap(waiting);
  assert.equal(waiting.parked, 1, "one kernel wait for all the readers");
  await holder.send("release");
  const done = parse<Done>(await waiter.expect("done"));
  const [record] = done.records;
  assert.equal(record.maxInside, 300);
  assertServedInOrder(record.order, range(300));
});

Deno.test("1,000 waiters with a timeout wait in one room, park nothing, and pass in order", async () => {
  await using dir = await tempDir();
  const path = dir.file("timed.lock");
  const { holder, waiter, waiting } = await setUp("lock", ["lock", "1000", "--timed"], [path]);
  await using _h = holder;
  await using _w = waiter;
  assertWaitCheap(waiting);
  assert.equal(waiting.parked, 0, "a timed waiter must not park an uncancellable kernel wait");
  await holder.send("release");
  const done = parse<Done>(await waiter.expect("done"));
  const [record] = done.records;
  assert.equal(record.maxInside, 1);
  assertServedInOrder(record.order, range(1000));
});
