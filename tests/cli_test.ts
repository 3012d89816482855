// The command line (cli.ts) run for real: each test starts `deno run cli.ts`
// processes whose commands are small sh scripts. The scripts leave marker
// files and wait for files that the test creates, so that the test decides
// when each one may finish; nothing is synchronised by sleeping.

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const DENO_JSON = fileURLToPath(new URL("../deno.json", import.meta.url));
const PERMISSIONS = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-run"];
/** The commands are sh scripts; Windows has no sh. */
const ignore = Deno.build.os === "windows";
if (ignore) {
  console.log(
    "cli tests skipped on Windows: their commands are sh scripts and they send POSIX signals",
  );
}
/** The longest any single wait in these tests may take before it counts as a failure. */
const DEADLINE_MS = 15_000;

/** One running CLI, its output collected as it comes. */
class Cli {
  readonly process: Deno.ChildProcess;
  readonly started = performance.now();
  stdout = "";
  stderr = "";
  readonly #done: Promise<void>;
  #seen: (() => void) | undefined;

  constructor(args: string[]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...PERMISSIONS, CLI, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#done = Promise.all([
      this.#collect(this.process.stdout, (t) => this.stdout += t),
      this.#collect(this.process.stderr, (t) => this.stderr += t),
    ]).then(() => {});
  }

  async #collect(stream: ReadableStream<Uint8Array>, add: (text: string) => void) {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      add(text);
      this.#seen?.();
    }
  }

  /** Waits until stderr contains `text` (or the CLI ends without it: throws). */
  async stderrIncludes(text: string): Promise<void> {
    const deadline = performance.now() + DEADLINE_MS;
    let ended = false;
    this.#done.then(() => ended = true);
    while (!this.stderr.includes(text)) {
      if (ended) {
        throw new Error(`CLI ended without printing ${JSON.stringify(text)}:\n${this.stderr}`);
      }
      if (performance.now() > deadline) throw new Error(`no ${JSON.stringify(text)} in time`);
      await new Promise<void>((resolve) => {
        this.#seen = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  /**
   * Waits for the exit status, with all output read. Throws after
   * `DEADLINE_MS`, so that a command left waiting fails the test instead of
   * hanging it (a command that outlives the CLI keeps its pipes open).
   */
  async status(): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`CLI not done in time:\n${this.stderr}`)),
        DEADLINE_MS,
      );
    });
    try {
      const [status] = await Promise.race([Promise.all([this.process.status, this.#done]), late]);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Exit code, output and the time from spawn to exit. */
  async result(): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const { code } = await this.status();
    return { code, stdout: this.stdout, stderr: this.stderr, ms: performance.now() - this.started };
  }

  /** Ends the CLI if it still runs (SIGKILL), and waits for it. */
  async kill(): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // Already ended.
    }
    await Promise.all([this.process.status, this.#done]);
  }
}

/** Runs the CLI to its end. */
function cli(...args: string[]) {
  return new Cli(args).result();
}

/** Polls for a file made by a command (the commands cannot send messages). */
async function waitForFile(path: string): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS;
  for (;;) {
    try {
      await Deno.lstat(path);
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (performance.now() > deadline) throw new Error(`${path} did not appear in time`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A sh script that makes `started`, then waits until `release` exists. */
function holdUntil(started: string, release: string): string {
  return `: > '${started}'; until [ -e '${release}' ]; do sleep 0.01; done`;
}

/**
 * A temp folder for one test. Disposing it makes every file named in
 * `releases` (so that no waiting command is left behind), kills the CLIs
 * still running, and removes the folder.
 */
async function scratch() {
  const dir = await Deno.makeTempDir({ prefix: "fasteners_cli_" });
  const clis: Cli[] = [];
  const releases: string[] = [];
  return {
    dir,
    lock: join(dir, "lock"),
    path: (name: string) => join(dir, name),
    /** Starts a CLI that this scratch will clean up. */
    start(...args: string[]): Cli {
      const c = new Cli(args);
      clis.push(c);
      return c;
    },
    /** A file whose creation lets a waiting command end. */
    release(name: string): string {
      const path = join(dir, name);
      releases.push(path);
      return path;
    },
    async [Symbol.asyncDispose]() {
      for (const path of releases) await Deno.writeTextFile(path, "").catch(() => {});
      await Promise.all(clis.map((c) => c.kill()));
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "cli: two CLIs on one lock run their commands one after the other",
  ignore,
  async fn() {
    await using s = await scratch();
    const log = s.path("log");
    const go = s.release("go");
    const a = s.start(
      s.lock,
      "-c",
      `echo a-start >> '${log}'; ${holdUntil(s.path("a.started"), go)}; echo a-end >> '${log}'`,
    );
    await waitForFile(s.path("a.started"));
    const b = s.start("-v", s.lock, "sh", "-c", `echo b-start >> '${log}'; echo b-end >> '${log}'`);
    await b.stderrIncludes("waiting for exclusive lock");
    // B is blocked: its command has not run while A's still holds the lock.
    assert.equal(await Deno.readTextFile(log), "a-start\n");
    await Deno.writeTextFile(go, "");
    const [ra, rb] = await Promise.all([a.result(), b.result()]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(await Deno.readTextFile(log), "a-start\na-end\nb-start\nb-end\n");
    assert.match(rb.stderr, /getting exclusive lock on .* took \d+\.\d+ seconds/);
  },
});

Deno.test({
  name: "cli: -n exits with the conflict status (1, or -E n) without running the command",
  ignore,
  async fn() {
    await using s = await scratch();
    const holder = s.start(s.lock, "-c", holdUntil(s.path("held"), s.release("go")));
    await waitForFile(s.path("held"));
    const ran = s.path("ran");
    const [plain, seven, zero, nb] = await Promise.all([
      cli("-n", s.lock, "touch", ran),
      cli("-n", "-E", "7", s.lock, "touch", ran),
      cli("-w", "0", "--conflict-exit-code=9", s.lock, "touch", ran),
      cli("-nv", s.lock, "touch", ran),
    ]);
    assert.equal(plain.code, 1, plain.stderr);
    assert.equal(plain.stderr, "", "-n without -v is silent, as flock(1)");
    assert.equal(seven.code, 7, seven.stderr);
    assert.equal(zero.code, 9, zero.stderr);
    assert.equal(nb.code, 1, nb.stderr);
    assert.match(nb.stderr, /failed to get lock/);
    assert.equal(await exists(ran), false);
    await Deno.writeTextFile(s.path("go"), "");
    assert.equal((await holder.result()).code, 0);
    // Free again: -n gets it at once.
    assert.equal((await cli("-n", s.lock, "touch", ran)).code, 0);
    assert.equal(await exists(ran), true);
  },
});

Deno.test({
  name: "cli: -w 0.2 gives up with the conflict status after about 0.2 s",
  ignore,
  async fn() {
    await using s = await scratch();
    const holder = s.start(s.lock, "-c", holdUntil(s.path("held"), s.release("go")));
    await waitForFile(s.path("held"));
    const waiter = s.start("-v", "-w", "0.2", "-E", "75", s.lock, "touch", s.path("ran"));
    await waiter.stderrIncludes("waiting for exclusive lock");
    const waitingAt = performance.now();
    const r = await waiter.result();
    const waited = performance.now() - waitingAt;
    assert.equal(r.code, 75, r.stderr);
    assert.match(r.stderr, /timeout while waiting to get lock/);
    // It gave up no sooner than 0.2 s after starting, and not much later.
    assert.ok(r.ms >= 200, `ended ${r.ms.toFixed(0)} ms after spawn`);
    assert.ok(waited < 2000, `ended ${waited.toFixed(0)} ms after saying it waits`);
    assert.equal(await exists(s.path("ran")), false);
    await Deno.writeTextFile(s.path("go"), "");
    assert.equal((await holder.result()).code, 0);
  },
});

Deno.test({
  name: "cli: -s lets two shared holders run their commands at the same time",
  ignore,
  async fn() {
    await using s = await scratch();
    // Each command ends only once it has seen the other's marker: they can
    // both end only if both hold the lock together.
    const a = s.start("-s", s.lock, "-c", holdUntil(s.path("a.in"), s.release("b.in")));
    const b = s.start("--shared", s.lock, "-c", holdUntil(s.path("b.in"), s.release("a.in")));
    const [ra, rb] = await Promise.all([a.result(), b.result()]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
  },
});

Deno.test({
  name: "cli: a shared holder keeps -x out, and an exclusive holder keeps -s out",
  ignore,
  async fn() {
    await using s = await scratch();
    const reader = s.start("-s", s.lock, "-c", holdUntil(s.path("r"), s.release("r.go")));
    await waitForFile(s.path("r"));
    assert.equal((await cli("-n", s.lock, "true")).code, 1);
    assert.equal((await cli("-n", "-s", s.lock, "true")).code, 0);
    await Deno.writeTextFile(s.path("r.go"), "");
    assert.equal((await reader.result()).code, 0);

    const writer = s.start("-x", s.lock, "-c", holdUntil(s.path("w"), s.release("w.go")));
    await waitForFile(s.path("w"));
    assert.equal((await cli("-n", "-s", s.lock, "true")).code, 1);
    await Deno.writeTextFile(s.path("w.go"), "");
    assert.equal((await writer.result()).code, 0);
  },
});

Deno.test({
  name: "cli: the command's exit status is passed through, 128+N for a signal",
  ignore,
  async fn() {
    await using s = await scratch();
    const [ok, fortyTwo, falseCode, term, kill, args] = await Promise.all([
      cli(s.lock, "true"),
      cli(s.lock, "sh", "-c", "exit 42"),
      cli(s.lock, "false"),
      cli("-c", "kill -TERM $$", s.lock),
      cli(s.lock, "-c", "kill -KILL $$"),
      cli(s.lock, "sh", "-c", 'printf "%s|" "$@"', "sh", "a b", "", "-c"),
    ]);
    assert.equal(ok.code, 0);
    assert.equal(fortyTwo.code, 42);
    assert.equal(falseCode.code, 1);
    assert.equal(term.code, 128 + 15);
    assert.equal(kill.code, 128 + 9);
    // Arguments reach the command untouched, option-like ones included.
    assert.equal(args.code, 0, args.stderr);
    assert.equal(args.stdout, "a b||-c|");
  },
});

Deno.test({
  name: "cli: bad arguments print the usage on stderr and exit 64",
  ignore,
  async fn() {
    await using s = await scratch();
    const cases = [
      [],
      [s.lock],
      ["-w"],
      ["-w", "abc", s.lock, "true"],
      ["-w", "-1", s.lock, "true"],
      ["--timeout=", s.lock, "true"],
      ["-E", "256", s.lock, "true"],
      ["-E", "x", s.lock, "true"],
      ["--bogus", s.lock, "true"],
      ["-q", s.lock, "true"],
      ["--shared=yes", s.lock, "true"],
      ["-c", "true", s.lock, "extra"],
      [s.lock, "-c"],
      [s.lock, "-c", "true", "extra"],
      ["", "true"],
    ];
    const results = await Promise.all(cases.map((args) => cli(...args)));
    results.forEach((r, i) => {
      const args = JSON.stringify(cases[i]);
      assert.equal(r.code, 64, `${args}: ${r.stderr}`);
      assert.match(r.stderr, /^fasteners-lock: .+\nUsage:\n/, args);
      assert.equal(r.stdout, "", args);
    });
    assert.match(results[3].stderr, /-w needs a number of seconds >= 0, got "abc"/);
    assert.match(results[8].stderr, /unknown option "--bogus"/);
    assert.equal(await exists(s.lock), false, "no lock file made for bad arguments");
  },
});

Deno.test({
  name: "cli: --help and --version print on stdout and exit 0",
  ignore,
  async fn() {
    const [help, h, version] = await Promise.all([cli("--help"), cli("-h"), cli("--version")]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage:\n {2}fasteners-lock \[options\] <lockfile> <command>/);
    assert.equal(h.stdout, help.stdout);
    const { name, version: v } = JSON.parse(await Deno.readTextFile(DENO_JSON));
    assert.equal(version.stdout, `fasteners-lock (${name}) ${v}\n`);
    assert.equal(version.code, 0);
  },
});

Deno.test({
  name: "cli: a lock file that cannot be opened exits 66, a command that cannot start 69",
  ignore,
  async fn() {
    await using s = await scratch();
    const [folder, underFile, missing] = await Promise.all([
      cli(s.dir, "true"),
      cli(join(DENO_JSON, "x.lock"), "true"),
      cli(s.lock, "fasteners-no-such-command"),
    ]);
    assert.equal(folder.code, 66);
    assert.match(folder.stderr, /^fasteners-lock: cannot open lock file '.*' \(EISDIR\)/);
    assert.equal(underFile.code, 66);
    assert.match(underFile.stderr, /ENOTDIR/);
    assert.equal(missing.code, 69);
    assert.match(missing.stderr, /failed to execute fasteners-no-such-command: command not found/);
    // The lock was released: it can be taken at once.
    assert.equal((await cli("-n", s.lock, "true")).code, 0);
  },
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test({
    name: `cli: ${signal} to the CLI reaches the command, and the lock is released when it ends`,
    ignore,
    async fn() {
      await using s = await scratch();
      const trapped = s.path("trapped");
      const name = signal.slice(3);
      const holder = s.start(
        s.lock,
        "-c",
        `trap 'echo ${name} > "${trapped}"; exit 5' ${name}; ${
          holdUntil(s.path("held"), s.release("never"))
        }`,
      );
      await waitForFile(s.path("held"));
      holder.process.kill(signal);
      const r = await holder.result();
      // The command's trap ran and its status came back: the CLI outlived the
      // signal until its command ended.
      assert.equal(r.code, 5, r.stderr);
      assert.equal(await Deno.readTextFile(trapped), `${name}\n`);
      assert.equal((await cli("-n", s.lock, "true")).code, 0);
    },
  });
}

Deno.test({
  name: "cli: a command killed by a forwarded SIGTERM makes the CLI exit 143",
  ignore,
  async fn() {
    await using s = await scratch();
    const holder = s.start(s.lock, "-c", holdUntil(s.path("held"), s.release("never")));
    await waitForFile(s.path("held"));
    holder.process.kill("SIGTERM");
    assert.equal((await holder.result()).code, 128 + 15);
    assert.equal((await cli("-n", s.lock, "true")).code, 0);
  },
});

Deno.test({
  name: "cli: SIGTERM while waiting for the lock ends the CLI without running the command",
  ignore,
  async fn() {
    await using s = await scratch();
    const holder = s.start(s.lock, "-c", holdUntil(s.path("held"), s.release("go")));
    await waitForFile(s.path("held"));
    const waiter = s.start("-v", s.lock, "touch", s.path("ran"));
    await waiter.stderrIncludes("waiting for exclusive lock");
    waiter.process.kill("SIGTERM");
    const status = await waiter.status();
    assert.equal(status.signal, "SIGTERM");
    await Deno.writeTextFile(s.path("go"), "");
    assert.equal((await holder.result()).code, 0);
    assert.equal(await exists(s.path("ran")), false);
  },
});
