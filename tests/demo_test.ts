// `deno task demo` run for real, in a child process with its output piped
// (so it prints plain progress lines, as on CI).

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const DEMO = fileURLToPath(new URL("../demo/main.ts", import.meta.url));
/** The issue asks for under 30 s on a 2-core machine; give a loaded CI box twice that. */
const LIMIT_MS = 60_000;
if (Deno.build.os === "windows") {
  console.log("demo test skipped on Windows: the demo is run and checked on Linux");
}

Deno.test({
  name: "demo: loses updates without a lock, none with each lock, and removes its files",
  ignore: Deno.build.os === "windows",
  async fn() {
    const start = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        DEMO,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // SIGINT makes the demo stop its children and remove its files itself.
    const timer = setTimeout(() => child.kill("SIGINT"), LIMIT_MS);
    const { code, stdout, stderr } = await child.output().finally(() => clearTimeout(timer));
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    const ms = performance.now() - start;
    assert.equal(code, 0, `exit ${code} after ${ms.toFixed(0)} ms\n${out}\n${err}`);
    assert.ok(ms < LIMIT_MS, `took ${ms.toFixed(0)} ms`);
    assert.equal(err, "");

    const steps = out.split(/\n(?=\d\. )/);
    assert.equal(steps.length, 5, out);
    const [, unlocked, locked, rw, thread] = steps;
    // Step 1 counts what it lost; losing none is possible (and said), so only its form is checked.
    assert.match(unlocked, /^1\. No lock: /);
    assert.match(unlocked, /^ {3}expected \d+, counter \d+, lost: \d+ /m);
    assert.match(locked, /^2\. InterProcessLock/);
    assert.match(locked, /expected (\d+), counter \1, lost: 0 /);
    assert.match(rw, /^3\. InterProcessReaderWriterLock/);
    const readers = Number(rw.match(/max concurrent readers: (\d+)/)?.[1]);
    assert.ok(readers >= 2, rw);
    assert.match(
      rw,
      /writer alone: yes \(writes with anyone else inside: 0, reads with a writer inside: 0\)/,
    );
    assert.match(rw, /reads that saw the counter change under them: 0\n/);
    assert.match(thread, /^4\. Thread Lock/);
    assert.match(thread, /expected (\d+), counter \1, lost: 0 /);
    assert.match(thread, /most Workers inside the Lock at once: 1\n/);
    assert.match(
      out,
      /files removed: yes; total time: \d+\.\d+ s\nall locked steps kept their promise\n$/,
    );

    const dir = out.match(/files in (\S+) /)?.[1];
    assert.ok(dir !== undefined, out);
    await assert.rejects(Deno.lstat(dir), Deno.errors.NotFound);
  },
});
