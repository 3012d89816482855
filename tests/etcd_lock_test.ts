// EtcdLock and EtcdClient against a real single-node etcd (tests/_etcd.ts):
// exclusion between clients, within one client, fencing tokens, no key left
// behind, close(), the lost-lock signal, bad input. Each test starts its own
// etcd and stops it; Deno's sanitizers check that nothing of a closed client
// keeps running.

import assert from "node:assert/strict";
import { EtcdClient, EtcdLock, LockError, LockTimeoutError } from "../etcd/mod.ts";
import { etcdMissing, startEtcd } from "./_etcd.ts";
import { aborted, closedPort, until } from "./_etcd_wait.ts";

const ignore = etcdMissing !== undefined;

Deno.test({
  name: "EtcdLock excludes another client until release(), then hands it over with a greater token",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using a = new EtcdClient({ endpoints: cluster.endpoints });
    await using b = new EtcdClient({ endpoints: cluster.endpoints });
    const la = new EtcdLock(a, "jobs/nightly");
    const lb = new EtcdLock(b, "jobs/nightly");
    assert.equal(la.acquired, false);
    assert.equal(la.fencingToken, undefined);
    assert.equal(la.signal, undefined);
    assert.equal(await la.acquire(), true);
    assert.equal(la.acquired, true);
    const first = la.fencingToken!;
    assert.equal(typeof first, "bigint");
    assert.equal(await lb.acquire({ blocking: false }), false);
    const waiting = lb.acquire();
    await until(async () => (await cluster.keys("jobs/nightly/")).length === 2, "b's key in line");
    await la.release();
    assert.equal(la.acquired, false);
    assert.equal(await waiting, true);
    assert.ok(lb.fencingToken! > first, `${lb.fencingToken} > ${first}`);
    const keys = await cluster.keys("jobs/nightly/");
    assert.equal(keys.length, 1);
    assert.equal(keys[0].createRevision, lb.fencingToken);
    await lb.release();
    assert.deepEqual(await cluster.keys("jobs/nightly/"), []);
  },
});

Deno.test({
  name:
    "EtcdLock fencing tokens strictly increase from holder to holder, never two holders at once",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const clients = [0, 1, 2].map(() => new EtcdClient({ endpoints: cluster.endpoints }));
    try {
      let inside = 0;
      const tokens: bigint[] = [];
      await Promise.all(clients.map(async (client) => {
        const lock = new EtcdLock(client, "counter");
        for (let i = 0; i < 6; i++) {
          await lock.withLock(async ({ fencingToken, signal }) => {
            assert.equal(inside++, 0, "two holders at once");
            assert.equal(signal.aborted, false);
            tokens.push(fencingToken);
            await new Promise((resolve) => setTimeout(resolve, 1));
            inside--;
          });
        }
      }));
      assert.equal(tokens.length, 18);
      for (let i = 1; i < tokens.length; i++) {
        assert.ok(tokens[i] > tokens[i - 1], `token ${tokens[i]} after ${tokens[i - 1]}`);
      }
      assert.deepEqual(await cluster.keys("counter/"), []);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  },
});

Deno.test({
  name: "EtcdLock: when a waiter in the middle of the line gives up, the one behind it still waits",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const [a, b, c] = [0, 1, 2].map(() => new EtcdClient({ endpoints: cluster.endpoints }));
    try {
      const la = new EtcdLock(a, "line");
      await la.acquire();
      const controller = new AbortController();
      const middle = new EtcdLock(b, "line").acquire({ signal: controller.signal });
      await until(async () => (await cluster.keys("line/")).length === 2, "b in line");
      const lc = new EtcdLock(c, "line");
      let cHolds = false;
      const last = lc.acquire().then((ok) => cHolds = ok);
      last.catch(() => {});
      await until(async () => (await cluster.keys("line/")).length === 3, "c in line");
      controller.abort(new Error("b gives up"));
      await assert.rejects(middle, /b gives up/);
      // c watched b's key; b's going is not a's: c re-checks and waits for a.
      await until(async () => (await cluster.keys("line/")).length === 2, "b's key gone");
      await until(() => c.requestCounts()["/v3/watch"] === 2, "c watching a's key");
      assert.equal(lc.acquired, false);
      assert.equal(cHolds, false);
      await la.release();
      await last;
      assert.equal(cHolds, true);
      await lc.release();
    } finally {
      await Promise.all([a, b, c].map((client) => client.close()));
    }
  },
});

