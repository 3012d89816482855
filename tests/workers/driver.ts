// Test helper: a Worker (thread_lock_worker.ts unless told otherwise), driven by numbered requests.

/** What a worker answers: the request's number and a result, or an error message. */
interface Reply {
  seq?: number;
  event?: string;
  result?: unknown;
  error?: string;
}

/** A Worker spoken to by requests (`call`) and events it posts on its own (`event`). */
export class Driven implements AsyncDisposable {
  readonly worker: Worker;
  #seq = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #events: string[] = [];
  #eventWaiters: ((e: string) => void)[] = [];
  #failure: Error | undefined;

  /** Starts `script` (by default thread_lock_worker.ts) as a module Worker. */
  constructor(script: URL = new URL("./thread_lock_worker.ts", import.meta.url)) {
    this.worker = new Worker(script, { type: "module" });
    this.worker.onmessage = (e: MessageEvent<Reply>) => {
      const reply = e.data;
      if (reply.event !== undefined) {
        const waiter = this.#eventWaiters.shift();
        if (waiter) waiter(reply.event);
        else this.#events.push(reply.event);
        return;
      }
      const pending = this.#pending.get(reply.seq!);
      this.#pending.delete(reply.seq!);
      if (reply.error !== undefined) pending?.reject(new Error(reply.error));
      else pending?.resolve(reply.result);
    };
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.#failure = new Error(`worker failed: ${e.message}`);
      for (const p of this.#pending.values()) p.reject(this.#failure);
      this.#pending.clear();
    };
  }

  /** Sends a request; resolves with the worker's result. */
  call(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    if (this.#failure) return Promise.reject(this.#failure);
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.worker.postMessage({ seq, op, ...args });
    });
  }

  /** The next event the worker posts by itself ("locked", "waiting", …). */
  event(): Promise<string> {
    const queued = this.#events.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => this.#eventWaiters.push(resolve));
  }

  /** Waits for the event `name`, failing on any other. */
  async expect(name: string): Promise<void> {
    const got = await this.event();
    if (got !== name) throw new Error(`expected event "${name}", got "${got}"`);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.worker.terminate();
    return Promise.resolve();
  }
}

/** Resolves after `ms`: only to give a waiter time to block, never to synchronise. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every millisecond until it holds (bounded by the test's own timeout). */
export async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await pause(1);
  }
}
