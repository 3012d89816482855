// EtcdReaderWriterLock against a real single-node etcd (tests/_etcd.ts):
// readers share, a writer is alone, FIFO so a writer is never starved, no
// key left behind, guards with fencing tokens and signals, bad input.

import assert from "node:assert/strict";
import { EtcdClient, EtcdReaderWriterLock, LockError, LockTimeoutError } from "../etcd/mod.ts";
import { etcdMissing, startEtcd } from "./_etcd.ts";
import { until } from "./_etcd_wait.ts";

const ignore = etcdMissing !== undefined;

Deno.test({
  name: "EtcdReaderWriterLock: readers of two clients share, a writer waits for both",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using a = new EtcdClient({ endpoints: cluster.endpoints });
    await using b = new EtcdClient({ endpoints: cluster.endpoints });
    await using c = new EtcdClient({ endpoints: cluster.endpoints });
    const ra = new EtcdReaderWriterLock(a, "doc");
    const rb = new EtcdReaderWriterLock(b, "doc");
    const wc = new EtcdReaderWriterLock(c, "doc");
    assert.equal(await ra.acquireReadLock(), true);
    assert.equal(await rb.acquireReadLock({ blocking: false }), true);
    assert.equal(ra.readAcquired, 1);
    assert.equal(await wc.acquireWriteLock({ blocking: false }), false);
    assert.equal(await wc.acquireWriteLock({ timeout: 100 }), false);
    assert.equal((await cluster.keys("doc/")).length, 2);
    const writing = wc.acquireWriteLock();
    await until(async () => (await cluster.keys("doc/")).length === 3, "the writer's key");
    await ra.releaseReadLock();
    assert.equal(wc.writeAcquired, false);
    await rb.releaseReadLock();
    assert.equal(await writing, true);
    assert.equal(wc.writeAcquired, true);
    assert.equal(await ra.acquireReadLock({ blocking: false }), false);
    await wc.releaseWriteLock();
    assert.deepEqual(await cluster.keys("doc/"), []);
  },
});

Deno.test({
  name:
    "EtcdReaderWriterLock is FIFO: readers after a waiting writer wait behind it (no starvation)",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const clients = [0, 1, 2, 3].map(() => new EtcdClient({ endpoints: cluster.endpoints }));
    try {
      const [r1, w, r2, r3] = clients.map((client) => new EtcdReaderWriterLock(client, "fifo"));
      const order: string[] = [];
      await r1.acquireReadLock();
      const writing = w.acquireWriteLock().then(() => order.push("writer"));
      await until(async () => (await cluster.keys("fifo/")).length === 2, "the writer in line");
      // A reader's try while a writer waits gets false, and leaves no key.
      assert.equal(await r2.acquireReadLock({ blocking: false }), false);
      assert.equal((await cluster.keys("fifo/")).length, 2);
      const reading = r2.acquireReadLock().then(() => order.push("reader"));
      await until(async () => (await cluster.keys("fifo/")).length === 3, "the reader in line");
      await r1.releaseReadLock();
      await writing;
      assert.deepEqual(order, ["writer"]);
      assert.equal(await r3.acquireReadLock({ timeout: 50 }), false);
      await w.releaseWriteLock();
      await reading;
      assert.deepEqual(order, ["writer", "reader"]);
      assert.equal(await r3.acquireReadLock({ blocking: false }), true);
      await r2.releaseReadLock();
      await r3.releaseReadLock();
      assert.deepEqual(await cluster.keys("fifo/"), []);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  },
});