Deno.test({
  name: "EtcdLock: a false, a timeout and an abort leave no key behind",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using a = new EtcdClient({ endpoints: cluster.endpoints });
    await using b = new EtcdClient({ endpoints: cluster.endpoints });
    const la = new EtcdLock(a, "busy");
    const lb = new EtcdLock(b, "busy");
    await la.acquire();
    const holderOnly = async () => {
      const keys = await cluster.keys("busy/");
      assert.equal(keys.length, 1);
      assert.equal(keys[0].createRevision, la.fencingToken);
    };
    assert.equal(await lb.acquire({ blocking: false }), false);
    await holderOnly();
    assert.equal(await lb.acquire({ timeout: 0 }), false);
    await holderOnly();
    assert.equal(await lb.acquire({ timeout: 200 }), false);
    await holderOnly();
    await assert.rejects(lb.lock({ timeout: 100 }), LockTimeoutError);
    await holderOnly();
    const controller = new AbortController();
    const waiting = lb.acquire({ signal: controller.signal });
    await until(async () => (await cluster.keys("busy/")).length === 2, "b's key in line");
    const reason = new Error("stop waiting");
    controller.abort(reason);
    await assert.rejects(waiting, (error) => error === reason);
    await holderOnly();
    assert.equal(lb.acquired, false);
    // An already aborted signal sends nothing.
    await assert.rejects(lb.acquire({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
    await la.release();
    assert.equal(await lb.acquire({ blocking: false }), true);
    await lb.release();
  },
});

Deno.test({
  name: "EtcdLock: two lock objects and concurrent async tasks of one client exclude each other",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const one = new EtcdLock(client, "shared");
    const two = new EtcdLock(client, "shared");
    assert.equal(await one.acquire(), true);
    assert.equal(await two.acquire({ blocking: false }), false);
    assert.equal(await two.acquire({ timeout: 50 }), false);
    const waiting = two.acquire();
    await one.release();
    assert.equal(await waiting, true);
    assert.ok(two.fencingToken! > 0n);
    await two.release();

    let inside = 0;
    const tokens: bigint[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? one : two).withLock(async ({ fencingToken }) => {
          assert.equal(inside++, 0, "two tasks inside at once");
          tokens.push(fencingToken);
          await new Promise((resolve) => setTimeout(resolve, 1));
          inside--;
        })),
    );
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1]);
    assert.deepEqual(await cluster.keys("shared/"), []);
  },
});

Deno.test({
  name:
    "EtcdLock uses etcd's Mutex key: <name>/<lease id in hex>, value-free of meaning, under the lease",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const lock = new EtcdLock(client, "scheme");
    await using _guard = await lock.lock();
    const [key] = await cluster.keys("scheme/");
    assert.ok(key.lease > 0n);
    assert.equal(key.key, `scheme/${key.lease.toString(16)}`);
    assert.equal(key.createRevision, lock.fencingToken);
  },
});

Deno.test({
  name: "EtcdLock: a non-ASCII name excludes like any other (keys are UTF-8, base64 on the wire)",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using a = new EtcdClient({ endpoints: cluster.endpoints });
    await using b = new EtcdClient({ endpoints: cluster.endpoints });
    const name = "tâches/nuit-🌙";
    await new EtcdLock(a, name).acquire();
    const lb = new EtcdLock(b, name);
    assert.equal(await lb.acquire({ blocking: false }), false);
    // A name that differs only in its last byte is another lock.
    assert.equal(await new EtcdLock(b, "tâches/nuit-🌚").acquire({ blocking: false }), true);
  },
});

Deno.test({
  name:
    "EtcdLock.withLock() passes fencingToken and signal, returns fn's value, releases when fn throws",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    const lock = new EtcdLock(client, "with");
    const result = await lock.withLock(({ fencingToken, signal }) => {
      assert.equal(lock.acquired, true);
      assert.equal(lock.fencingToken, fencingToken);
      assert.equal(lock.signal, signal);
      return 42;
    });
    assert.equal(result, 42);
    assert.equal(lock.acquired, false);
    const failure = new Error("inside");
    await assert.rejects(lock.withLock(() => Promise.reject(failure)), (e) => e === failure);
    assert.equal(lock.acquired, false);
    assert.deepEqual(await cluster.keys("with/"), []);
    {
      await using guard = await lock.lock();
      assert.equal(guard.fencingToken, lock.fencingToken);
      assert.equal(guard.signal.aborted, false);
    }
    assert.equal(lock.acquired, false);
    const guard = await lock.lock();
    await guard.release();
    await assert.rejects(guard.release(), LockError);
  },
});

