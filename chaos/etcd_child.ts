// A client process of the etcd chaos run (chaos/etcd.ts): one EtcdClient
// taking the run's locks in a loop, chosen by its seed, until stdin says
// "stop" (then it closes its client and prints "closed"). The supervisor
// SIGKILLs and SIGSTOPs it at random.
//
//   deno run --allow-all chaos/etcd_child.ts ENDPOINTS TTL_MS SEED STORE_URL [sabotage]
//
// Journal, one line on stdout per event (<t>: now(), CLOCK_MONOTONIC ms;
// <hold>: <pid>.<n>, unique in the run):
//   Q <lock> <mode> <t>                  about to ask for a lock
//   A <hold> <lock> <mode> <token> <t>   acquired (mode m: EtcdLock, r/w: EtcdReaderWriterLock)
//   E <hold> <t>                         the hold ends: about to release (or gave up, lost)
//   L <hold> <code> <t>                  the hold's signal aborted (code of its LockError)
//   O <lock> <mode> <outcome>            an acquisition that did not hold: false, timeout,
//                                        abort, or the LockError code (UNAVAILABLE, …)
//   X <what>                             an error nothing here expects (a violation)
// Exclusive holders (m, w) write their token to the token-checking store,
// twice per hold, and only while their signal is not aborted.
// One hold in 33 ends by closing the client (then a new one is made).
// Sabotage: one hold in four skips the lock and writes with the last token seen.

import { EtcdClient, EtcdLock, EtcdReaderWriterLock } from "../etcd/mod.ts";
import { LockError, LockTimeoutError } from "../errors.ts";
import { now, rng } from "./_common.ts";
import { MUTEXES, RWLOCK } from "./_etcd.ts";

const [endpoints, ttl, seed, store, sabotageArg] = Deno.args;
const sabotage = sabotageArg === "sabotage";
const random = rng(Number(seed));
const connect = () => new EtcdClient({ endpoints: endpoints.split(","), ttl: Number(ttl) });
let client = connect();
const encoder = new TextEncoder();
let holds = 0;
let stopping = false;
const lastToken = new Map<string, bigint>();

function say(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function outcome(error: unknown): string {
  if (error instanceof LockTimeoutError) return "timeout";
  if (error instanceof DOMException && error.name === "AbortError") return "abort";
  if (error instanceof LockError) return error.code ?? "LockError";
  return "";
}

async function write(lock: string, token: bigint, hold: string): Promise<void> {
  try {
    const response = await fetch(store, {
      method: "POST",
      body: JSON.stringify({ resource: lock, token: String(token), writer: hold }),
    });
    await response.text();
  } catch (error) {
    say(`X store unreachable: ${error}`);
  }
}

/** Works under a hold: writes (exclusive holds), waits a little, writes again. */
async function work(lock: string, token: bigint, signal: AbortSignal, exclusive: boolean) {
  const hold = `${Deno.pid}.${++holds}`;
  say(`A ${hold} ${lock} ${exclusive ? (lock === RWLOCK ? "w" : "m") : "r"} ${token} ${now()}`);
  lastToken.set(lock, token);
  const onLost = () => say(`L ${hold} ${(signal.reason as LockError)?.code ?? "?"} ${now()}`);
  if (signal.aborted) onLost();
  else signal.addEventListener("abort", onLost, { once: true });
  for (let i = 0; i < 2; i++) {
    if (exclusive && !signal.aborted) await write(lock, token, hold);
    await sleep(random() < 0.1 ? 100 + random() * 200 : random() * 20);
  }
  say(`E ${hold} ${now()}`);
  signal.removeEventListener("abort", onLost);
  if (random() < 0.03) {
    // Close the client while holding: its lease is revoked, which frees the
    // key (the release that follows must resolve); then start a new client.
    await client.close();
    if (!signal.aborted) say(`X ${lock}: close() left the hold's signal not aborted`);
    client = connect();
  }
}

/** A hold that skips the lock (sabotage): the checks must catch it. */
async function fakeHold(lock: string) {
  const token = lastToken.get(lock) ?? 1n;
  const hold = `${Deno.pid}.${++holds}`;
  say(`A ${hold} ${lock} m ${token} ${now()}`);
  await write(lock, token, hold);
  await sleep(50 + random() * 100); // long enough to overlap real holds
  await write(lock, token, hold);
  say(`E ${hold} ${now()}`);
}

async function once(): Promise<void> {
  const useRw = random() < 0.4;
  const lock = useRw ? RWLOCK : pick(MUTEXES);
  const mode = useRw ? (random() < 0.6 ? "r" : "w") : "m";
  say(`Q ${lock} ${mode} ${now()}`);
  if (sabotage && mode === "m" && random() < 0.25) return await fakeHold(lock);
  // Waits: no limit, a timeout, an abort after a while, or a single try.
  const style = random();
  const controller = new AbortController();
  const options = style < 0.15
    ? { blocking: false }
    : style < 0.6
    ? { timeout: 50 + random() * 1500, signal: controller.signal }
    : { signal: controller.signal };
  const aborter = style >= 0.8 ? setTimeout(() => controller.abort(), random() * 800) : undefined;
  try {
    if (mode === "m" && random() < 0.5) {
      const mutex = new EtcdLock(client, lock);
      if (!(await mutex.acquire(options))) return say(`O ${lock} ${mode} false`);
      clearTimeout(aborter);
      try {
        await work(lock, mutex.fencingToken!, mutex.signal!, true);
      } finally {
        await mutex.release();
      }
    } else {
      const guard = mode === "m"
        ? await new EtcdLock(client, lock).lock(options)
        : mode === "r"
        ? await new EtcdReaderWriterLock(client, lock).readLock(options)
        : await new EtcdReaderWriterLock(client, lock).writeLock(options);
      clearTimeout(aborter);
      try {
        await work(lock, guard.fencingToken, guard.signal, mode !== "r");
      } finally {
        await guard.release();
      }
    }
  } catch (error) {
    const what = outcome(error);
    if (what === "") say(`X ${lock} ${mode}: ${error instanceof Error ? error.stack : error}`);
    else say(`O ${lock} ${mode} ${what}`);
  } finally {
    clearTimeout(aborter);
  }
}

(async () => {
  for await (const chunk of Deno.stdin.readable) {
    if (new TextDecoder().decode(chunk).includes("stop")) break;
  }
  stopping = true;
})();

say("ready");
while (!stopping) {
  await once();
  await sleep(random() * 10);
}
await client.close();
say("closed");
Deno.exit(0);
