// Test harness: real etcd 3.4 processes on 127.0.0.1, each on free ports with
// its own temp data dir, stopped and removed at the end (`await using`).
//
//   await using cluster = await startEtcd({ members: 3 });
//   cluster.endpoints;                      // ["http://127.0.0.1:41235", ...]
//   const leader = await cluster.leader();  // index, from /v3/maintenance/status
//   await cluster.kill(leader);             // SIGKILL (stop/cont: SIGSTOP/SIGCONT)
//   await cluster.restart(leader);          // same data dir: it rejoins
//   await cluster.keys("jobs/");            // what is left in etcd
//
// With tmpfs: true the data dirs are under /dev/shm (for benches).
//
// Every wait here is bounded (a deadline, then an Error naming what never
// happened, with the member's last log lines). Nothing listens beyond loopback.

import { join } from "node:path";

/** Where the etcd server binary is looked for (ETCD_BIN overrides). */
export const ETCD_BIN: string = Deno.env.get("ETCD_BIN") ?? "/usr/bin/etcd";

/** Why the etcd tests cannot run here, or `undefined` when they can. */
export const etcdMissing: string | undefined = (() => {
  if (Deno.build.os === "windows" && Deno.env.get("ETCD_BIN") === undefined) {
    // Under Wine, /usr/bin/etcd is visible (drive Z:) but is a Linux program.
    return "the etcd tests start the Linux etcd of the host (set ETCD_BIN to an etcd.exe on Windows)";
  }
  try {
    return Deno.statSync(ETCD_BIN).isFile ? undefined : `${ETCD_BIN} is not a file`;
  } catch {
    return `etcd is not installed (no ${ETCD_BIN}; apt-get install etcd-server etcd-client)`;
  }
})();

if (etcdMissing !== undefined) {
  console.warn(`etcd tests skipped: ${etcdMissing}`);
}

// A member's health and a cluster's leader are waited for this long: an
// election takes 1-2 election timeouts (1 s each by default), a loaded 2-core
// machine stretches that, and a failed start must still end the test.
const START_DEADLINE_MS = 30_000;
// Each probe request gives up after this long (a SIGSTOPped member never answers).
const PROBE_TIMEOUT_MS = 1_000;
// Pause between two probes.
const PROBE_INTERVAL_MS = 50;
// The last bytes of each member's log kept for error messages.
const LOG_TAIL_BYTES = 8_192;

/** Options of {@linkcode startEtcd}. */
export interface StartEtcdOptions {
  /** Cluster size (1, 3 or 5 in practice). Default 1. */
  members?: number;
  /** Put the data dirs under /dev/shm (no disk fsync cost: for benches). Default false. */
  tmpfs?: boolean;
}

/** One etcd process of a {@linkcode EtcdCluster}. */
export interface EtcdMember {
  /** `m0`, `m1`, … */
  readonly name: string;
  /** Its client URL, `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Its data dir (kept across {@linkcode EtcdCluster.restart}). */
  readonly dataDir: string;
  /** The current process id (changes on restart). */
  readonly pid: number;
  /** Whether the process is running (not killed; a stopped one counts as running). */
  readonly running: boolean;
}

/** A key under a prefix, as {@linkcode EtcdCluster.keys} reports it. */
export interface EtcdKey {
  key: string;
  value: string;
  createRevision: bigint;
  lease: bigint;
}

class Member implements EtcdMember {
  readonly name: string;
  readonly endpoint: string;
  readonly dataDir: string;
  readonly args: string[];
  process?: Deno.ChildProcess;
  exited?: Promise<Deno.CommandStatus>;
  logTail = "";
  drained?: Promise<void>;
  memberId?: string;

  constructor(name: string, endpoint: string, dataDir: string, args: string[]) {
    this.name = name;
    this.endpoint = endpoint;
    this.dataDir = dataDir;
    this.args = args;
  }

  get pid(): number {
    if (this.process === undefined) throw new Error(`etcd ${this.name} was never started`);
    return this.process.pid;
  }

  running = false;

  spawn(): void {
    const process = new Deno.Command(ETCD_BIN, {
      args: this.args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.process = process;
    this.running = true;
    this.logTail = "";
    // etcd logs to stderr: drain it (a full pipe would block the server) and
    // keep the tail for error messages.
    this.drained = process.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write: (chunk) => {
          this.logTail = (this.logTail + chunk).slice(-LOG_TAIL_BYTES);
        },
      }),
    ).catch(() => {});
    this.exited = process.status.then((status) => {
      if (this.process === process) this.running = false;
      return status;
    });
  }

  signal(signal: Deno.Signal): void {
    if (!this.running || this.process === undefined) {
      throw new Error(`etcd ${this.name} is not running`);
    }
    this.process.kill(signal);
  }

  async killAndWait(): Promise<void> {
    if (this.process === undefined) return;
    if (this.running) {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // it ended on its own
      }
    }
    await this.exited;
    await this.drained;
    this.running = false;
  }

  describe(): string {
    return `etcd ${this.name} (${this.endpoint}); its last log lines:\n${
      this.logTail.split("\n").slice(-15).join("\n")
    }`;
  }
}

