// EtcdLock and `etcdctl lock` (etcd's Go concurrency.Mutex) exclude each
// other on the same name, both ways, with real etcdctl processes.

import assert from "node:assert/strict";
import { EtcdClient, EtcdLock } from "../etcd/mod.ts";
import { etcdMissing, startEtcd } from "./_etcd.ts";
import { until } from "./_etcd_wait.ts";

const ETCDCTL = "/usr/bin/etcdctl";
const ignore = etcdMissing !== undefined || !exists(ETCDCTL);
if (etcdMissing === undefined && ignore) console.warn(`etcd interop tests skipped: no ${ETCDCTL}`);

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** `etcdctl lock <name>`: prints the key it holds as its first line, holds until SIGTERM. */
class EtcdctlLock implements AsyncDisposable {
  readonly #process: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;
  #buffer = "";

  constructor(endpoint: string, name: string) {
    this.#process = new Deno.Command(ETCDCTL, {
      args: [`--endpoints=${endpoint}`, "lock", name],
      env: { ETCDCTL_API: "3" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = this.#process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#process.stderr).text();
  }

  /** The key etcdctl printed once it held the lock. */
  async held(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf("\n");
      if (end >= 0) return this.#buffer.slice(0, end);
      const { value, done } = await this.#lines.read();
      if (done) throw new Error(`etcdctl lock ended: ${await this.#stderr}`);
      this.#buffer += value;
    }
  }

  /** SIGTERM: etcdctl deletes its key (holding or waiting) and exits. */
  async unlock(): Promise<void> {
    try {
      this.#process.kill("SIGTERM");
    } catch {
      // already ended
    }
    await this.#process.status;
    await this.#lines.cancel().catch(() => {});
    await this.#stderr;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.unlock();
  }
}

Deno.test({
  name: "EtcdLock waits while `etcdctl lock` holds the same name, then gets a greater token",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    await using etcdctl = new EtcdctlLock(cluster.endpoints[0], "interop");
    const key = await etcdctl.held();
    assert.match(key, /^interop\/[0-9a-f]+$/);
    const [theirs] = await cluster.keys("interop/");
    assert.equal(theirs.key, key);
    const lock = new EtcdLock(client, "interop");
    assert.equal(await lock.acquire({ blocking: false }), false);
    const waiting = lock.acquire();
    await until(async () => (await cluster.keys("interop/")).length === 2, "our key in line");
    assert.equal(lock.acquired, false);
    await etcdctl.unlock();
    assert.equal(await waiting, true);
    assert.ok(lock.fencingToken! > theirs.createRevision);
    await lock.release();
    assert.deepEqual(await cluster.keys("interop/"), []);
  },
});

Deno.test({
  name: "`etcdctl lock` waits while EtcdLock holds the same name, and gets it on release()",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const lock = new EtcdLock(client, "interop");
    await lock.acquire();
    const ours = lock.fencingToken!;
    await using etcdctl = new EtcdctlLock(cluster.endpoints[0], "interop");
    const held = etcdctl.held();
    let printed = false;
    held.then(() => printed = true, () => {});
    await until(async () => (await cluster.keys("interop/")).length === 2, "etcdctl's key in line");
    assert.equal(printed, false);
    await lock.release();
    const key = await held;
    const [theirs] = await cluster.keys("interop/");
    assert.equal(theirs.key, key);
    assert.ok(theirs.createRevision > ours);
    // And back: we wait for etcdctl again.
    assert.equal(await lock.acquire({ blocking: false }), false);
    assert.equal((await cluster.keys("interop/")).length, 1);
    await etcdctl.unlock();
    assert.equal(await lock.acquire({ timeout: 10_000 }), true);
    await lock.release();
  },
});
