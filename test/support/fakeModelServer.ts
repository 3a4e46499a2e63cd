import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * A real HTTP server speaking the OpenAI chat API the way llama-server does, with exact control
 * over each answer (text, reasoning, tool calls, errors, delays, hangs, resets) for tests.
 */

export interface RecordedRequest {
  /** Parsed JSON of POST /v1/chat/completions. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: http.IncomingHttpHeaders;
  receivedAt: number;
}

export interface FakeReply {
  /** Assistant content (default: `reply to: <last user message content>`). */
  text?: string;
  /** Sent as message.reasoning_content. */
  reasoning?: string;
  toolCalls?: { name: string; arguments: string }[];
  /** Default "stop" ("tool_calls" when toolCalls given). */
  finishReason?: string;
  /** Default: prompt = total chars of messages / 4 rounded up, completion = text length / 4. */
  usage?: { prompt_tokens: number; completion_tokens: number };
  /**
   * Prompt tokens reused from the cache, reported as llama-server does: in
   * `usage.prompt_tokens_details.cached_tokens` and in `timings` (`prompt_n`, `cache_n`,
   * `predicted_n`; in a stream on the usage chunk, or on the finish chunk without include_usage).
   * `reportIn` keeps only one of them, as other servers and older llama-server builds do.
   */
  cache?: { cachedTokens: number; reportIn?: "usage" | "timings" };
  /**
   * Answer this long after the request arrived, reading and parsing it included, as a model that
   * takes this long would: never sooner, and a fraction of a millisecond after (see waitUntil).
   */
  delayMs?: number;
  /** Answer with this HTTP status and errorBody. */
  status?: number;
  errorBody?: unknown;
  /** Extra response headers (e.g. retry-after on a 429). */
  headers?: Record<string, string>;
  /** Never answer (until the client aborts or the server stops). */
  hang?: boolean;
  /** Destroy the socket without answering (connection reset). */
  destroy?: boolean;
  /** Streaming only: pause between chunks. */
  chunkDelayMs?: number;
  /**
   * Streaming only: break the answer as `breakBy` says (no finish, no [DONE]) right after this
   * many content pieces (4 characters each) were sent; 0 breaks it before any content.
   */
  breakAfterContent?: number;
  /**
   * How a broken answer ends: "reset" destroys the connection (default), "end" ends the response
   * cleanly (a stream without its finish).
   */
  breakBy?: "reset" | "end";
}

export type FakeHandler = (req: RecordedRequest, index: number) => FakeReply | Promise<FakeReply>;

export interface FakeModelServerOptions {
  /** /props total_slots, default 4. */
  slots?: number;
  /** /props default_generation_settings.n_ctx, the context of each slot; default 32768. */
  slotContext?: number;
  port?: number;
  handler?: FakeHandler;
  health?: "ok" | "loading" | "absent";
  /**
   * Keep every chat request in `requests` (default). Off for load runs: a real model server
   * forgets a request once answered, and holding thousands of bodies would make this process's
   * garbage collector grow with the size of each prompt.
   */
  recordRequests?: boolean;
}

/** The 400 llama-server sends when the prompt does not fit in the context. */
export function contextOverflow(nPrompt: number, nCtx: number): FakeReply {
  return {
    status: 400,
    errorBody: {
      error: {
        code: 400,
        message: `request (${nPrompt} tokens) exceeds the available context size (${nCtx} tokens), try increasing it`,
        type: "exceed_context_size_error",
        n_prompt_tokens: nPrompt,
        n_ctx: nCtx,
      },
    },
  };
}

const MODEL_ID = "fake-model";
const STREAM_CHUNK_CHARS = 4;

export class FakeModelServer {
  /** Chat requests since the last resetStats, unless recordRequests is off. */
  readonly requests: RecordedRequest[] = [];
  handler: FakeHandler;
  slots: number;
  slotContext: number;
  health: "ok" | "loading" | "absent";
  healthChecks = 0;
  private active = 0;
  private peak = 0;
  private readonly sockets = new Set<Socket>();
  private readonly stopping = new AbortController();
  private readonly recordRequests: boolean;
  private chatRequests = 0;

  private constructor(
    private readonly server: http.Server,
    options: FakeModelServerOptions,
  ) {
    this.handler = options.handler ?? (() => ({}));
    this.slots = options.slots ?? 4;
    this.slotContext = options.slotContext ?? 32_768;
    this.health = options.health ?? "ok";
    this.recordRequests = options.recordRequests ?? true;
  }

