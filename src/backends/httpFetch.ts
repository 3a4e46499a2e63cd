import http from "node:http";
import https from "node:https";

/** A `fetch` over keep-alive connections of its own, and the means to close them. */
export interface HttpFetch {
  /** Honours the CallLimits in its RequestInit, besides the standard signal. */
  readonly fetch: typeof fetch;
  /** Closes every connection, idle or busy; later calls open new ones. */
  close(): void;
}

/**
 * What llmqtt adds to a call's RequestInit (the openai SDK hands its `fetchOptions` through to
 * fetch): limits that need no AbortSignal of the call's own. A signal per call, with the
 * listener the SDK puts on it and never takes off, was the largest piece of state a model call
 * held for its whole length, and so what young-generation collections copied most.
 */
export interface CallLimits {
  /** Epoch milliseconds: then the call fails with DeadlinePassed, whether connecting, waiting or reading the body. */
  deadline?: number;
  /** A signal shared by many calls (the gateway's shutdown): its abort fails each with its reason. */
  cancel?: AbortSignal;
  /**
   * Runs once a 2xx response's body has arrived whole, before the caller has read it: the server
   * is done with the call. Never for a failed call. When it returns true (it set another call
   * going), the reader hears of the body's end a turn of the event loop later, so that the other
   * call goes out before this answer is read and acted on. withCallLimits' fetches never run it.
   */
  answered?: () => boolean;
}

/** How a call past its CallLimits deadline fails (the cause, once the SDK has wrapped it). */
export class DeadlinePassed extends Error {
  constructor() {
    super("the call's deadline passed");
    this.name = "DeadlinePassed";
  }
}

/** True for DeadlinePassed itself or an error caused by it. */
export function isDeadlinePassed(error: unknown): boolean {
  return error instanceof DeadlinePassed || (error instanceof Error && error.cause instanceof DeadlinePassed);
}

