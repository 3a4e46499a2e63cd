import http from "node:http";
import https from "node:https";

/** A `fetch` over keep-alive connections of its own, and the means to close them. */
export interface HttpFetch {
  readonly fetch: typeof fetch;
  /** Closes every connection, idle or busy; later calls open new ones. */
  close(): void;
}

// Below the keep-alive timeout of llama-server (cpp-httplib) and Node servers, 5 s, as undici's
// default is: a call must never go out on a connection the server is closing at that moment. A
// server's own `Keep-Alive: timeout=N` shortens it further (Node's agent honours it).
const IDLE_TIMEOUT_MS = 4000;

/**
 * The fetch the openai SDK and the health probes use: node:http(s) with keep-alive and
 * TCP_NODELAY, about half the CPU per SDK call of the global fetch (undici, with web streams for
 * both bodies and several AbortSignals per call). It keeps to the fetch contract where llmqtt
 * relies on it: the body streams each chunk as it arrives; the signal aborts at any point,
 * rejecting the call or erroring the body with its reason; failures look like undici's, a
 * TypeError "fetch failed" before the response and "terminated" within the body, with the
 * system error (ECONNREFUSED, ECONNRESET, ...) as its cause. Not supported, as llmqtt needs none
 * of it: Request objects, stream or form bodies, following redirects (a 3xx comes back as it
 * is), decompression (no Accept-Encoding is sent), `Response.url`.
 *
 * There is no limit on connections: the pool never has more calls in flight to a server than it
 * has slots, and probes come on top.
 */
export function createHttpFetch(): HttpFetch {
  const options: http.AgentOptions = { keepAlive: true, noDelay: true, timeout: IDLE_TIMEOUT_MS };
  const transports = {
    "http:": { request: http.request, agent: new http.Agent(options) },
    "https:": { request: https.request, agent: new https.Agent(options) },
  };
  const send = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise((resolve, reject) => {
      if (typeof input !== "string" && !(input instanceof URL)) {
        throw new TypeError("this fetch takes a URL, not a Request");
      }
      const url = typeof input === "string" ? new URL(input) : input;
      const signal = init.signal ?? undefined;
      if (signal?.aborted) throw signal.reason;
      const method = init.method ?? "GET";
      const body = init.body ?? undefined;
      if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)) {
        throw new TypeError("this fetch sends string or byte bodies only");
      }
      const transport =
        url.protocol === "http:" || url.protocol === "https:" ? transports[url.protocol] : undefined;
      if (!transport) throw new TypeError(`this fetch speaks http: and https:, not ${url.protocol}`);
      const headers = headerRecord(init.headers);
      const request = transport.request(url, { method, headers, agent: transport.agent });

      // Until the response arrives a failure rejects the call; after that it errors the body.
      let fail = (error: unknown): void => {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      let brokenConnection = (cause: unknown): Error => new TypeError("fetch failed", { cause });
      const onAbort = (): void => {
        fail(signal?.reason);
        request.destroy();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", (cause) => fail(brokenConnection(cause)));
      request.on("response", (res) => {
        const status = res.statusCode ?? 0;
        const bodyless = method === "HEAD" || status === 204 || status === 205 || status === 304;
        const stream = bodyless
          ? undefined
          : streamBody(request, res, () => signal?.removeEventListener("abort", onAbort));
        let response: Response;
        try {
          response = new Response(stream?.body ?? null, {
            status,
            statusText: res.statusMessage ?? "",
            headers: headerPairs(res.rawHeaders),
          });
        } catch (error) {
          // A status or header no Response can hold (a broken server) fails like a broken connection.
          fail(brokenConnection(error));
          request.destroy();
          return;
        }
        if (stream) {
          fail = stream.fail;
          brokenConnection = terminated;
        } else {
          signal?.removeEventListener("abort", onAbort);
          res.resume();
        }
        resolve(response);
      });
      request.end(body);
    });
  return {
    fetch: send,
    close: () => {
      transports["http:"].agent.destroy();
      transports["https:"].agent.destroy();
    },
  };
}

/**
 * The response body as a web stream fed straight from the socket, one chunk per read. The socket
 * pauses while the reader is behind; `fail` ends the stream with an error (an abort's reason, a
 * broken connection); `settled` runs once the body has ended in any way.
 */
function streamBody(
  request: http.ClientRequest,
  res: http.IncomingMessage,
  settled: () => void,
): { body: ReadableStream<Uint8Array>; fail: (error: unknown) => void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const end = (error?: unknown): void => {
    if (!open) return;
    open = false;
    settled();
    if (error === undefined) controller.close();
    else controller.error(error);
  };
  const body = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    pull: () => {
      res.resume();
    },
    cancel: () => {
      // Ended already (a reader may still cancel what is queued): the connection is released.
      if (!open) return;
      open = false;
      settled();
      if (!res.complete) return void request.destroy();
      // A body already received is read to its end, so that the connection serves the next call;
      // the cancel completes once it is back with the agent (a probe's next request reuses it).
      const released = new Promise<void>((resolve) => res.once("close", () => resolve()));
      res.resume();
      return released;
    },
  });
  res.on("data", (chunk: Buffer) => {
    if (!open) return;
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) res.pause();
  });
  res.on("end", () => end());
  res.on("error", (error) => end(terminated(error)));
  return { body, fail: end };
}

/** What undici makes of a connection that broke while the body was being read. */
function terminated(cause: unknown): Error {
  return new TypeError("terminated", { cause });
}

function headerRecord(headers: RequestInit["headers"]): http.OutgoingHttpHeaders | undefined {
  if (headers === undefined || headers === null) return undefined;
  if (!(headers instanceof Headers) && !Array.isArray(headers)) return headers as http.OutgoingHttpHeaders;
  const record: http.OutgoingHttpHeaders = {};
  for (const [name, value] of headers) if (name !== undefined) record[name] = value;
  return record;
}

function headerPairs(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}