  static async start(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
    const server = http.createServer();
    const fake = new FakeModelServer(server, options);
    server.on("request", (req, res) => {
      fake.route(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) sendJson(res, 500, errorBody(500, String(err)));
      });
    });
    server.on("connection", (socket) => {
      fake.sockets.add(socket);
      socket.on("close", () => fake.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Chat requests since the last resetStats, recorded or not. */
  get requestCount(): number {
    return this.chatRequests;
  }

  get maxInFlight(): number {
    return this.peak;
  }

  resetStats(): void {
    this.requests.length = 0;
    this.chatRequests = 0;
    this.peak = this.active;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && (path === "/health" || path === "/props" || path === "/v1/models")) {
      this.healthChecks++;
      return this.probe(path, res);
    }
    if (req.method === "POST" && (path === "/v1/chat/completions" || path === "/chat/completions")) {
      return this.chat(req, res);
    }
    sendJson(res, 404, errorBody(404, "File Not Found", "not_found_error"));
  }

  private probe(path: string, res: http.ServerResponse): void {
    if (this.health === "loading") {
      return sendJson(res, 503, errorBody(503, "Loading model", "unavailable_error"));
    }
    if (path === "/health") {
      if (this.health === "absent")
        return sendJson(res, 404, errorBody(404, "File Not Found", "not_found_error"));
      return sendJson(res, 200, { status: "ok" });
    }
    if (path === "/props") {
      return sendJson(res, 200, {
        default_generation_settings: { n_ctx: this.slotContext },
        total_slots: this.slots,
        model_path: `/models/${MODEL_ID}.gguf`,
      });
    }
    sendJson(res, 200, { object: "list", data: [{ id: MODEL_ID, object: "model" }] });
  }

  private async chat(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const arrived = performance.now();
    const raw = await readBody(req);
    let body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      body = JSON.parse(raw);
    } catch {
      return sendJson(res, 400, errorBody(400, "invalid JSON body", "invalid_request_error"));
    }
    const recorded: RecordedRequest = { body, headers: req.headers, receivedAt: Date.now() };
    const index = this.chatRequests++;
    if (this.recordRequests) this.requests.push(recorded);
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    // The client hanging up (abort, timeout) ends the request as far as concurrency is concerned.
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const cancelled = AbortSignal.any([gone.signal, this.stopping.signal]);
    try {
      const reply = await this.handler(recorded, index);
      if (reply.delayMs) await waitUntil(arrived + reply.delayMs, cancelled);
      if (cancelled.aborted) return;
      if (reply.hang) return await wait(Infinity, cancelled);
      if (reply.destroy) return void req.socket.destroy();
      if (reply.status && reply.status >= 400) {
        return sendJson(
          res,
          reply.status,
          reply.errorBody ?? errorBody(reply.status, "fake error"),
          reply.headers,
        );
      }
      const answer = buildAnswer(body, reply);
      if (body.stream === true) await this.stream(res, body, answer, reply, cancelled);
      else sendJson(res, reply.status ?? 200, completionObject(body, answer), reply.headers);
    } finally {
      this.active--;
    }
  }

  private async stream(
    res: http.ServerResponse,
    body: any, // eslint-disable-line @typescript-eslint/no-explicit-any
    answer: Answer,
    reply: FakeReply,
    cancelled: AbortSignal,
  ): Promise<void> {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...reply.headers,
    });
    const chunk = (delta: object, finishReason: string | null = null): object => ({
      ...envelope(body, "chat.completion.chunk"),
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    });
    const events: object[] = [chunk({ role: "assistant", content: null })];
    for (const piece of pieces(answer.reasoning)) events.push(chunk({ reasoning_content: piece }));
    // Where the stream breaks, if it does: the index of the first event never sent.
    const breakAt =
      reply.breakAfterContent === undefined ? Infinity : events.length + reply.breakAfterContent;
    for (const piece of pieces(answer.text)) events.push(chunk({ content: piece }));
    answer.toolCalls.forEach((call, i) => {
      const id = `call_${i}`;
      events.push(
        chunk({
          tool_calls: [{ index: i, id, type: "function", function: { name: call.name, arguments: "" } }],
        }),
      );
      for (const piece of pieces(call.arguments)) {
        events.push(chunk({ tool_calls: [{ index: i, function: { arguments: piece } }] }));
      }
    });
    // llama-server sends its timings on the usage chunk, or on the finish chunk when there is none.
    const timings = answer.timings ? { timings: answer.timings } : {};
    const withUsage = body.stream_options?.include_usage === true;
    events.push({ ...chunk({}, answer.finishReason), ...(withUsage ? {} : timings) });
    if (withUsage) {
      events.push({
        ...envelope(body, "chat.completion.chunk"),
        choices: [],
        usage: answer.usage,
        ...timings,
      });
    }
    for (const [i, event] of events.entries()) {
      if (cancelled.aborted) return;
      if (i >= breakAt) return breakAnswer(res, reply.breakBy);
      res.write(`data: ${JSON.stringify(event)}\n\n`);
      if (reply.chunkDelayMs) await wait(reply.chunkDelayMs, cancelled);
    }
    res.end("data: [DONE]\n\n");
  }
}

