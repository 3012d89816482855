// Security properties of lock files: what the library may and may not do to
// the file system.
//
// The library's choices, which these tests pin down:
// - An existing lock file is opened read-write without O_TRUNC and never
//   written: its content and mtime survive every lock kind.
// - A missing lock file is made with exclusive creation (O_CREAT|O_EXCL,
//   which never follows a symbolic link) and then opened without O_CREAT.
//   So a dangling symlink planted at the lock path is NOT followed into
//   creating its target: the acquisition fails with a LockError naming the
//   path, and the target still does not exist.
// - A symlink to an existing file IS followed (open(2) without O_NOFOLLOW):
//   the lock is taken on the target file, whose content is kept. This is what
//   Python's fasteners does too, and what lets a lock path be a link into a
//   shared folder.
// - New files get mode 0644 under the process umask; missing parent folders
//   are made with Deno.mkdirSync's default mode (0777 under the umask).
//
// Run with: deno test --allow-ffi --allow-read --allow-write --allow-env tests/security_test.ts

import assert from "node:assert/strict";
import { join } from "node:path";
import { InterProcessLock, InterProcessReaderWriterLock, LockError } from "../mod.ts";

const isLinux = Deno.build.os === "linux";
const notLinux = "mode bits and umask follow POSIX rules only asserted on Linux; " +
  "Windows has no symlink-safe exclusive creation to check here";
if (!isLinux) console.log(`security_test: some tests are ignored on ${Deno.build.os}: ${notLinux}`);

/** Every way to take and release each process lock kind once. */
const LOCK_KINDS: Record<string, (path: string) => Promise<void>> = {
  "InterProcessLock.acquire": async (p) => {
    const l = new InterProcessLock(p);
    assert.equal(await l.acquire(), true);
    l.release();
  },
  "InterProcessLock.acquireSync": (p) => {
    const l = new InterProcessLock(p);
    assert.equal(l.acquireSync({ timeout: 1000 }), true);
    l.release();
    return Promise.resolve();
  },
  "InterProcessLock.lock": async (p) => {
    await using _g = await new InterProcessLock(p).lock({ timeout: 1000 });
  },
  "InterProcessLock.lockSync": (p) => {
    using _g = new InterProcessLock(p).lockSync();
    return Promise.resolve();
  },
  "InterProcessLock.withLock": async (p) => {
    await new InterProcessLock(p).withLock(() => {});
  },
  "InterProcessReaderWriterLock.acquireReadLock": async (p) => {
    const l = new InterProcessReaderWriterLock(p);
    assert.equal(await l.acquireReadLock(), true);
    l.releaseReadLock();
  },
  "InterProcessReaderWriterLock.acquireWriteLockSync": (p) => {
    const l = new InterProcessReaderWriterLock(p);
    assert.equal(l.acquireWriteLockSync(), true);
    l.releaseWriteLock();
    return Promise.resolve();
  },
  "InterProcessReaderWriterLock.acquireReadLockSync": (p) => {
    const l = new InterProcessReaderWriterLock(p);
    assert.equal(l.acquireReadLockSync({ timeout: 100 }), true);
    l.releaseReadLock();
    return Promise.resolve();
  },
  "InterProcessReaderWriterLock.acquireWriteLock": async (p) => {
    const l = new InterProcessReaderWriterLock(p);
    assert.equal(await l.acquireWriteLock({ blocking: false }), true);
    l.releaseWriteLock();
  },
  "InterProcessReaderWriterLock.withReadLock": async (p) => {
    await new InterProcessReaderWriterLock(p).withReadLock(() => {});
  },
  "InterProcessReaderWriterLock.withWriteLock": async (p) => {
    await new InterProcessReaderWriterLock(p).withWriteLock(() => {});
  },
  "InterProcessReaderWriterLock.readLockSync+writeLock": async (p) => {
    const l = new InterProcessReaderWriterLock(p);
    {
      using _r = l.readLockSync();
    }
    await using _w = await l.writeLock({ timeout: 1000 });
  },
};

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fasteners_security_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The umask of this process, read without changing it when Deno.umask is unavailable. */
function currentUmask(): number {
  try {
    // Deno.umask() with no argument only reads (it sets and restores internally).
    return Deno.umask();
  } catch {
    const out = new Deno.Command("sh", { args: ["-c", "umask"] }).outputSync();
    return parseInt(new TextDecoder().decode(out.stdout).trim(), 8);
  }
}

Deno.test("an existing lock file keeps its content and mtime across lock/unlock by every lock kind", async () => {
  await withTempDir(async (dir) => {
    const content = new TextEncoder().encode("precious data\n\x00\xff not a lock\n");
    for (const [kind, use] of Object.entries(LOCK_KINDS)) {
      const path = join(dir, `${kind}.lock`);
      await Deno.writeFile(path, content);
      // An old mtime, so that any write would show however coarse the clock.
      const old = new Date("2001-02-03T04:05:06Z");
      await Deno.utime(path, old, old);
      const before = await Deno.stat(path);
      await use(path);
      await use(path);
      const after = await Deno.stat(path);
      assert.deepEqual(await Deno.readFile(path), content, `${kind} changed the content`);
      assert.equal(after.size, before.size, `${kind} changed the size`);
      assert.equal(after.mtime?.getTime(), before.mtime?.getTime(), `${kind} changed the mtime`);
      assert.equal(after.mode, before.mode, `${kind} changed the mode`);
    }
  });
});

