// `deno task demo:etcd` in its short mode: clients in processes count under
// EtcdLock on a 3-member cluster whose leader is killed midway; nothing is lost.

import assert from "node:assert/strict";
import { etcdMissing } from "./_etcd.ts";
import { runDeno } from "./_helpers.ts";

Deno.test({
  name: "demo:etcd --short: the counter loses nothing although the leader is killed midway",
  ignore: etcdMissing !== undefined,
  async fn() {
    const { code, stdout, stderr } = await runDeno([
      "run",
      "--allow-run",
      "--allow-read",
      "--allow-write",
      "--allow-net=127.0.0.1",
      "--allow-env",
      new URL("../demo/etcd.ts", import.meta.url).href,
      "--short",
    ]);
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /SIGKILL of the leader, m\d/);
    assert.match(stdout, /rejoined the cluster/);
    assert.match(
      stdout,
      /counter = 24 \(expected 24, clients reported 24\), with the leader killed midway/,
    );
    assert.match(stdout, /nothing lost/);
  },
});