Deno.test({
  name: "EtcdClient.close() revokes the lease: holds end with their signals aborted, waits reject",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using other = new EtcdClient({ endpoints: cluster.endpoints });
    const client = new EtcdClient({ endpoints: cluster.endpoints });
    const held = new EtcdLock(client, "held");
    const waiter = new EtcdLock(client, "taken");
    await new EtcdLock(other, "taken").acquire();
    await held.acquire();
    const signal = held.signal!;
    const waiting = waiter.acquire();
    await until(async () => (await cluster.keys("taken/")).length === 2, "the waiter's key");
    const rejected = assert.rejects(waiting, (e) => e instanceof LockError && e.code === "CLOSED");
    await client.close();
    assert.equal(client.closed, true);
    assert.equal(held.acquired, false);
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof LockError);
    assert.equal(signal.reason.code, "LEASE_EXPIRED");
    await rejected;
    assert.deepEqual(await cluster.keys("held/"), []);
    assert.equal((await cluster.keys("taken/")).length, 1);
    await held.release(); // the loss was reported by the signal
    await assert.rejects(held.acquire(), (e) => e instanceof LockError && e.code === "CLOSED");
    await client.close(); // again: nothing
  },
});

Deno.test({
  name: "EtcdLock's signal aborts with KEY_DELETED when etcdctl deletes the holder's key",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints });
    await using other = new EtcdClient({ endpoints: cluster.endpoints });
    const lock = new EtcdLock(client, "deleted");
    const result = lock.withLock(async ({ signal }) => {
      const [key] = await cluster.keys("deleted/");
      const del = await new Deno.Command("etcdctl", {
        args: [`--endpoints=${cluster.endpoints[0]}`, "del", key.key],
        env: { ETCDCTL_API: "3" },
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(del.success, true);
      const reason = await aborted(signal);
      assert.ok(reason instanceof LockError);
      assert.equal(reason.code, "KEY_DELETED");
      assert.equal(lock.acquired, false);
      return "done";
    });
    // The loss does not mask the callback's own result.
    assert.equal(await result, "done");
    assert.equal(await new EtcdLock(other, "deleted").acquire({ blocking: false }), true);
  },
});

Deno.test({
  name:
    "EtcdLock: a lease revoked by someone else ends the hold; the next acquire takes a new lease",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints, ttl: 2_000 });
    const lock = new EtcdLock(client, "revoked");
    await lock.acquire();
    const signal = lock.signal!;
    const [key] = await cluster.keys("revoked/");
    const revoke = await new Deno.Command("etcdctl", {
      args: [`--endpoints=${cluster.endpoints[0]}`, "lease", "revoke", key.lease.toString(16)],
      env: { ETCDCTL_API: "3" },
      stdout: "null",
      stderr: "null",
    }).output();
    assert.equal(revoke.success, true);
    const reason = await aborted(signal);
    assert.ok(reason instanceof LockError);
    assert.ok(reason.code === "KEY_DELETED" || reason.code === "LEASE_EXPIRED", reason.code);
    assert.equal(lock.acquired, false);
    await lock.release();
    // The keep-alive learns that the lease is gone; a later acquisition takes a new one.
    await until(async () => {
      if (!(await lock.acquire({ blocking: false }))) return false;
      const [now] = await cluster.keys("revoked/");
      if (now.lease === key.lease) throw new Error("a key under the revoked lease");
      return true;
    }, "an acquisition under a new lease");
    await lock.release();
  },
});

Deno.test({
  name: "EtcdLock: a hold outlives its ttl many times over: the lease is renewed every ttl/3",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using client = new EtcdClient({ endpoints: cluster.endpoints, ttl: 2_000 });
    const lock = new EtcdLock(client, "long");
    await using guard = await lock.lock();
    const renewals = () => client.requestCounts()["/v3/lease/keepalive"] ?? 0;
    // Five renewals take more than 1.5 ttl: without them the key would be gone.
    await until(() => renewals() >= 5, "five renewals");
    assert.equal(guard.signal.aborted, false);
    assert.equal(lock.acquired, true);
    const [key] = await cluster.keys("long/");
    assert.equal(key.createRevision, guard.fencingToken);
  },
});

Deno.test({
  name: "EtcdLock: idle waiting sends nothing but keep-alives",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    await using a = new EtcdClient({ endpoints: cluster.endpoints, ttl: 2_000 });
    await using b = new EtcdClient({ endpoints: cluster.endpoints, ttl: 2_000 });
    const la = new EtcdLock(a, "idle");
    await la.acquire();
    const waiting = new EtcdLock(b, "idle").acquire();
    await until(() => (b.requestCounts()["/v3/watch"] ?? 0) === 1, "the waiter's watch");
    const before = b.requestCounts();
    const renewals = (counts: Record<string, number>) => counts["/v3/lease/keepalive"] ?? 0;
    await until(() => renewals(b.requestCounts()) >= renewals(before) + 2, "two renewals");
    const after = b.requestCounts();
    for (const path of Object.keys(after)) {
      if (path !== "/v3/lease/keepalive") assert.equal(after[path], before[path], path);
    }
    await la.release();
    assert.equal(await waiting, true);
  },
});

