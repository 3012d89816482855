// The session: everything an etcd client owns that is not a lock recipe.
// It is etcd's `concurrency/session.go` plus the transport: the endpoints and
// the one `request()` every call goes through (failover and retries), the
// client's single lease (granted on first use, kept alive while a lock of the
// client is held or waited for), delete-watches on keys, and `close()`, which
// ends all of it. The recipes (`_mutex.ts`, `_rwmutex.ts`) own only keys and
// revisions.
//
// Retry and failover policy (the only one):
// - An attempt is one HTTP request to the current endpoint. A connection
//   error, an attempt that takes longer than its timeout, an HTTP 5xx or a
//   gRPC Unavailable/DeadlineExceeded/ResourceExhausted moves the client to the next
//   endpoint, which stays current for every later call (a dead member costs
//   one failed attempt, not one per call).
// - After a full round over the endpoints fails, wait RETRY_FIRST_MS,
//   doubling up to RETRY_MAX_MS, and go round again, until the caller's
//   deadline (a ttl for a waiting acquisition; a single round for
//   `blocking: false`): then `LockError` "UNAVAILABLE". An attempt is also cut
//   at the deadline, so a call that must settle soon (the delete after a
//   timeout) does not wait out a hung member.
// - Retrying is safe for every call the recipes make: a create-if-absent txn
//   that did apply fails its compare on the retry and returns the key made
//   by the first try; a delete is idempotent; a lease granted by a lost try
//   expires on its own.
// Every wait (attempts, back-offs, watches) is cancelled by the caller's
// signal and by `close()`.

import { LockError, remoteError } from "../errors.ts";
import {
  type AuthenticateResponse,
  encodeKey,
  type GatewayError,
  GRPC,
  int,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type StreamMessage,
  type WatchResponse,
} from "./_wire.ts";

/** An attempt on one endpoint gives up after ttl/3 (so a renewal can still try two more), within these bounds. */
const ATTEMPT_TIMEOUT_MIN_MS = 1_000;
const ATTEMPT_TIMEOUT_MAX_MS = 5_000;
/** The least time an attempt gets, even at its deadline: one round trip on a slow network. */
const ATTEMPT_FLOOR_MS = 100;
/** How often the watchdog looks for attempts past their timeout (see `#armWatchdog`). */
const WATCHDOG_MS = 50;
/** First pause after a failed round over all endpoints: short, a leader election takes ~1 s. */
const RETRY_FIRST_MS = 25;
/** Longest pause between two rounds: an endpoint coming back is seen within this. */
const RETRY_MAX_MS = 500;
/**
 * The lease is renewed every ttl/3, as etcd's own clients do: a renewal that
 * fails leaves time for two more before the lease could expire.
 */
const KEEPALIVE_DIVISOR = 3;
/**
 * A hold is declared lost this fraction of the ttl before its lease could
 * expire (counted from the last renewal's *request* time, the earliest the
 * server could have started its timer): the holder's signal aborts while the
 * key is still there, not after another client may have taken the lock.
 */
const EXPIRY_MARGIN_FRACTION = 0.1;

/** What `request()` needs besides path and body. */
export interface RequestOptions {
  /** Aborts the call; it rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * `performance.now()` after which a call that no endpoint answered fails
   * "UNAVAILABLE"; `0`: after one round over the endpoints.
   */
  deadline: number;
}

/** The client's lease, as far as this process knows. */
export class Lease {
  readonly id: bigint;
  /** `id` in lowercase hex, as etcd's Mutex names its keys. */
  readonly hex: string;
  /** When the last successful grant/renewal was requested (performance.now()). */
  renewedAt: number;
  /** When the lease expires at the latest, counted from `renewedAt`. */
  expiresAt: number;
  /** Holds and waits keeping the lease alive. */
  users = 0;
  /** Set once the lease is gone (or can no longer be trusted). */
  lost: LockError | undefined;
  readonly listeners: Set<(error: LockError) => void> = new Set();
  /** Whether a keep-alive loop runs for it (at most one does). */
  renewing = false;
  /** Wakes the keep-alive loop (a new user, the last user gone, loss). */
  wake: (() => void) | undefined;

