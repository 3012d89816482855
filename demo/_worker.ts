// A demo participant in a Worker. Messages: the parent posts the task, the
// Worker answers "ready", waits for "go" (so that every participant starts
// at once), runs the task and posts its outcome.

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { run, type Task } from "./_work.ts";

let task: Task | undefined;

self.onmessage = (event: MessageEvent<Task | "go">) => {
  if (event.data !== "go") {
    task = event.data;
    self.postMessage("ready");
    return;
  }
  if (task === undefined) throw new Error("demo Worker: go before a task");
  self.postMessage(run(task));
};
