// The helpers of bench/run.ts: child processes that speak the handoff
// protocol (see bench/handoff_child.ts), percentiles, and the Worker figures.

/** A child process driven one line at a time over stdin/stdout. */
export interface Party {
  /** Sends `command` and waits for a line that starts with `reply`; returns that line. */
  ask(command: string, reply: string): Promise<string>;
  /** Waits for the next line, which must start with `prefix`. */
  expect(prefix: string): Promise<string>;
  /** Says "quit" and waits for the process to end. */
  quit(): Promise<void>;
}

export function spawnParty(cmd: string, args: string[]): Party {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const encoder = new TextEncoder();
  let buffered = "";
  const next = async (): Promise<string> => {
    for (;;) {
      const end = buffered.indexOf("\n");
      if (end >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`${cmd} ${args.join(" ")} ended unexpectedly`);
      buffered += value;
    }
  };
  const expect = async (prefix: string) => {
    const line = await next();
    if (!line.startsWith(prefix)) {
      throw new Error(`${cmd}: expected "${prefix}…", got "${line}"`);
    }
    return line;
  };
  return {
    async ask(command, reply) {
      await writer.write(encoder.encode(command + "\n"));
      return await expect(reply);
    },
    expect,
    async quit() {
      try {
        await writer.write(encoder.encode("quit\n"));
        await writer.close();
      } catch {
        // already gone
      }
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

export interface Summary {
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  n: number;
}

/** Nearest-rank percentiles. */
export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return {
    min: s[0],
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: s[s.length - 1],
    n: s.length,
  };
}
