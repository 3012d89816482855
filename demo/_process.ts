// A demo participant in a child process. Protocol on stdio, one line each:
// the parent passes the task as JSON in argv[0]; the child prints "ready",
// waits for "go" on stdin (so that every participant starts at once), runs
// the task and prints its outcome as JSON.

import { run, type Task } from "./_work.ts";

const task: Task = JSON.parse(Deno.args[0]);
const encoder = new TextEncoder();
Deno.stdout.writeSync(encoder.encode("ready\n"));

let line = "";
for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  line += text;
  if (line.includes("\n")) break;
}
if (line.trim() !== "go") Deno.exit(2);

Deno.stdout.writeSync(encoder.encode(JSON.stringify(run(task)) + "\n"));
