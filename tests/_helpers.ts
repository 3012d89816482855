// Test helpers: child Deno processes spoken to by lines, and temp folders.

import { join } from "node:path";

/** A child Deno process whose stdout is read line by line. */
export class Child implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #buffer = "";
  #stderr: Promise<string>;

  constructor(script: string | URL, args: string[], permissions: string[] = ["--allow-all"]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...permissions, String(script), ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdin = this.process.stdin.getWriter();
    this.#stderr = new Response(this.process.stderr).text();
  }

  /** The next line the child prints; throws when it ends first. */
  async line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        return line;
      }
      const { value, done } = await this.#lines.read();
      if (done) {
        throw new Error(`child ended before printing a line; stderr:\n${await this.#stderr}`);
      }
      this.#buffer += value;
    }
  }

  /** Waits for a line equal to `expected` (or starting with it), returning it. */
  async expect(expected: string): Promise<string> {
    const line = await this.line();
    if (!line.startsWith(expected)) {
      throw new Error(
        `expected a line starting with ${JSON.stringify(expected)}, got ${JSON.stringify(line)}`,
      );
    }
    return line;
  }

  /** Sends one line to the child's stdin. */
  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin and waits for the exit status. */
  async end(): Promise<Deno.CommandStatus> {
    await this.#stdin.close().catch(() => {});
    const status = await this.process.status;
    await this.#lines.cancel().catch(() => {});
    return status;
  }

  /** The child's whole stderr, once it has ended. */
  stderr(): Promise<string> {
    return this.#stderr;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already ended
    }
    await this.end().catch(() => {});
    await this.#stderr.catch(() => {});
  }
}

/** A temp folder removed at the end of an `await using` block. */
export async function tempDir(): Promise<
  AsyncDisposable & { path: string; file(name: string): string }
> {
  const path = await Deno.makeTempDir({ prefix: "fasteners-test-" });
  return {
    path,
    file: (name: string) => join(path, name),
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Runs a Deno script to its end, returning its status and output. */
export async function runDeno(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Whether `/usr/bin/python3` can import fasteners; the reason when not. */
export async function pythonFasteners(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import fasteners"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success
      ? undefined
      : "python3 has no fasteners module (apt-get install python3-fasteners)";
  } catch {
    return "no /usr/bin/python3";
  }
}