  constructor(id: bigint, requestedAt: number, ttlSeconds: bigint) {
    this.id = id;
    this.hex = id.toString(16);
    this.renewedAt = requestedAt;
    this.expiresAt = requestedAt + Number(ttlSeconds) * 1000;
  }
}

/** Why a watch ended: the key was deleted, history was compacted (check again), or an error. */
export type WatchOutcome = "deleted" | "reset" | LockError;

/** A running delete-watch; `stop()` ends it without calling its callback. */
export interface DeleteWatch {
  stop(): void;
}

class Retryable extends Error {}

/** An HTTP request in flight, for the watchdog. */
interface Attempt {
  readonly controller: AbortController;
  readonly endpoint: string;
  readonly timeout: number;
  /** `performance.now()` after which it is aborted. */
  readonly due: number;
}

interface WatchState {
  stopped: boolean;
  endpoint: string | undefined;
  connection: AbortController | undefined;
  stop: AbortController;
}

/** The transport, lease and watches of one `EtcdClient`. */
export class Session {
  readonly endpoints: readonly string[];
  readonly ttlMs: number;
  readonly ttlSeconds: bigint;
  readonly #username: string | undefined;
  readonly #password: string | undefined;
  readonly #attemptTimeout: number;
  #current = 0;
  #token: Promise<string | undefined> | undefined;
  #lease: Lease | undefined;
  #granting: Promise<Lease> | undefined;
  readonly #closer = new AbortController();
  #closing: Promise<void> | undefined;
  readonly #tasks = new Set<Promise<unknown>>();
  /** The controller shared by the attempts in flight without a signal (see `#fetch`). */
  #epoch = new AbortController();
  /** Attempts in flight, with when each times out. */
  readonly #attempts = new Set<Attempt>();
  /** Coarse timers (see `later`). */
  readonly #later = new Set<{ readonly due: number; readonly run: () => void }>();
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  readonly #watches = new Set<WatchState>();
  /** Requests sent, by path: for tests and benchmarks. */
  readonly counts: Map<string, number> = new Map();

