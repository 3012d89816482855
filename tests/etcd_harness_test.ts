// The etcd test harness itself: real etcd processes start, agree on a leader,
// survive a SIGKILL of a member (which rejoins), and leave nothing behind.

import assert from "node:assert/strict";
import { etcdMissing, startEtcd } from "./_etcd.ts";

const ignore = etcdMissing !== undefined;

/** Whether `pid` is a process (signal 0 is not offered: SIGCONT is harmless to a running one). */
function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "startEtcd() starts a 3-member cluster whose members agree on one leader",
  ignore,
  async fn() {
    await using cluster = await startEtcd({ members: 3 });
    assert.equal(cluster.endpoints.length, 3);
    assert.equal(new Set(cluster.endpoints).size, 3);
    for (const endpoint of cluster.endpoints) {
      assert.match(endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    }
    const leader = await cluster.leader();
    assert.ok(leader >= 0 && leader < 3);
    assert.equal((await cluster.followers()).length, 2);
    // A write through one member is read back (linearizably) through the others.
    await cluster.put("harness/a", "1");
    for (const endpoint of cluster.endpoints) {
      const response = await fetch(endpoint + "/v3/kv/range", {
        method: "POST",
        body: JSON.stringify({ key: btoa("harness/a") }),
      });
      const body = await response.json() as { kvs?: { value: string }[] };
      assert.equal(atob(body.kvs?.[0]?.value ?? ""), "1");
    }
  },
});

Deno.test({
  name: "a SIGKILLed leader restarts with its data dir and rejoins with the writes it missed",
  ignore,
  async fn() {
    await using cluster = await startEtcd({ members: 3 });
    const old = await cluster.leader();
    const oldPid = cluster.pid(old);
    await cluster.kill(old);
    assert.equal(cluster.members[old].running, false);
    assert.equal(alive(oldPid), false);
    // The two others elect a new leader and keep accepting writes.
    const leader = await cluster.leader();
    assert.notEqual(leader, old);
    await cluster.put("harness/missed", "yes");

    await cluster.restart(old);
    assert.notEqual(cluster.pid(old), oldPid);
    // Serializable read answered from the member's own store: it has caught up.
    const response = await fetch(cluster.endpoints[old] + "/v3/kv/range", {
      method: "POST",
      body: JSON.stringify({ key: btoa("harness/missed"), serializable: true }),
    });
    const body = await response.json() as { kvs?: { value: string }[] };
    assert.equal(atob(body.kvs?.[0]?.value ?? ""), "yes");
    assert.equal((await cluster.followers()).length, 2);
  },
});

Deno.test({
  name: "a SIGSTOPped member answers nothing until SIGCONT",
  ignore,
  async fn() {
    await using cluster = await startEtcd({ members: 1 });
    cluster.stop(0);
    // SIGSTOP takes effect as each of etcd's threads next enters the kernel: wait
    // (bounded) until ps reports the process stopped ("T") before asking it.
    const state = async () =>
      new TextDecoder().decode(
        (await new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(cluster.pid(0))] })
          .output()).stdout,
      ).trim();
    for (let i = 0; i < 200 && !(await state()).startsWith("T"); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.match(await state(), /^T/, "etcd never stopped");
    await assert.rejects(
      fetch(cluster.endpoints[0] + "/health", { signal: AbortSignal.timeout(300) }),
    );
    cluster.cont(0);
    await cluster.waitHealthy(0);
  },
});

Deno.test({
  name: "close() kills every member and removes every data dir, on tmpfs too",
  ignore,
  async fn() {
    // `await using` too, so that a failed assertion still stops etcd; the
    // explicit close() below is what is tested (and close() is idempotent).
    await using cluster = await startEtcd({ members: 1, tmpfs: true });
    const member = cluster.members[0];
    assert.ok(member.dataDir.startsWith("/dev/shm/"));
    const pid = member.pid;
    assert.ok(alive(pid));
    await cluster.put("harness/x", "1");
    assert.deepEqual((await cluster.keys("harness/")).map((k) => k.key), ["harness/x"]);
    await cluster.close();
    assert.equal(alive(pid), false);
    assert.equal(await exists(member.dataDir), false);
  },
});