Deno.test({
  name: "EtcdClient moves on to the next endpoint when one does not answer",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const dead = await closedPort();
    await using client = new EtcdClient({ endpoints: [dead, ...cluster.endpoints] });
    const lock = new EtcdLock(client, "failover");
    assert.equal(await lock.acquire({ blocking: false }), true);
    await lock.release();
  },
});

Deno.test("EtcdLock: blocking: false with no endpoint answering fails UNAVAILABLE at once", async () => {
  await using client = new EtcdClient({ endpoints: await closedPort() });
  const lock = new EtcdLock(client, "nowhere");
  await assert.rejects(
    lock.acquire({ blocking: false }),
    (e) => e instanceof LockError && e.code === "UNAVAILABLE",
  );
  assert.equal(lock.acquired, false);
});

Deno.test("EtcdClient and EtcdLock reject bad input, naming the value", async () => {
  assert.throws(
    () => new EtcdClient({ endpoints: "ftp://x:1" }),
    (e) => e instanceof TypeError && /ftp:\/\/x:1/.test(e.message),
  );
  assert.throws(() => new EtcdClient({ endpoints: "not a url" }), TypeError);
  assert.throws(() => new EtcdClient({ endpoints: [] }), TypeError);
  assert.throws(() => new EtcdClient({ endpoints: [42 as unknown as string] }), /42/);
  assert.throws(() => new EtcdClient(undefined as never), TypeError);
  assert.throws(
    () => new EtcdClient({ endpoints: "http://127.0.0.1:2379", ttl: 1_000 }),
    (e) => e instanceof RangeError && /1000/.test(e.message),
  );
  assert.throws(() => new EtcdClient({ endpoints: "http://127.0.0.1:2379", ttl: NaN }), RangeError);
  assert.throws(
    () => new EtcdClient({ endpoints: "http://127.0.0.1:2379", ttl: "5" as never }),
    TypeError,
  );
  await using client = new EtcdClient({ endpoints: "http://127.0.0.1:2379/", ttl: 2_500 });
  assert.deepEqual(client.endpoints, ["http://127.0.0.1:2379"]);
  assert.equal(client.ttl, 3_000); // whole seconds, rounded up
  assert.throws(() => new EtcdLock({} as EtcdClient, "x"), TypeError);
  assert.throws(() => new EtcdLock(client, ""), RangeError);
  assert.throws(() => new EtcdLock(client, 7 as unknown as string), /7/);
  const lock = new EtcdLock(client, "x");
  await assert.rejects(
    lock.acquire({ timeout: -1 }),
    (e) => e instanceof RangeError && /-1/.test(e.message),
  );
  await assert.rejects(lock.release(), (e) => e instanceof LockError && /not held/.test(e.message));
  await assert.rejects(lock.withLock(42 as never), TypeError);
});

Deno.test({
  name: "EtcdClient logs in with username and password; refused credentials are LockError AUTH",
  ignore,
  async fn() {
    await using cluster = await startEtcd();
    const etcdctl = async (...args: string[]) => {
      const out = await new Deno.Command("etcdctl", {
        args: [`--endpoints=${cluster.endpoints[0]}`, ...args],
        env: { ETCDCTL_API: "3" },
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
    };
    await etcdctl("user", "add", "root:secret");
    await etcdctl("auth", "enable");
    await using anonymous = new EtcdClient({ endpoints: cluster.endpoints });
    await assert.rejects(
      new EtcdLock(anonymous, "auth").acquire(),
      (e) => e instanceof LockError && e.code === "AUTH",
    );
    await using wrong = new EtcdClient({
      endpoints: cluster.endpoints,
      username: "root",
      password: "wrong",
    });
    await assert.rejects(
      new EtcdLock(wrong, "auth").acquire(),
      (e) => e instanceof LockError && e.code === "AUTH",
    );
    await using a = new EtcdClient({
      endpoints: cluster.endpoints,
      username: "root",
      password: "secret",
    });
    await using b = new EtcdClient({
      endpoints: cluster.endpoints,
      username: "root",
      password: "secret",
    });
    const la = new EtcdLock(a, "auth");
    await la.acquire();
    const waiting = new EtcdLock(b, "auth").acquire(); // its watch carries the token too
    await until(() => (b.requestCounts()["/v3/watch"] ?? 0) === 1, "the waiter's watch");
    await la.release();
    assert.equal(await waiting, true);
  },
});