  constructor(endpoints: string[], ttlMs: number, username?: string, password?: string) {
    this.endpoints = endpoints;
    this.ttlSeconds = BigInt(Math.ceil(ttlMs / 1000));
    this.ttlMs = Number(this.ttlSeconds) * 1000;
    this.#username = username;
    this.#password = password;
    this.#attemptTimeout = Math.min(
      ATTEMPT_TIMEOUT_MAX_MS,
      Math.max(ATTEMPT_TIMEOUT_MIN_MS, this.ttlMs / KEEPALIVE_DIVISOR),
    );
  }

  /** Aborted by `close()`. */
  get closeSignal(): AbortSignal {
    return this.#closer.signal;
  }

  get closed(): boolean {
    return this.#closer.signal.aborted;
  }

  /** Throws the "CLOSED" error once `close()` was called. */
  throwIfClosed(): void {
    if (this.closed) throw this.#closer.signal.reason;
  }

  /** Runs `task` in the background, owned by the session: `close()` waits for it. */
  track(task: Promise<unknown>): void {
    const settled = task.catch(() => {}).finally(() => this.#tasks.delete(settled));
    this.#tasks.add(settled);
  }

  // ---------------------------------------------------------------- requests

  /**
   * POSTs `body` to `path` on the current endpoint, failing over and
   * retrying as the policy at the top of this file says.
   *
   * @throws {LockError} "UNAVAILABLE" past the deadline, "AUTH", "LEASE_EXPIRED"
   *   (lease not found), "ETCD" (another error from etcd), "CLOSED".
   */
  async request<T>(path: string, body: unknown, options: RequestOptions): Promise<T> {
    const { signal, deadline } = options;
    let pause = RETRY_FIRST_MS;
    let last: unknown;
    let reauthenticated = false;
    for (;;) {
      for (let tried = 0; tried < this.endpoints.length; tried++) {
        this.#checkAborted(signal);
        const endpoint = this.endpoints[this.#current];
        try {
          return await this.#attempt<T>(endpoint, path, body, signal, this.#timeout(deadline));
        } catch (error) {
          this.#checkAborted(signal);
          if (error instanceof LockError && error.code === "AUTH_EXPIRED" && !reauthenticated) {
            reauthenticated = true;
            this.#token = undefined;
            tried--;
            continue;
          }
          if (!(error instanceof Retryable)) throw error;
          last = error.cause ?? error;
          this.#failed(endpoint);
          if (deadline !== 0 && performance.now() >= deadline) throw this.#unavailable(path, last);
        }
      }
      const left = deadline - performance.now();
      if (deadline === 0 || left <= 0) throw this.#unavailable(path, last);
      await this.#sleep(Math.min(pause, left), signal);
      pause = Math.min(pause * 2, RETRY_MAX_MS);
    }
  }

  /** An attempt's timeout: the attempt timeout, cut at the deadline (not below the floor). */
  #timeout(deadline: number): number {
    if (deadline === 0) return this.#attemptTimeout;
    return Math.min(
      this.#attemptTimeout,
      Math.max(ATTEMPT_FLOOR_MS, deadline - performance.now()),
    );
  }

  #unavailable(what: string, cause: unknown): LockError {
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    return remoteError(
      "UNAVAILABLE",
      `no etcd endpoint answered ${what} (tried ${this.endpoints.join(", ")})${detail}`,
      cause,
    );
  }

  #checkAborted(signal: AbortSignal | undefined): void {
    signal?.throwIfAborted();
    this.throwIfClosed();
  }

  /** Moves to the next endpoint (once per failure of the current one) and re-routes its watches. */
  #failed(endpoint: string): void {
    if (this.endpoints[this.#current] === endpoint) {
      this.#current = (this.#current + 1) % this.endpoints.length;
    }
    for (const watch of this.#watches) {
      if (watch.endpoint === endpoint) watch.connection?.abort();
    }
  }

  async #headers(signal: AbortSignal | undefined, timeout: number): Promise<HeadersInit> {
    if (this.#username === undefined) return JSON_HEADERS;
    this.#token ??= this.#authenticate(signal, timeout);
    let token: string | undefined;
    try {
      token = await this.#token;
    } catch (error) {
      this.#token = undefined;
      throw error;
    }
    return token === undefined ? JSON_HEADERS : { ...JSON_HEADERS, authorization: token };
  }

  async #authenticate(
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<string | undefined> {
    const endpoint = this.endpoints[this.#current];
    const response = await this.#fetch(
      endpoint,
      "/v3/auth/authenticate",
      {
        name: this.#username,
        password: this.#password ?? "",
      },
      JSON_HEADERS,
      signal,
      timeout,
    );
    return parse<AuthenticateResponse>(response, "/v3/auth/authenticate").token;
  }

  async #attempt<T>(
    endpoint: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<T> {
    const headers = await this.#headers(signal, timeout);
    return parse<T>(await this.#fetch(endpoint, path, body, headers, signal, timeout), path);
  }

  /**
   * One HTTP request with the attempt timeout; the body is read before the
   * timer ends. A call without a signal of its own (a plain acquire, a
   * release) shares one controller with the others in flight, `#epoch`: an
   * attempt that times out aborts them all (their endpoint is suspect; they
   * are retried on the next), and `close()` aborts it. A fetch without a
   * signal of its own costs measurably less on the path every lock
   * operation takes. A call with a signal gets its own controller.
   */
  async #fetch(
    endpoint: string,
    path: string,
    body: unknown,
    headers: HeadersInit,
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<{ status: number; text: string }> {
    this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
    const controller = signal === undefined ? this.#epoch : new AbortController();
    const attempt: Attempt = { controller, endpoint, timeout, due: performance.now() + timeout };
    this.#attempts.add(attempt);
    this.#armWatchdog();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const response = await fetch(endpoint + path, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      return { status: response.status, text: await response.text() };
    } catch (error) {
      signal?.throwIfAborted();
      this.throwIfClosed();
      if (controller.signal.aborted) throw controller.signal.reason;
      throw new Retryable(`${endpoint}: ${(error as Error).message}`, { cause: error });
    } finally {
      this.#attempts.delete(attempt);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Attempt timeouts are enforced by one watchdog timer, armed while
   * attempts are in flight and checking them every WATCHDOG_MS, instead of a
   * timer per attempt: a timer per request measurably slows the path every
   * lock operation takes, and a timeout of a second or more does not need
   * millisecond precision.
   */
  /**
   * Runs `run` in about `ms` milliseconds (on the watchdog's next tick at
   * or after that time), unless cancelled first: a coarse timer that costs
   * no timer of its own.
   */
  later(run: () => void, ms: number): { cancel(): void } {
    const task = { due: performance.now() + ms, run };
    this.#later.add(task);
    this.#armWatchdog();
    return { cancel: () => this.#later.delete(task) };
  }

  #armWatchdog(): void {
    if (this.#watchdog !== undefined) return;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      const now = performance.now();
      for (const attempt of this.#attempts) {
        if (now < attempt.due) continue;
        this.#attempts.delete(attempt);
        const { controller } = attempt;
        // The attempts sharing the epoch controller are retried with it.
        if (controller === this.#epoch) this.#epoch = new AbortController();
        controller.abort(
          new Retryable(`${attempt.endpoint}: no answer within ${attempt.timeout} ms`),
        );
      }
      for (const task of this.#later) {
        if (now < task.due) continue;
        this.#later.delete(task);
        task.run();
      }
      if ((this.#attempts.size > 0 || this.#later.size > 0) && !this.closed) this.#armWatchdog();
    }, WATCHDOG_MS);
    // In-flight fetches keep the process alive, not their watchdog.
    Deno.unrefTimer(this.#watchdog);
  }

  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const signals = signal === undefined ? [this.#closer.signal] : [signal, this.#closer.signal];
      const any = AbortSignal.any(signals);
      const onAbort = () => {
        clearTimeout(timer);
        reject(any.reason);
      };
      const timer = setTimeout(() => {
        any.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      if (any.aborted) onAbort();
      else any.addEventListener("abort", onAbort, { once: true });
    });
  }

  // ------------------------------------------------------------------ lease

  /**
   * The lease to put keys under: the current one while it has at least a
   * third of its ttl left or is in use (then it is being kept alive), else a
   * newly granted one.
   */
  async lease(signal: AbortSignal | undefined, deadline: number): Promise<Lease> {
    this.throwIfClosed();
    const lease = this.#lease;
    if (
      lease !== undefined && lease.lost === undefined &&
      (lease.users > 0 ||
        lease.expiresAt - performance.now() > this.ttlMs / KEEPALIVE_DIVISOR)
    ) {
      return lease;
    }
    this.#granting ??= this.#grant(signal, deadline).finally(() => this.#granting = undefined);
    return await this.#granting;
  }

  async #grant(signal: AbortSignal | undefined, deadline: number): Promise<Lease> {
    const requestedAt = performance.now();
    const granted = await this.request<LeaseGrantResponse>(
      "/v3/lease/grant",
      { TTL: String(this.ttlSeconds) },
      { signal, deadline },
    );
    if (granted.error) throw remoteError("ETCD", `etcd refused a lease: ${granted.error}`);
    const lease = new Lease(int(granted.ID), requestedAt, int(granted.TTL));
    if (this.closed) {
      this.track(this.#revoke(lease));
      this.throwIfClosed();
    }
    this.#lease = lease;
    return lease;
  }

  /** Counts a hold or wait on `lease`: it is kept alive while any is counted. */
  retain(lease: Lease): void {
    lease.users++;
    if (!lease.renewing && lease.lost === undefined) {
      lease.renewing = true;
      this.track(this.#keepAlive(lease));
    }
  }

  /** Undoes one {@linkcode Session.retain}. */
  unretain(lease: Lease): void {
    // The keep-alive loop is not woken: it ends at its next renewal time if
    // no user came back, so a tight acquire/release loop starts no timers.
    lease.users--;
  }

  /**
   * Declares `lease` gone: tells its holds and waits, forgets it, and when
   * etcd may still have it (we only failed to renew it), revokes it in the
   * background so its keys go at once.
   */
  lose(lease: Lease, error: LockError, revoke: boolean): void {
    if (lease.lost !== undefined) return;
    lease.lost = error;
    if (this.#lease === lease) this.#lease = undefined;
    lease.wake?.();
    for (const listener of [...lease.listeners]) listener(error);
    lease.listeners.clear();
    if (revoke && !this.closed) this.track(this.#revoke(lease));
  }

  async #revoke(lease: Lease): Promise<void> {
    // Bounded: a revoke that cannot be made is replaced by the lease expiring.
    await this.request("/v3/lease/revoke", { ID: String(lease.id) }, {
      deadline: performance.now() + this.#attemptTimeout,
    }).catch(() => {});
  }

  /** Renews `lease` every ttl/3 while it has users; declares it lost when a renewal cannot be made in time. */
  async #keepAlive(lease: Lease): Promise<void> {
    const margin = this.ttlMs * EXPIRY_MARGIN_FRACTION;
    try {
      while (lease.lost === undefined && !this.closed) {
        const due = lease.renewedAt + this.ttlMs / KEEPALIVE_DIVISOR;
        if (performance.now() < due) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, Math.max(0, due - performance.now()));
            // Renewals alone never keep a program alive (its waits and work do).
            Deno.unrefTimer(timer);
            function done() {
              clearTimeout(timer);
              lease.wake = undefined;
              resolve();
            }
            lease.wake = done;
          });
          continue;
        }
        if (lease.users === 0) break; // idle since the last renewal: let it expire
        // The renewal must answer before the lease could expire, less the margin.
        const limit = lease.expiresAt - margin;
        const expiry = new AbortController();
        const timer = setTimeout(
          () =>
            expiry.abort(
              remoteError(
                "UNAVAILABLE",
                `no etcd endpoint answered the renewal of lease ${lease.hex} in time`,
              ),
            ),
          Math.max(0, limit - performance.now()),
        );
        const requestedAt = performance.now();
        try {
          const message = await this.request<StreamMessage<LeaseKeepAliveResponse>>(
            "/v3/lease/keepalive",
            { ID: String(lease.id) },
            { signal: expiry.signal, deadline: limit },
          );
          if (message.error !== undefined) throw gatewayError(message.error, "/v3/lease/keepalive");
          const ttl = int(message.result?.TTL);
          if (ttl <= 0n) {
            this.lose(
              lease,
              remoteError(
                "LEASE_EXPIRED",
                `etcd lease ${lease.hex} expired or was revoked: the locks held under it are lost`,
              ),
              false,
            );
          } else {
            lease.renewedAt = requestedAt;
            lease.expiresAt = requestedAt + Number(ttl) * 1000;
          }
        } catch (error) {
          if (this.closed) return;
          this.lose(
            lease,
            remoteError(
              "LEASE_EXPIRED",
              `etcd lease ${lease.hex} could not be renewed before it would expire: ` +
                `the locks held under it can no longer be trusted (${(error as Error).message})`,
              error,
            ),
            true,
          );
        } finally {
          clearTimeout(timer);
        }
      }
    } finally {
      // In the same turn as the last check of `users`: a retain after it starts a new loop.
      lease.renewing = false;
    }
  }

  // ---------------------------------------------------------------- watches

  /**
   * Watches `key` for its deletion, from revision `from` on (so a deletion
   * made before the watch is set up is still seen), and calls `done` once:
   * "deleted", "reset" when that history was compacted (look again), or an
   * error when no endpoint answered until `patience` ms had passed without
   * a stream. A broken stream is re-established, on the next endpoint when
   * its own failed, from the revision after the last event seen (the watch
   * filters out PUTs and ends at the first DELETE, so that is `from` until
   * then): nothing between the two streams is missed.
   */
  watchDelete(
    key: string,
    from: bigint,
    patience: number,
    done: (outcome: WatchOutcome) => void,
  ): DeleteWatch {
    const state: WatchState = {
      stopped: false,
      endpoint: undefined,
      connection: undefined,
      stop: new AbortController(),
    };
    const stop = () => {
      if (state.stopped) return;
      state.stopped = true;
      this.#watches.delete(state);
      state.stop.abort();
    };
    this.#watches.add(state);
    // Told as soon as the outcome is known; the loop closes its stream after
    // a macrotask, so the waiter told runs on first (closing costs).
    const finish = (outcome: WatchOutcome) => {
      if (state.stopped) return;
      state.stopped = true;
      this.#watches.delete(state);
      done(outcome);
    };
    this.track(
      this.#watchLoop(state, key, from, patience, finish).then((outcome) => {
        if (outcome !== undefined) finish(outcome);
      }),
    );
    return { stop };
  }

  async #watchLoop(
    state: WatchState,
    key: string,
    from: bigint,
    patience: number,
    finish: (outcome: WatchOutcome) => void,
  ): Promise<WatchOutcome | undefined> {
    let next = from;
    let failingSince: number | undefined;
    let pause = RETRY_FIRST_MS;
    let last: unknown;
    const path = "/v3/watch";
    while (!state.stopped && !this.closed) {
      const endpoint = this.endpoints[this.#current];
      const connection = new AbortController();
      state.endpoint = endpoint;
      state.connection = connection;
      const signal = AbortSignal.any([connection.signal, state.stop.signal, this.#closer.signal]);
      // Until the stream says "created", the attempt timeout applies.
      const timer = setTimeout(() => connection.abort(), this.#attemptTimeout);
      let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
      try {
        this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
        const headers = await this.#headers(signal, this.#attemptTimeout);
        const response = await fetch(endpoint + path, {
          method: "POST",
          headers,
          body: JSON.stringify({
            create_request: {
              key: encodeKey(key),
              start_revision: String(next),
              filters: ["NOPUT"],
            },
          }),
          signal,
        });
        if (response.status !== 200 || response.body === null) {
          parse({ status: response.status, text: await response.text() }, path);
          throw new Retryable(`${endpoint}: watch answered HTTP ${response.status}`);
        }
        // Read the bytes directly (no TextDecoderStream pipe: fewer hops
        // between the event's arrival and the waiter being told).
        reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) throw new Retryable(`${endpoint}: watch stream ended`);
          buffer += decoder.decode(value, { stream: true });
          for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
            const line = buffer.slice(0, end).trim();
            buffer = buffer.slice(end + 1);
            if (line === "") continue;
            const message = JSON.parse(line) as StreamMessage<WatchResponse>;
            if (message.error !== undefined) throw gatewayError(message.error, path);
            const result = message.result ?? {};
            if (result.created) {
              clearTimeout(timer);
              failingSince = undefined;
              pause = RETRY_FIRST_MS;
            }
            if (int(result.compact_revision) > 0n) {
              finish("reset");
              await macrotask();
              return undefined;
            }
            for (const event of result.events ?? []) {
              if (event.type === "DELETE") {
                finish("deleted");
                await macrotask();
                return undefined;
              }
              next = int(event.kv?.mod_revision) + 1n;
            }
            if (result.canceled) {
              const reason = result.cancel_reason ?? "";
              if (/invalid auth token/.test(reason)) this.#token = undefined;
              else if (/Unauthenticated|PermissionDenied|permission denied/.test(reason)) {
                return remoteError("AUTH", `etcd refused a watch of ${key}: ${reason}`);
              }
              throw new Retryable(`${endpoint}: watch cancelled ${reason}`);
            }
          }
        }
      } catch (error) {
        if (state.stopped || this.closed) return undefined;
        if (error instanceof LockError) return error;
        last = error;
        this.#failed(endpoint);
        failingSince ??= performance.now();
        if (performance.now() - failingSince >= patience) {
          return this.#unavailable("a watch", last);
        }
        try {
          await this.#sleep(pause, state.stop.signal);
        } catch {
          return undefined;
        }
        pause = Math.min(pause * 2, RETRY_MAX_MS);
      } finally {
        clearTimeout(timer);
        await reader?.cancel().catch(() => {});
      }
    }
    return undefined;
  }

  // ------------------------------------------------------------------ close

  /**
   * Ends everything: holds and waits are told (their lease is revoked),
   * the lease is revoked, every background task is awaited.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const lease = this.#lease;
    const error = remoteError("CLOSED", "the EtcdClient was closed");
    if (lease !== undefined) {
      this.lose(
        lease,
        remoteError(
          "LEASE_EXPIRED",
          `the EtcdClient was closed: its lease ${lease.hex} is revoked`,
        ),
        false,
      );
    }
    this.#closer.abort(error);
    for (const attempt of this.#attempts) attempt.controller.abort(error);
    this.#epoch.abort(error);
    clearTimeout(this.#watchdog);
    this.#later.clear();
    if (lease !== undefined) await this.#revokeClosed(lease);
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks]);
  }

  async #revokeClosed(lease: Lease): Promise<void> {
    // The session's own signal is aborted: one bounded round of its own.
    const deadline = performance.now() + this.#attemptTimeout;
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const endpoint = this.endpoints[(this.#current + tried) % this.endpoints.length];
      const attempt = new AbortController();
      const timer = setTimeout(() => attempt.abort(), Math.max(1, deadline - performance.now()));
      try {
        const headers = this.#username === undefined
          ? JSON_HEADERS
          : await this.#token?.catch(() => undefined).then((token) =>
            token === undefined ? JSON_HEADERS : { ...JSON_HEADERS, authorization: token }
          ) ?? JSON_HEADERS;
        const response = await fetch(endpoint + "/v3/lease/revoke", {
          method: "POST",
          headers,
          body: JSON.stringify({ ID: String(lease.id) }),
          signal: attempt.signal,
        });
        await response.text();
        if (response.status < 500) return;
      } catch {
        // next endpoint
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

const JSON_HEADERS: HeadersInit = { "content-type": "application/json" };

/** Resolves after the microtasks queued so far, and those they queue, have run. */
function macrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Reads a gateway answer: its JSON, or the error it carries. */
function parse<T>(response: { status: number; text: string }, path: string): T {
  let json: unknown;
  try {
    json = JSON.parse(response.text);
  } catch (error) {
    if (response.status >= 500 || response.status === 0) {
      throw new Retryable(`HTTP ${response.status} from ${path}`, { cause: error });
    }
    throw remoteError(
      "ETCD",
      `etcd answered ${path} with HTTP ${response.status}: ${response.text.slice(0, 200)}`,
    );
  }
  if (response.status === 200) return json as T;
  throw gatewayError(json as GatewayError, path, response.status);
}

/** The error for a gRPC status from the gateway (thrown, or `Retryable` for a transient one). */
function gatewayError(error: GatewayError, path: string, status = 200): Error {
  const message = error.message ?? error.error ?? `HTTP ${status}`;
  switch (error.code) {
    case GRPC.UNAVAILABLE:
    case GRPC.DEADLINE_EXCEEDED:
    case GRPC.RESOURCE_EXHAUSTED: // "too many requests": the member is behind; try again
      return new Retryable(`${path}: ${message}`);
    case GRPC.UNAUTHENTICATED:
      if (/invalid auth token/.test(message)) {
        return remoteError("AUTH_EXPIRED", `etcd: ${message}`);
      }
      return remoteError("AUTH", `etcd refused the credentials for ${path}: ${message}`);
    case GRPC.PERMISSION_DENIED:
      return remoteError("AUTH", `etcd denied ${path}: ${message}`);
    case GRPC.INVALID_ARGUMENT:
      if (/authentication failed|user name is empty|auth/.test(message)) {
        return remoteError("AUTH", `etcd refused the credentials: ${message}`);
      }
      break;
    case GRPC.NOT_FOUND:
      if (/lease not found/.test(message)) {
        return remoteError("LEASE_EXPIRED", `etcd: ${message}`);
      }
      break;
    case GRPC.FAILED_PRECONDITION:
      if (/auth/.test(message)) return remoteError("AUTH", `etcd: ${message}`);
      break;
  }
  if (status >= 500 && error.code === undefined) return new Retryable(`${path}: ${message}`);
  return remoteError("ETCD", `etcd failed ${path}: ${message}`);
}
