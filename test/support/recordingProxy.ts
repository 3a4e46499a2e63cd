import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What llama-server reports it evaluated for one chat completion. */
export interface PromptTimings {
  /** Prompt tokens evaluated for this request. */
  prompt_n: number;
  /** Prompt tokens reused from the slot's cache. */
  cache_n: number;
  predicted_n: number;
}

export interface RecordedExchange {
  path: string;
  /** The request body exactly as llmqtt sent it. */
  rawBody: string;
  body: Record<string, unknown>;
  status: number;
  /** From the JSON answer or the last streamed chunk that had them. */
  timings?: PromptTimings;
}

/**
 * An HTTP proxy in front of a model server that keeps every chat request llmqtt sends, byte for
 * byte, with the prompt timings the server answered: what a test needs to check cache stability.
 */
export class RecordingProxy {
  readonly exchanges: RecordedExchange[] = [];

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
  ) {}

  static async start(targetUrl: string): Promise<RecordingProxy> {
    const server = createServer();
    const proxy = new RecordingProxy(server, new URL(targetUrl));
    server.on("request", (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const rawBody = Buffer.concat(chunks);
        const upstream = httpRequest(
          {
            host: proxy.target.hostname,
            port: proxy.target.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
            // A connection per request: Node's agent reusing one llama-server has just closed
            // resets the request, which llmqtt would see as the server failing.
            agent: false,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            if (req.method === "POST") proxy.record(req.url ?? "", rawBody.toString("utf8"), answer);
          },
        );
        upstream.on("error", () => res.destroy());
        // llmqtt giving up on a request must reach the server, as it would without the proxy.
        res.on("close", () => {
          if (!res.writableFinished) upstream.destroy();
        });
        upstream.end(rawBody);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The chat completions recorded so far. */
  get chats(): RecordedExchange[] {
    return this.exchanges.filter((e) => e.path.endsWith("/chat/completions"));
  }

  clear(): void {
    this.exchanges.length = 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(path: string, rawBody: string, answer: IncomingMessage): void {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      // Not JSON: kept raw.
    }
    const exchange: RecordedExchange = { path, rawBody, body, status: answer.statusCode ?? 0 };
    this.exchanges.push(exchange);
    const text: Buffer[] = [];
    answer.on("data", (chunk: Buffer) => text.push(chunk));
    answer.on("end", () => (exchange.timings = lastTimings(Buffer.concat(text).toString("utf8"))));
    answer.on("error", () => undefined);
  }
}

/** The last `"timings":{...}` object in a JSON answer or an SSE stream. */
function lastTimings(text: string): PromptTimings | undefined {
  const at = text.lastIndexOf('"timings":');
  if (at < 0) return undefined;
  const start = text.indexOf("{", at);
  const end = text.indexOf("}", start);
  try {
    return JSON.parse(text.slice(start, end + 1)) as PromptTimings;
  } catch {
    return undefined;
  }
}
