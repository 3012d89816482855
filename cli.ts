/**
 * `fasteners-lock`: run a command while holding a lock on a file, in the
 * manner of util-linux `flock(1)`, with the library's own process locks
 * ({@linkcode InterProcessLock} for exclusive locks,
 * {@linkcode InterProcessReaderWriterLock} for shared ones).
 *
 * ```sh
 * deno run --allow-ffi --allow-read --allow-write --allow-run jsr:@fasteners/fasteners/cli \
 *   /tmp/backup.lock rsync -a src/ dst/
 * deno task cli -n -E 75 /tmp/cron.lock -c "make nightly"
 * deno task cli --slots 4 /tmp/encode.lock ffmpeg -i in.mkv out.mp4   # at most 4 at once
 * ```
 *
 * Exit status: the command's own (`128 + N` when signal N ends it); the
 * conflict code (`1`, or `-E n`) when the lock is busy (`-n`) or the wait
 * timed out (`-w`); `64` for bad arguments; `66` when the lock file cannot be
 * opened, created or locked (a folder, a missing permission, no
 * `--allow-ffi`); `69` when the command cannot be started; `70` for an
 * internal error. `SIGINT` and `SIGTERM` received while the command runs are
 * passed on to it, and the lock is released when it ends.
 *
 * A signal that comes while the CLI still waits for the lock ends it as
 * usual (no command is started). Ctrl-C on a terminal reaches the command
 * directly, as the whole foreground process group gets it, and once more
 * through the CLI: a command that traps `SIGINT` may see it twice.
 *
 * Unlike `flock(1)`, the lock is held by this process, not by a descriptor
 * that the command inherits: it lasts exactly as long as the command itself,
 * not as long as any background process the command leaves behind.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import {
  type AcquireOptions,
  InterProcessLock,
  InterProcessReaderWriterLock,
  InterProcessSemaphore,
  LockError,
} from "./mod.ts";

const NAME = "fasteners-lock";

/** sysexits.h: the command was used incorrectly. */
const EX_USAGE = 64;
/** sysexits.h: an input file (here the lock file) cannot be opened; flock(1) uses it too. */
const EX_NOINPUT = 66;
/** sysexits.h: a service (here the command) is unavailable; flock(1) uses it when exec fails. */
const EX_UNAVAILABLE = 69;
/** sysexits.h: an internal software error. */
const EX_SOFTWARE = 70;

const USAGE = `Usage:
  ${NAME} [options] <lockfile> <command> [<argument>...]
  ${NAME} [options] <lockfile> -c <shell command>

Runs a command while holding a lock on <lockfile>, like flock(1). The file is
created (with its folders) when missing, and never truncated or deleted.

Options:
  -s, --shared                  take a shared (read) lock
  -x, --exclusive               take an exclusive (write) lock (default)
  -n, --nonblock                fail at once when the lock is busy
  -w, --timeout <seconds>       wait at most this long (fractions allowed; 0 = -n)
  -E, --conflict-exit-code <n>  exit status when busy or timed out (default 1)
  -c, --command <command>       run <command> with sh -c (cmd /c on Windows)
      --slots <n>               at most n commands at once on <lockfile> (1 to 1024),
                                like GNU parallel's sem -j n; shares the slots with
                                InterProcessSemaphore(<lockfile>, n)
  -v, --verbose                 report waiting and acquisition time on stderr
  -h, --help                    show this help and exit
      --version                 show the version and exit

Exit status: the command's own (128+N when signal N ends it); the conflict
status when busy or timed out; 64 bad arguments; 66 the lock file cannot be
opened or locked; 69 the command cannot be started; 70 internal error.
SIGINT and SIGTERM are passed on to the command; the lock is released when it
ends.

Deno permissions: --allow-ffi --allow-read --allow-write --allow-run
`;

/** What the command line asks for. */
interface Request {
  shared: boolean;
  /** `--slots`: take one slot of a semaphore of this many, instead of a lock. */
  slots: number | undefined;
  /** Seconds; `Infinity` waits forever, `0` makes one attempt. */
  timeout: number;
  conflictExitCode: number;
  verbose: boolean;
  lockfile: string;
  /** The program and its arguments. */
  command: [string, ...string[]];
  /** Windows: pass the arguments unquoted, as cmd reads them (for `-c`). */
  rawArguments: boolean;
}

type Parsed = Request | { help: true } | { version: true };

class UsageError extends Error {}

/** Options that take a value, by every name they answer to. */
const VALUED: Record<string, "timeout" | "conflict" | "command" | "slots"> = {
  "--slots": "slots",
  "-w": "timeout",
  "--timeout": "timeout",
  "--wait": "timeout",
  "-E": "conflict",
  "--conflict-exit-code": "conflict",
  "-c": "command",
  "--command": "command",
};

/** Flags, by every name they answer to (flock's aliases included). */
const FLAGS: Record<string, "shared" | "exclusive" | "nonblock" | "verbose" | "help" | "version"> =
  {
    "-s": "shared",
    "--shared": "shared",
    "-x": "exclusive",
    "-e": "exclusive",
    "--exclusive": "exclusive",
    "-n": "nonblock",
    "--nonblock": "nonblock",
    "--nb": "nonblock",
    "-v": "verbose",
    "--verbose": "verbose",
    "-h": "help",
    "--help": "help",
    "-V": "version",
    "--version": "version",
  };

