// A tiny counting HTTP proxy in front of one etcd gateway, for bench/_etcd.ts:
// it forwards every request unchanged (bodies streamed both ways, so a watch
// stream stays a stream) and counts requests by path and the watch events it
// passes back. Loopback only.
//
//   await using proxy = startProxy("http://127.0.0.1:2379");
//   const client = new EtcdClient({ endpoints: proxy.url });
//   proxy.reset(); ...; proxy.snapshot(); // { requests: { "/v3/lease/keepalive": 1 }, watchEvents: 0 }

/** What a {@linkcode CountingProxy} has seen since its last reset. */
export interface ProxyCounts {
  /** Requests by path (`/v3/kv/txn`, `/v3/watch`, …). */
  requests: Record<string, number>;
  /** Every request, whatever its path. */
  total: number;
  /** Events inside the watch responses passed back. */
  watchEvents: number;
}

/** A running proxy; `await using` (or `close()`) stops it and ends its streams. */
export interface CountingProxy extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`: give this to a client instead of etcd's URL. */
  readonly url: string;
  /** Zeroes the counts. */
  reset(): void;
  /** A copy of the counts. */
  snapshot(): ProxyCounts;
  close(): Promise<void>;
}

/** Starts a proxy to `target` (an etcd client URL) on a free loopback port. */
export function startProxy(target: string): CountingProxy {
  let counts: ProxyCounts = { requests: {}, total: 0, watchEvents: 0 };
  const upstreams = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      counts.requests[url.pathname] = (counts.requests[url.pathname] ?? 0) + 1;
      counts.total++;
      let upstream: Response;
      try {
        upstream = await fetch(target + url.pathname + url.search, {
          method: request.method,
          headers: request.headers,
          body: request.body,
          // Not request.signal: Deno.serve aborts it once the response starts,
          // which would cut a streamed watch response short.
          signal: upstreams.signal,
        });
      } catch (error) {
        return new Response(String(error), { status: 502 });
      }
      if (url.pathname !== "/v3/watch" || upstream.body === null) return upstream;
      // Count the events of each streamed watch response (one JSON object a line).
      let buffered = "";
      const decoder = new TextDecoder();
      const count = (line: string) => {
        if (line.trim() === "") return;
        try {
          const message = JSON.parse(line) as { result?: { events?: unknown[] } };
          counts.watchEvents += message.result?.events?.length ?? 0;
        } catch {
          // not a JSON line: not ours to judge
        }
      };
      const body = upstream.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            buffered += decoder.decode(chunk, { stream: true });
            let end;
            while ((end = buffered.indexOf("\n")) >= 0) {
              count(buffered.slice(0, end));
              buffered = buffered.slice(end + 1);
            }
            controller.enqueue(chunk);
          },
          flush() {
            count(buffered);
          },
        }),
        // (a client that cancels its watch response cancels the upstream body)
      );
      return new Response(body, { status: upstream.status, headers: upstream.headers });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      upstreams.abort();
      await server.shutdown();
    })();
  return {
    url,
    reset: () => {
      counts = { requests: {}, total: 0, watchEvents: 0 };
    },
    snapshot: () => ({ ...counts, requests: { ...counts.requests } }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