// setTimeout fires at once for delays above 2^31-1 ms; so far off a deadline needs no timer.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The delay of a timer for `deadline`, or undefined when there is none or none a timer can hold. */
function timerDelay(deadline: number | undefined): number | undefined {
  if (deadline === undefined) return undefined;
  const wait = deadline - Date.now();
  return wait < MAX_TIMER_MS ? wait : undefined;
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
 * is), decompression (no Accept-Encoding is sent), `Response.url`. It leaves out the openai SDK's
 * telemetry headers.
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
      const { deadline, cancel, answered } = init as CallLimits;
      if (cancel?.aborted) throw cancel.reason;
      if (deadline !== undefined && deadline <= Date.now()) throw new DeadlinePassed();
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
        release();
        reject(error);
      };
      let brokenConnection = (cause: unknown): Error => new TypeError("fetch failed", { cause });
      const stop = (reason: unknown): void => {
        fail(reason);
        request.destroy();
      };
      const onAbort = (): void => stop(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const wait = timerDelay(deadline);
      const timer = wait === undefined ? undefined : setTimeout(() => stop(new DeadlinePassed()), wait);
      const followers = cancel ? followersOf(cancel) : undefined;
      let place = followers?.add(stop);
      /**
       * Once the call has ended in any way: nothing may stop it any more. It can run twice (a
       * stopped request then reports its own error), and a place freed twice would be given to
       * two later calls at once.
       */
      const release = (): void => {
        signal?.removeEventListener("abort", onAbort);
        clearTimeout(timer);
        if (place !== undefined) followers?.remove(place);
        place = undefined;
      };
      request.on("error", (cause) => fail(brokenConnection(cause)));
      request.on("response", (res) => {
        const status = res.statusCode ?? 0;
        const bodyless = method === "HEAD" || status === 204 || status === 205 || status === 304;
        const complete = status >= 200 && status < 300 ? answered : undefined;
        const stream = bodyless ? undefined : streamBody(request, res, release, complete);
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
          release();
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
 * `inner`, honouring CallLimits through a signal per call: for a fetch other than
 * createHttpFetch's, such as the global one. The deadline's timer is not kept alive by the
 * process, and ends by itself.
 */
export function withCallLimits(inner: typeof fetch): typeof fetch {
  const limited = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    // `answered` is left out: this fetch cannot tell when a body has arrived whole.
    const { deadline, cancel, answered: _answered, ...rest } = init as RequestInit & CallLimits;
    const signals: AbortSignal[] = [];
    if (rest.signal) signals.push(rest.signal);
    if (cancel) signals.push(cancel);
    const wait = timerDelay(deadline);
    if (wait !== undefined) {
      const timeout = new AbortController();
      setTimeout(() => timeout.abort(new DeadlinePassed()), wait).unref();
      signals.push(timeout.signal);
    }
    return inner(input, { ...rest, signal: AbortSignal.any(signals) });
  };
  return limited as typeof fetch;
}

/**
 * The calls in progress under one shared signal, all stopped by one listener on it (a listener
 * per call would put thousands on a signal such as the gateway's shutdown, shared by every call
 * in flight). A call takes a place in an array and frees it when it ends, for the next call to
 * reuse: one element written each time. A Set did this at first, but V8 rebuilds a Set's table
 * every few hundred additions and deletions, and each table it dropped, long in the old
 * generation by then, still pointed at the calls open at that moment. Young-generation
 * collections treat such pointers as live until the next full collection, so they kept copying
 * those calls' requests and responses and promoted them: in S1 ~1 MB promoted per scavenge
 * instead of ~0.2, and GC pauses twice the bare forwarder's.
 */
class Followers {
  private readonly stops: (((reason: unknown) => void) | undefined)[] = [];
  private readonly vacant: number[] = [];

  constructor(signal: AbortSignal) {
    signal.addEventListener("abort", () => this.stopAll(signal.reason), { once: true });
  }

  /** Registers `stop`; returns its place, for `remove` once the call has ended. */
  add(stop: (reason: unknown) => void): number {
    const place = this.vacant.pop() ?? this.stops.length;
    this.stops[place] = stop;
    return place;
  }

  remove(place: number): void {
    this.stops[place] = undefined;
    this.vacant.push(place);
  }

  private stopAll(reason: unknown): void {
    // A stop frees its own place, which only clears an element: the walk needs no copy.
    for (const stop of this.stops) stop?.(reason);
  }
}

const followersBySignal = new WeakMap<AbortSignal, Followers>();

function followersOf(signal: AbortSignal): Followers {
  let followers = followersBySignal.get(signal);
  if (!followers) followersBySignal.set(signal, (followers = new Followers(signal)));
  return followers;
}

/**
 * The response body as a web stream fed straight from the socket, one chunk per read. The socket
 * pauses while the reader is behind; `fail` ends the stream with an error (an abort's reason, a
 * broken connection); `settled` runs once the body has ended in any way, and `complete` after it
 * when the whole body arrived, before the reader is told (see CallLimits.answered).
 */
function streamBody(
  request: http.ClientRequest,
  res: http.IncomingMessage,
  settled: () => void,
  complete: (() => boolean) | undefined,
): { body: ReadableStream<Uint8Array>; fail: (error: unknown) => void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const end = (error?: unknown): void => {
    if (!open) return;
    open = false;
    settled();
    if (error !== undefined) return controller.error(error);
    let handedOn = false;
    try {
      handedOn = complete?.() === true;
    } finally {
      // Deferred only then: it keeps this answer alive a little longer, which young collections pay for.
      if (handedOn) setImmediate(() => controller.close());
      else controller.close();
    }
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

/**
 * The openai SDK adds eight `x-stainless-*` headers to every call (language, OS, runtime, package
 * version, retry count, timeout): telemetry for OpenAI that no model server reads, yet each is
 * written and parsed on every call. Dropped here rather than nulled through the SDK's
 * `defaultHeaders`, which made it build every header twice (~5 KB more garbage per call).
 */
const SDK_TELEMETRY = "x-stainless-";

function headerRecord(headers: RequestInit["headers"]): http.OutgoingHttpHeaders | undefined {
  if (headers === undefined || headers === null) return undefined;
  if (!(headers instanceof Headers) && !Array.isArray(headers)) return headers as http.OutgoingHttpHeaders;
  const record: http.OutgoingHttpHeaders = {};
  for (const [name, value] of headers) {
    if (name !== undefined && !name.startsWith(SDK_TELEMETRY)) record[name] = value;
  }
  return record;
}

function headerPairs(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}