/** A running etcd cluster; `await using` stops every member and removes its dirs. */
export class EtcdCluster implements AsyncDisposable {
  readonly #members: Member[];
  readonly #root: string;
  #closed = false;

  /** @internal Use {@linkcode startEtcd}. */
  constructor(members: Member[], root: string) {
    this.#members = members;
    this.#root = root;
  }

  /** The members, by index. */
  get members(): readonly EtcdMember[] {
    return this.#members;
  }

  /** Every member's client URL, by index. */
  get endpoints(): string[] {
    return this.#members.map((m) => m.endpoint);
  }

  /** The process id of member `i`. */
  pid(i: number): number {
    return this.#member(i).pid;
  }

  /** SIGKILLs member `i` and waits for it to end. */
  async kill(i: number): Promise<void> {
    const member = this.#member(i);
    member.signal("SIGKILL");
    await member.killAndWait();
  }

  /** SIGSTOPs member `i` (it keeps its sockets but answers nothing). */
  stop(i: number): void {
    this.#member(i).signal("SIGSTOP");
  }

  /** SIGCONTs member `i`. */
  cont(i: number): void {
    this.#member(i).signal("SIGCONT");
  }

  /**
   * Starts member `i` again with the same data dir and flags (it must have been
   * killed), and waits until it is healthy, i.e. has rejoined a cluster with a leader.
   */
  async restart(i: number): Promise<void> {
    const member = this.#member(i);
    if (member.running) throw new Error(`etcd ${member.name} is still running`);
    member.spawn();
    await waitHealthy(member);
  }