interface Answer {
  text: string;
  reasoning: string;
  toolCalls: { name: string; arguments: string }[];
  finishReason: string;
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    prompt_tokens_details?: { cached_tokens: number };
  };
  timings?: { prompt_n: number; cache_n: number; predicted_n: number };
}

/** The text of the last user message of a chat request body ("" when there is none). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function lastUserText(body: any): string {
  const messages: { role?: string; content?: unknown }[] = Array.isArray(body?.messages) ? body.messages : [];
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  return contentText(lastUser?.content);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function buildAnswer(body: any, reply: FakeReply): Answer {
  const messages: { role?: string; content?: unknown }[] = Array.isArray(body.messages) ? body.messages : [];
  const text = reply.text ?? `reply to: ${lastUserText(body)}`;
  const toolCalls = reply.toolCalls ?? [];
  const promptChars = messages.reduce((n, m) => n + contentText(m.content).length, 0);
  const usage = reply.usage ?? {
    prompt_tokens: Math.ceil(promptChars / 4),
    completion_tokens: Math.ceil(text.length / 4),
  };
  const cached = reply.cache?.cachedTokens ?? 0;
  const reportIn = reply.cache ? (reply.cache.reportIn ?? "both") : "none";
  return {
    text,
    reasoning: reply.reasoning ?? "",
    toolCalls,
    finishReason: reply.finishReason ?? (toolCalls.length ? "tool_calls" : "stop"),
    usage: {
      ...usage,
      total_tokens: usage.prompt_tokens + usage.completion_tokens,
      ...(reportIn === "usage" || reportIn === "both"
        ? { prompt_tokens_details: { cached_tokens: cached } }
        : {}),
    },
    ...(reportIn === "timings" || reportIn === "both"
      ? {
          timings: {
            prompt_n: usage.prompt_tokens - cached,
            cache_n: cached,
            predicted_n: usage.completion_tokens,
          },
        }
      : {}),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function completionObject(body: any, answer: Answer): object {
  const message: Record<string, unknown> = { role: "assistant", content: answer.text };
  if (answer.reasoning) message["reasoning_content"] = answer.reasoning;
  if (answer.toolCalls.length) {
    message["tool_calls"] = answer.toolCalls.map((call, i) => ({
      id: `call_${i}`,
      type: "function",
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  return {
    ...envelope(body, "chat.completion"),
    choices: [{ index: 0, message, finish_reason: answer.finishReason }],
    usage: answer.usage,
    ...(answer.timings ? { timings: answer.timings } : {}),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function envelope(body: any, object: string): object {
  return {
    id: "chatcmpl-fake",
    object,
    created: Math.floor(Date.now() / 1000),
    model: typeof body.model === "string" ? body.model : MODEL_ID,
  };
}

/** Text of a message's content, whether a string or a list of parts (images are skipped). */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part: { type?: string; text?: unknown }) =>
      part?.type === "text" && typeof part.text === "string" ? part.text : "",
    )
    .join("");
}

function pieces(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += STREAM_CHUNK_CHARS) out.push(text.slice(i, i + STREAM_CHUNK_CHARS));
  return out;
}

function errorBody(code: number, message: string, type = "server_error"): object {
  return { error: { code, message, type } };
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Ends an answer early: cleanly, or by destroying the connection once what was written is out. */
async function breakAnswer(res: http.ServerResponse, by: FakeReply["breakBy"]): Promise<void> {
  if (by === "end") return void res.end();
  // Let what was written reach the client first, as a server crashing mid-answer would.
  await new Promise<void>((resolve) => res.write("", () => resolve()));
  res.socket?.destroy();
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * Resolves at `performance.now()` time `at`, or when `signal` aborts. Timers count whole
 * milliseconds of a clock read at the start of the event loop's turn, so a timer aimed at `at`
 * can fire up to 1 ms early and one re-armed for the rest fires up to 1 ms late: the last
 * two milliseconds are waited out loop turn by loop turn instead, still serving other requests.
 */
async function waitUntil(at: number, signal: AbortSignal): Promise<void> {
  for (let left = at - performance.now(); left > 2 && !signal.aborted; left = at - performance.now()) {
    await wait(left - 2, signal);
  }
  while (performance.now() < at && !signal.aborted) await new Promise((resolve) => setImmediate(resolve));
}

/** Resolves after `ms` (never, for Infinity) or when `signal` aborts. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