Deno.test({
  name: "EtcdReaderWriterLock: writers never overlap anything, and their tokens grow",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const clients = [0, 1, 2].map(() => new EtcdClient({ endpoints: cluster.endpoints }));
    try {
      let readers = 0;
      let writers = 0;
      let lastWrite = 0n;
      await Promise.all(clients.map(async (client, i) => {
        const rw = new EtcdReaderWriterLock(client, "mixed");
        for (let n = 0; n < 6; n++) {
          if ((n + i) % 3 === 0) {
            await rw.withWriteLock(async ({ fencingToken, signal }) => {
              assert.equal(readers + writers++, 0, "a writer with company");
              assert.equal(signal.aborted, false);
              assert.ok(fencingToken > lastWrite);
              lastWrite = fencingToken;
              await new Promise((resolve) => setTimeout(resolve, 1));
              writers--;
            });
          } else {
            await rw.withReadLock(async ({ fencingToken }) => {
              assert.equal(writers, 0, "a reader beside a writer");
              readers++;
              assert.ok(fencingToken > lastWrite);
              await new Promise((resolve) => setTimeout(resolve, 1));
              readers--;
            });
          }
        }
      }));
      assert.deepEqual(await cluster.keys("mixed/"), []);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  },
});

Deno.test({
  name:
    "EtcdReaderWriterLock: one client's reader and writer exclude each other; timeouts leave no key",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const one = new EtcdReaderWriterLock(client, "own");
    const two = new EtcdReaderWriterLock(client, "own");
    await using _read = await one.readLock();
    await assert.rejects(two.writeLock({ timeout: 100 }), LockTimeoutError);
    const controller = new AbortController();
    const writing = two.acquireWriteLock({ signal: controller.signal });
    await until(async () => (await cluster.keys("own/")).length === 2, "the writer in line");
    controller.abort(new Error("no"));
    await assert.rejects(writing, /no/);
    const keys = await cluster.keys("own/");
    assert.equal(keys.length, 1);
    assert.match(keys[0].key, /^own\/read\/\d+$/);
    assert.equal(await two.acquireReadLock({ blocking: false }), true);
    assert.equal(two.readAcquired, 1);
    await two.releaseReadLock();
  },
});

Deno.test({
  name: "EtcdReaderWriterLock: guards carry fencingToken and signal; misuse is a LockError",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const rw = new EtcdReaderWriterLock(client, "guards");
    await assert.rejects(rw.releaseReadLock(), LockError);
    await assert.rejects(rw.releaseWriteLock(), LockError);
    const guard = await rw.writeLock();
    const [key] = await cluster.keys("guards/");
    assert.match(key.key, /^guards\/write\/\d+$/);
    assert.equal(guard.fencingToken, key.createRevision);
    assert.equal(guard.signal.aborted, false);
    await guard.release();
    await assert.rejects(guard.release(), LockError);
    const value = await rw.withReadLock(({ fencingToken }) => fencingToken);
    assert.ok(value > key.createRevision);
    assert.deepEqual(await cluster.keys("guards/"), []);
    // Closing the client ends a read hold: its signal aborts, release resolves.
    await rw.acquireReadLock();
    const read = await rw.readLock();
    await client.close();
    assert.equal(read.signal.aborted, true);
    assert.equal((read.signal.reason as LockError).code, "LEASE_EXPIRED");
    assert.equal(rw.readAcquired, 0);
    await read.release();
    await rw.releaseReadLock();
    assert.deepEqual(await cluster.keys("guards/"), []);
  },
});

Deno.test("EtcdReaderWriterLock rejects bad input, naming the value", async () => {
  await using client = new EtcdClient({ endpoints: "http://127.0.0.1:2379" });
  assert.throws(() => new EtcdReaderWriterLock(client, ""), RangeError);
  assert.throws(() => new EtcdReaderWriterLock(null as never, "x"), TypeError);
  const rw = new EtcdReaderWriterLock(client, "x");
  await assert.rejects(
    rw.acquireReadLock({ timeout: NaN }),
    (e) => e instanceof RangeError && /NaN/.test(e.message),
  );
  await assert.rejects(rw.acquireWriteLock({ blocking: "no" as never }), TypeError);
  await assert.rejects(rw.withWriteLock(null as never), TypeError);
});