  /** Waits until member `i` answers /health with `true` (it has a leader). */
  async waitHealthy(i: number): Promise<void> {
    await waitHealthy(this.#member(i));
  }

  /**
   * The index of the current leader, asked of the running members through the
   * gateway's `/v3/maintenance/status`; waits (bounded) while there is none.
   */
  async leader(): Promise<number> {
    const deadline = Date.now() + START_DEADLINE_MS;
    while (Date.now() < deadline) {
      await this.#learnMemberIds();
      for (const member of this.#members) {
        if (!member.running) continue;
        const status = await probe(member.endpoint, "/v3/maintenance/status", {});
        const leader = status?.leader;
        if (typeof leader !== "string" || leader === "0") continue;
        const index = this.#members.findIndex((m) => m.memberId === leader);
        if (index >= 0 && this.#members[index].running) return index;
      }
      await delay(PROBE_INTERVAL_MS);
    }
    throw new Error(`no etcd leader within ${START_DEADLINE_MS} ms`);
  }

  /** Indexes of the running members other than the leader. */
  async followers(): Promise<number[]> {
    const leader = await this.leader();
    return this.#members.flatMap((m, i) => m.running && i !== leader ? [i] : []);
  }

  /**
   * Every key under `prefix` (a linearizable read through any running member),
   * decoded. Used to assert "no key left behind".
   */
  async keys(prefix: string): Promise<EtcdKey[]> {
    const body = { key: b64(prefix), range_end: b64(prefixEnd(prefix)) };
    const response = await this.request("/v3/kv/range", body) as {
      kvs?: { key: string; value?: string; create_revision: string; lease?: string }[];
    };
    return (response.kvs ?? []).map((kv) => ({
      key: unb64(kv.key),
      value: kv.value === undefined ? "" : unb64(kv.value),
      createRevision: BigInt(kv.create_revision),
      lease: BigInt(kv.lease ?? "0"),
    }));
  }

  /** Puts `key` = `value` (no lease); returns the revision of the write. */
  async put(key: string, value: string): Promise<bigint> {
    const response = await this.request("/v3/kv/put", { key: b64(key), value: b64(value) }) as {
      header: { revision: string };
    };
    return BigInt(response.header.revision);
  }

  /** Deletes `key`; returns how many keys went. */
  async del(key: string): Promise<number> {
    const response = await this.request("/v3/kv/deleterange", { key: b64(key) }) as {
      deleted?: string;
    };
    return Number(response.deleted ?? "0");
  }

  /**
   * POSTs `body` to the gateway `path` of the first running member that
   * answers (each member tried once, in order, bounded).
   */
  async request(path: string, body: unknown): Promise<unknown> {
    const errors: string[] = [];
    for (const member of this.#members) {
      if (!member.running) continue;
      try {
        const response = await fetch(member.endpoint + path, {
          method: "POST",
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(5_000),
        });
        const text = await response.text();
        if (response.ok) return JSON.parse(text);
        errors.push(`${member.name}: ${response.status} ${text}`);
      } catch (error) {
        errors.push(`${member.name}: ${error}`);
      }
    }
    throw new Error(`no etcd member answered ${path}: ${errors.join("; ")}`);
  }

  /** Kills every member (by pid) and removes every data dir. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#members.map((m) => m.killAndWait()));
    await removeDir(this.#root);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #member(i: number): Member {
    const member = this.#members[i];
    if (member === undefined) throw new RangeError(`no etcd member ${i}`);
    return member;
  }

  async #learnMemberIds(): Promise<void> {
    for (const member of this.#members) {
      if (member.memberId !== undefined || !member.running) continue;
      const status = await probe(member.endpoint, "/v3/maintenance/status", {});
      const id = (status?.header as { member_id?: string } | undefined)?.member_id;
      if (typeof id === "string") member.memberId = id;
    }
  }
}

/**
 * Starts `members` etcd processes forming one new cluster on 127.0.0.1 and
 * waits until every member is healthy. Retries once with new ports when a
 * member dies at start (a port taken between choosing and binding it).
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const { members = 1, tmpfs = false } = options;
  if (!Number.isInteger(members) || members < 1) throw new RangeError(`members: ${members}`);
  if (etcdMissing !== undefined) throw new Error(etcdMissing);
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    // Under /dev, Deno wants --allow-all to write even with --allow-write (when
    // --allow-run is given): there etcd makes its own data dirs, and an `rm`
    // process removes them.
    const root = tmpfs
      ? `/dev/shm/fasteners-etcd-${crypto.randomUUID()}`
      : await Deno.makeTempDir({ prefix: "fasteners-etcd-" });
    const cluster = await spawnCluster(members, root, !tmpfs);
    try {
      await Promise.all(cluster.members.map((m) => waitHealthy(m as Member)));
      await cluster.leader();
      return cluster;
    } catch (error) {
      lastError = error;
      await cluster.close();
    }
  }
  throw lastError;
}

async function spawnCluster(count: number, root: string, mkdir: boolean): Promise<EtcdCluster> {
  const ports = freePorts(2 * count);
  const token = `fasteners-${crypto.randomUUID()}`;
  const peers = Array.from(
    { length: count },
    (_, i) => `m${i}=http://127.0.0.1:${ports[2 * i + 1]}`,
  );
  const members: Member[] = [];
  for (let i = 0; i < count; i++) {
    const client = `http://127.0.0.1:${ports[2 * i]}`;
    const peer = `http://127.0.0.1:${ports[2 * i + 1]}`;
    const dataDir = join(root, `m${i}`);
    if (mkdir) await Deno.mkdir(dataDir, { mode: 0o700 });
    members.push(
      new Member(`m${i}`, client, dataDir, [
        `--name=m${i}`,
        `--data-dir=${dataDir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${peers.join(",")}`,
        "--initial-cluster-state=new",
        `--initial-cluster-token=${token}`,
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=warn",
      ]),
    );
  }
  for (const member of members) member.spawn();
  return new EtcdCluster(members, root);
}

/** Removes `path` and all below it; by an `rm -rf` process where Deno may not (see startEtcd). */
async function removeDir(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    await new Deno.Command("rm", { args: ["-rf", "--", path], stdout: "null", stderr: "null" })
      .output().catch(() => {});
  }
}

/** Ports free right now on 127.0.0.1 (all held open together, so distinct). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return ports;
}

async function waitHealthy(member: Member): Promise<void> {
  const deadline = Date.now() + START_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (!member.running) {
      throw new Error(`etcd ${member.name} exited while starting: ${member.describe()}`);
    }
    try {
      const response = await fetch(member.endpoint + "/health", {
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      const body = await response.json() as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet, or no leader yet
    }
    await delay(PROBE_INTERVAL_MS);
  }
  throw new Error(`etcd not healthy within ${START_DEADLINE_MS} ms: ${member.describe()}`);
}

async function probe(
  endpoint: string,
  path: string,
  body: unknown,
): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(endpoint + path, {
      method: "POST",
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    const text = await response.text();
    return response.ok ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Base64 of a UTF-8 string or of bytes (the gateway's encoding of keys and values). */
export function b64(data: string | Uint8Array): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** UTF-8 string of a base64 value. */
export function unb64(base64: string): string {
  return new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): Uint8Array {
  const bytes = new TextEncoder().encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i]++;
      return end;
    }
  }
  return new Uint8Array([0]);
}