/**
 * Parses the arguments as flock(1) does: options stop at the lock file (or
 * at `--`), and `-c` may come before the lock file or right after it.
 */
function parse(args: readonly string[]): Parsed {
  let shared = false;
  let nonblock = false;
  let verbose = false;
  let timeout = Infinity;
  let slots: number | undefined;
  let conflictExitCode = 1;
  let shell: string | undefined;
  let i = 0;

  const takeValue = (name: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    if (i + 1 >= args.length) throw new UsageError(`option ${name} needs a value`);
    return args[++i];
  };
  const setValue = (
    kind: "timeout" | "conflict" | "command" | "slots",
    name: string,
    value: string,
  ) => {
    if (kind === "timeout") timeout = parseSeconds(name, value);
    else if (kind === "slots") slots = parseSlots(name, value);
    else if (kind === "conflict") conflictExitCode = parseExitCode(name, value);
    else shell = value;
  };

  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg : arg.slice(0, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const valued = VALUED[name];
      if (valued !== undefined) {
        setValue(valued, name, takeValue(name, inline));
        continue;
      }
      const flag = FLAGS[name];
      if (flag === undefined) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
      if (inline !== undefined) throw new UsageError(`option ${name} takes no value`);
      if (flag === "help" || flag === "version") return { [flag]: true } as Parsed;
      shared = flag === "shared" ? true : flag === "exclusive" ? false : shared;
      nonblock ||= flag === "nonblock";
      verbose ||= flag === "verbose";
      continue;
    }
    // A cluster of short options, as getopt reads it: `-sn`, `-w5`, `-nw 5`.
    for (let j = 1; j < arg.length; j++) {
      const name = `-${arg[j]}`;
      const valued = VALUED[name];
      if (valued !== undefined) {
        const rest = arg.slice(j + 1);
        setValue(valued, name, takeValue(name, rest === "" ? undefined : rest));
        break;
      }
      const flag = FLAGS[name];
      if (flag === undefined) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
      if (flag === "help" || flag === "version") return { [flag]: true } as Parsed;
      shared = flag === "shared" ? true : flag === "exclusive" ? false : shared;
      nonblock ||= flag === "nonblock";
      verbose ||= flag === "verbose";
    }
  }

  const rest = args.slice(i);
  if (slots !== undefined && shared) {
    throw new UsageError("--slots and --shared cannot be combined: a slot is exclusive");
  }
  if (rest.length === 0) throw new UsageError("no lock file given");
  const lockfile = rest[0];
  if (lockfile === "") throw new UsageError("the lock file name is empty");
  let command: [string, ...string[]];
  let rawArguments = false;
  if (rest[1] === "-c" || rest[1] === "--command") {
    // flock(1)'s own form: `flock <file> -c <command>`, exactly one argument.
    if (shell !== undefined) throw new UsageError("-c given twice");
    if (rest.length !== 3) throw new UsageError(`${rest[1]} needs exactly one command argument`);
    command = shellCommand(rest[2]);
    rawArguments = true;
  } else if (shell !== undefined) {
    if (rest.length > 1) {
      throw new UsageError(`-c and a command cannot both be given: ${JSON.stringify(rest[1])}`);
    }
    command = shellCommand(shell);
    rawArguments = true;
  } else {
    if (rest.length < 2) throw new UsageError("no command given");
    command = [rest[1], ...rest.slice(2)];
  }
  return {
    shared,
    slots,
    timeout: nonblock ? 0 : timeout,
    conflictExitCode,
    verbose,
    lockfile,
    command,
    rawArguments,
  };
}

/**
 * The argv that runs `command` with the shell. cmd does not parse its command
 * line by the quoting rules that Deno applies to arguments (`"` would reach it
 * as `\"`), so on Windows the command goes unquoted, as Node's `shell: true`
 * does: `/s` makes cmd drop just the outer quotes, `/d` skips AutoRun commands.
 */
function shellCommand(command: string): [string, ...string[]] {
  return Deno.build.os === "windows"
    ? ["cmd", "/d", "/s", "/c", `"${command}"`]
    : ["sh", "-c", command];
}

function parseSeconds(name: string, value: string): number {
  const seconds = value.trim() === "" ? NaN : Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new UsageError(
      `${name} needs a number of seconds >= 0, got ${JSON.stringify(value)}`,
    );
  }
  return seconds;
}

function parseSlots(name: string, value: string): number {
  const slots = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(slots >= 1 && slots <= 1024)) {
    throw new UsageError(
      `${name} needs a number of slots from 1 to 1024, got ${JSON.stringify(value)}`,
    );
  }
  return slots;
}

function parseExitCode(name: string, value: string): number {
  const code = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
  if (!(code >= 0 && code <= 255)) {
    throw new UsageError(
      `${name} needs an exit status from 0 to 255, got ${JSON.stringify(value)}`,
    );
  }
  return code;
}