Deno.test("an empty existing lock file stays empty after every lock kind", async () => {
  await withTempDir(async (dir) => {
    for (const [kind, use] of Object.entries(LOCK_KINDS)) {
      const path = join(dir, `${kind}.lock`);
      await use(path); // creates it
      await use(path);
      assert.equal((await Deno.stat(path)).size, 0, `${kind} wrote to a new lock file`);
    }
  });
});

Deno.test({
  name: "a dangling symlink at the lock path is not followed into creating its target",
  ignore: !isLinux && Deno.build.os !== "darwin",
  fn: async () => {
    await withTempDir(async (dir) => {
      for (const [kind, use] of Object.entries(LOCK_KINDS)) {
        const target = join(dir, `${kind}.target`);
        const link = join(dir, `${kind}.lock`);
        await Deno.symlink(target, link);
        await assert.rejects(
          async () => await use(link),
          (e: unknown) => {
            assert.ok(e instanceof LockError, `${kind}: expected LockError, got ${e}`);
            assert.ok(e.message.includes(link), `${kind}: message lacks the path: ${e.message}`);
            assert.equal(e.path, link);
            return true;
          },
        );
        await assert.rejects(() => Deno.lstat(target), Deno.errors.NotFound, `${kind} made it`);
        assert.ok((await Deno.lstat(link)).isSymlink, `${kind} replaced the link`);
      }
    });
  },
});

Deno.test({
  name: "a symlink to an existing file is followed: the target is locked and keeps its content",
  ignore: !isLinux && Deno.build.os !== "darwin",
  fn: async () => {
    await withTempDir(async (dir) => {
      const target = join(dir, "real.lock");
      const content = new TextEncoder().encode("keep me");
      await Deno.writeFile(target, content);
      const link = join(dir, "link.lock");
      await Deno.symlink(target, link);
      for (const [kind, use] of Object.entries(LOCK_KINDS)) {
        await use(link);
        assert.deepEqual(await Deno.readFile(target), content, `${kind} changed the target`);
      }
      // The lock taken through the link is the lock of the target.
      const viaLink = new InterProcessLock(link);
      const direct = new InterProcessLock(target);
      assert.equal(viaLink.acquireSync({ blocking: false }), true);
      try {
        assert.equal(direct.acquireSync({ blocking: false }), false);
      } finally {
        viaLink.release();
      }
      assert.equal(direct.acquireSync({ blocking: false }), true);
      direct.release();
    });
  },
});

Deno.test({
  name: "new lock files get mode 0644 under the umask, also with a restrictive umask",
  ignore: !isLinux,
  fn: async () => {
    await withTempDir(async (dir) => {
      const umask = currentUmask();
      for (const [kind, use] of Object.entries(LOCK_KINDS)) {
        const path = join(dir, `${kind}.lock`);
        await use(path);
        const mode = Deno.statSync(path).mode! & 0o777;
        assert.equal(
          mode.toString(8),
          (0o644 & ~umask).toString(8),
          `${kind}: mode under umask ${umask.toString(8)}`,
        );
      }
      // A child with umask 077 must get 0600: the library's mode goes through the umask.
      const path = join(dir, "child.lock");
      const script = `import { InterProcessLock } from ${
        JSON.stringify(new URL("../mod.ts", import.meta.url).href)
      };
        const l = new InterProcessLock(${JSON.stringify(path)}); l.acquireSync(); l.release();`;
      const out = await new Deno.Command("sh", {
        args: [
          "-c",
          `umask 077 && exec "$0" eval --quiet --allow-ffi --allow-read --allow-write "$1"`,
          Deno.execPath(),
          script,
        ],
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal((Deno.statSync(path).mode! & 0o777).toString(8), "600");
    });
  },
});

Deno.test({
  name: "missing parent folders are created with the default mode under the umask",
  ignore: !isLinux,
  fn: async () => {
    await withTempDir(async (dir) => {
      const umask = currentUmask();
      const path = join(dir, "a", "b", "c.lock");
      await LOCK_KINDS["InterProcessLock.acquire"](path);
      for (const folder of [join(dir, "a"), join(dir, "a", "b")]) {
        const st = Deno.statSync(folder);
        assert.ok(st.isDirectory);
        assert.equal((st.mode! & 0o777).toString(8), (0o777 & ~umask).toString(8), folder);
      }
      assert.equal((Deno.statSync(path).mode! & 0o777).toString(8), (0o644 & ~umask).toString(8));
    });
  },
});

Deno.test({
  name: "a symlinked parent folder that dangles is not created",
  ignore: !isLinux,
  fn: async () => {
    await withTempDir(async (dir) => {
      const target = join(dir, "elsewhere");
      await Deno.symlink(target, join(dir, "parent"));
      const path = join(dir, "parent", "x.lock");
      const lock = new InterProcessLock(path);
      assert.throws(() => lock.acquireSync(), (e: unknown) => {
        assert.ok(e instanceof LockError, String(e));
        assert.ok(e.message.includes(path), e.message);
        return true;
      });
      await assert.rejects(() => Deno.lstat(target), Deno.errors.NotFound);
    });
  },
});
