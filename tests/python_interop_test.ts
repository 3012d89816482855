// Deno and Python programs sharing one lock file (Linux: OFD locks conflict
// with the POSIX record locks that Python's fasteners takes with lockf).

import assert from "node:assert/strict";
import { InterProcessLock, InterProcessReaderWriterLock } from "../mod.ts";
import { pythonFasteners, tempDir } from "./_helpers.ts";

const SCRIPT = new URL("./fixtures/python_holder.py", import.meta.url).pathname;
const missing = Deno.build.os === "linux" ? await pythonFasteners() : "interop is Linux-only";
if (missing !== undefined) console.log(`python interop tests skipped: ${missing}`);

class Python implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #out: ReadableStreamDefaultReader<string>;
  readonly #in: WritableStreamDefaultWriter<Uint8Array>;

  constructor(mode: string, kind: string, path: string) {
    this.#child = new Deno.Command("/usr/bin/python3", {
      args: [SCRIPT, mode, kind, path],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    this.#out = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#in = this.#child.stdin.getWriter();
  }

  async line(): Promise<string> {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await this.#out.read();
      if (done) throw new Error(`python ended early after ${JSON.stringify(text)}`);
      text += value;
    }
    return text.trim();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#in.close().catch(() => {});
    await this.#out.cancel().catch(() => {});
    await this.#child.status;
  }
}

async function pythonTry(kind: string, path: string): Promise<string> {
  await using python = new Python("try", kind, path);
  return await python.line();
}

Deno.test({
  name: "InterProcessLock and Python fasteners' InterProcessLock exclude each other",
  ignore: missing !== undefined,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("shared.lock");
    const lock = new InterProcessLock(path);
    {
      await using python = new Python("hold", "lock", path);
      assert.equal(await python.line(), "locked");
      assert.equal(lock.acquireSync({ blocking: false }), false);
      assert.equal(await lock.acquire({ timeout: 30 }), false);
    }
    assert.ok(lock.acquireSync({ blocking: false }));
    assert.equal(await pythonTry("lock", path), "busy");
    lock.release();
    assert.equal(await pythonTry("lock", path), "acquired");
  },
});

Deno.test({
  name: "InterProcessReaderWriterLock and Python fasteners' reader-writer lock share and exclude",
  ignore: missing !== undefined,
  async fn() {
    await using dir = await tempDir();
    const path = dir.file("shared-rw.lock");
    const rw = new InterProcessReaderWriterLock(path);
    {
      await using python = new Python("hold", "read", path);
      assert.equal(await python.line(), "locked");
      assert.ok(rw.acquireReadLockSync({ blocking: false }), "a Python reader lets ours read");
      rw.releaseReadLock();
      assert.equal(rw.acquireWriteLockSync({ blocking: false }), false, "but not write");
    }
    {
      await using python = new Python("hold", "write", path);
      assert.equal(await python.line(), "locked");
      assert.equal(rw.acquireReadLockSync({ blocking: false }), false);
    }
    assert.ok(rw.acquireReadLockSync());
    assert.equal(await pythonTry("read", path), "acquired");
    assert.equal(await pythonTry("write", path), "busy");
    rw.releaseReadLock();
    assert.ok(rw.acquireWriteLockSync());
    assert.equal(await pythonTry("read", path), "busy");
    rw.releaseWriteLock();
    assert.equal(await pythonTry("write", path), "acquired");
  },
});