/** The one lock the CLI holds, whichever kind it is. */
interface HeldLock {
  acquire(options: AcquireOptions): Promise<boolean>;
  release(): void;
}

function makeLock(path: string, shared: boolean, slots: number | undefined): HeldLock {
  if (slots !== undefined) {
    const semaphore = new InterProcessSemaphore(path, slots);
    return { acquire: (o) => semaphore.acquire(o), release: () => semaphore.release() };
  }
  if (shared) {
    const rw = new InterProcessReaderWriterLock(path);
    return {
      acquire: (o) => rw.acquireReadLock(o),
      release: () => rw.releaseReadLock(),
    };
  }
  const lock = new InterProcessLock(path);
  return { acquire: (o) => lock.acquire(o), release: () => lock.release() };
}

const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stderr.writeSync(encoder.encode(`${NAME}: ${text}\n`));
}

/** The signals passed on to the command; Windows can listen for SIGINT only. */
const FORWARDED: readonly Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT"]
  : ["SIGINT", "SIGTERM"];

/**
 * Runs the command line `args` (without the program name): takes the lock,
 * runs the command holding it, releases it when the command ends.
 *
 * Prints the usage on stdout for `--help`, and on stderr with status 64 for
 * bad arguments. Signal listeners for `SIGINT`/`SIGTERM` are installed only
 * while the command runs; before that, a signal ends this process as usual.
 *
 * @example
 * ```ts ignore
 * import { main } from "@fasteners/fasteners/cli";
 *
 * const status = await main(["-w", "2.5", "/tmp/job.lock", "echo", "locked"]);
 * Deno.exit(status);
 * ```
 *
 * @param args The arguments, as in `Deno.args`.
 * @returns The exit status: the command's, or one of the CLI's own codes
 *   (see the module documentation).
 */
export async function main(args: readonly string[]): Promise<number> {
  let request: Parsed;
  try {
    request = parse(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    say(error.message);
    Deno.stderr.writeSync(encoder.encode(USAGE));
    return EX_USAGE;
  }
  if ("help" in request) {
    Deno.stdout.writeSync(encoder.encode(USAGE));
    return 0;
  }
  if ("version" in request) {
    Deno.stdout.writeSync(encoder.encode(`${NAME} (${denoJson.name}) ${denoJson.version}\n`));
    return 0;
  }
  try {
    return await run(request);
  } catch (error) {
    if (error instanceof LockError) {
      say(error.message);
      return EX_NOINPUT;
    }
    say(`internal error: ${error instanceof Error ? error.stack ?? error.message : error}`);
    return EX_SOFTWARE;
  }
}

async function run(r: Request): Promise<number> {
  const what = r.slots !== undefined
    ? `one of ${r.slots} slots`
    : `${r.shared ? "shared" : "exclusive"} lock`;
  const lock = makeLock(r.lockfile, r.shared, r.slots);
  const start = performance.now();
  // One attempt first, so that -v can say when it has to wait.
  let acquired = await lock.acquire({ blocking: false });
  if (!acquired && r.timeout > 0) {
    if (r.verbose) {
      const limit = r.timeout === Infinity ? "" : ` (at most ${r.timeout} s)`;
      say(`waiting for ${what} on ${r.lockfile}${limit}`);
    }
    acquired = await lock.acquire(
      r.timeout === Infinity ? {} : { timeout: r.timeout * 1000 },
    );
  }
  if (!acquired) {
    if (r.verbose) {
      say(r.timeout === 0 ? "failed to get lock" : "timeout while waiting to get lock");
    }
    return r.conflictExitCode;
  }
  try {
    if (r.verbose) {
      const took = ((performance.now() - start) / 1000).toFixed(6);
      say(`getting ${what} on ${r.lockfile} took ${took} seconds`);
      say(`executing ${r.command[0]}`);
    }
    return await runCommand(r.command, r.rawArguments);
  } finally {
    lock.release();
  }
}

/** Runs the command with inherited stdio, passing SIGINT/SIGTERM on to it. */
async function runCommand(
  [program, ...args]: [string, ...string[]],
  rawArguments: boolean,
): Promise<number> {
  let child: Deno.ChildProcess | undefined;
  const pending: Deno.Signal[] = [];
  const forward = (signal: Deno.Signal) => () => {
    if (child === undefined) {
      pending.push(signal);
      return;
    }
    try {
      child.kill(signal);
    } catch {
      // The command has just ended: nothing left to tell.
    }
  };
  const listeners = FORWARDED.map((signal) => [signal, forward(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  try {
    try {
      child = new Deno.Command(program, {
        args,
        windowsRawArguments: rawArguments,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const why = error instanceof Deno.errors.NotFound
        ? "command not found"
        : error instanceof Deno.errors.NotCapable
        ? "run Deno with the --allow-run flag"
        : error instanceof Error
        ? error.message
        : String(error);
      say(`failed to execute ${program}: ${why}`);
      return EX_UNAVAILABLE;
    }
    // A signal that came between the lock and the spawn still reaches the command.
    for (const signal of pending) forward(signal)();
    const status = await child.status;
    // Deno reports a death by signal N as code 128 + N, as a shell does.
    return status.code;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
