import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { ProjectCatalog } from "../config/projects.js";
import type { SessionManager } from "../sessions/manager.js";
import { EXPORT_TYPES, exportHeader, exportSession, writeChunk } from "./apiExport.js";
import { Conversations, iso } from "./conversations.js";
import type { HttpEndpoint } from "./httpServer.js";
import type { Logger } from "./logger.js";

export interface ConsoleApiOptions {
  projects: ProjectCatalog;
  sessions: SessionManager;
  logger: Logger;
  /** Largest request body accepted (a prompt), in bytes. */
  maxBodyBytes: number;
}

/** A refusal with its HTTP status, answered as `{"error": message, ...details}`. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  project: string;
  sessionId: string;
}

/** The JSON to answer with; an export writes its own response and returns nothing. */
type Reply = void | Record<string, unknown>;
type Handler = (call: Call) => Promise<Reply>;

const SessionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).optional(),
});
const ExportQuery = z.strictObject({ format: z.enum(["jsonl", "csv"]).default("jsonl") });
const NoQuery = z.strictObject({});
const PromptBody = z.strictObject({
  systemPrompt: z.string().trim().min(1, "must not be empty"),
  reset: z.boolean().default(true),
});

/**
 * The console's JSON API under `/api/projects` (README "Console"): projects with their prompt and
 * totals, sessions page by page, one conversation, clearing it, a project's prompt, and exports.
 * Input is checked at the edge with zod; every refusal is a JSON error with its status, and a
 * failing session store gives 503, never a crash.
 */
export class ConsoleApi {
  private readonly conversations: Conversations;
  private readonly log: Logger;
  private readonly routes: { pattern: string[]; methods: Record<string, Handler> }[];

  constructor(private readonly options: ConsoleApiOptions) {
    this.conversations = new Conversations(options.sessions);
    this.log = options.logger.child({ module: "api" });
    this.routes = [
      { pattern: ["projects"], methods: { GET: () => this.listProjects() } },
      { pattern: ["projects", ":project", "sessions"], methods: { GET: (c) => this.listSessions(c) } },
      {
        pattern: ["projects", ":project", "sessions", ":sessionId"],
        methods: { GET: (c) => this.getSession(c), DELETE: (c) => this.clearSession(c) },
      },
      {
        pattern: ["projects", ":project", "prompt"],
        methods: { GET: (c) => this.getPrompt(c), PUT: (c) => this.putPrompt(c) },
      },
      { pattern: ["projects", ":project", "export"], methods: { GET: (c) => this.export(c) } },
    ];
  }

  register(http: HttpEndpoint): void {
    http.mount("/api/", (req, res) => this.handle(req, res));
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? "/", "http://localhost");
      const { handler, params } = this.match(url.pathname.slice("/api/".length), req.method ?? "GET");
      const reply = await handler({
        req,
        res,
        query: url.searchParams,
        project: "",
        sessionId: "",
        ...params,
      });
      if (reply) json(res, 200, reply);
    } catch (error) {
      this.fail(res, error);
    }
  }

  private match(path: string, method: string): { handler: Handler; params: Partial<Call> } {
    const segments = path.split("/").map(decodeSegment);
    for (const { pattern, methods } of this.routes) {
      if (pattern.length !== segments.length) continue;
      const params: Record<string, string> = {};
      const fits = pattern.every((part, i) =>
        part.startsWith(":") ? ((params[part.slice(1)] = segments[i]!), true) : part === segments[i],
      );
      if (!fits) continue;
      if (params.project !== undefined) this.checkProject(params.project);
      const handler = methods[method === "HEAD" ? "GET" : method];
      if (!handler) {
        const allow = Object.keys(methods).join(", ");
        throw new ApiError(405, `${method} is not allowed here; use ${allow}`, {}, { allow });
      }
      return { handler, params };
    }
    throw new ApiError(404, `no such API path: /api/${path}`);
  }

  private checkProject(project: string): void {
    if (!this.options.projects.names.includes(project)) {
      throw new ApiError(404, `no project "${project}"`, { projects: this.options.projects.names });
    }
  }

  private async listProjects(): Promise<Reply> {
    const { names } = this.options.projects;
    const projects = [];
    for (const name of names) {
      const ids = await this.store(() => this.conversations.ids(name));
      const summaries = await this.store(() => this.conversations.summaries(name, ids));
      projects.push({
        name,
        systemPrompt: await this.store(() => this.options.sessions.projectPrompt(name)),
        sessions: summaries.length,
        turns: sum(summaries, "turns"),
        tokensIn: sum(summaries, "tokensIn"),
        tokensOut: sum(summaries, "tokensOut"),
      });
    }
    return { projects };
  }

  private async listSessions({ query, project }: Call): Promise<Reply> {
    const { limit, cursor } = parse(SessionsQuery, query, "query");
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const page = await this.store(() => this.conversations.page(project, limit, after));
    const sessions = await this.store(() => this.conversations.summaries(project, page.ids));
    const last = page.ids.at(-1);
    const nextCursor = page.more && last !== undefined ? encodeCursor(last) : null;
    return { project, total: page.total, sessions, nextCursor };
  }

  private async getSession({ query, project, sessionId }: Call): Promise<Reply> {
    parse(NoQuery, query, "query");
    const record = await this.store(() => this.options.sessions.peek({ project, sessionId }));
    if (!record) throw noSession(project, sessionId);
    const { systemPrompt, history } = record;
    return { project, ...this.conversations.summary(record), systemPrompt, history };
  }

  private async clearSession({ project, sessionId }: Call): Promise<Reply> {
    const cleared = await this.store(() => this.options.sessions.clear(project, sessionId));
    if (cleared === 0) throw noSession(project, sessionId);
    return { project, sessionId, cleared: true, at: iso(Date.now()) };
  }

  private async getPrompt({ project }: Call): Promise<Reply> {
    return { project, systemPrompt: await this.store(() => this.options.sessions.projectPrompt(project)) };
  }

  /** The same path a project-wide MQTT template takes (PROTOCOL A5): new default, every session. */
  private async putPrompt({ req, project }: Call): Promise<Reply> {
    const body = parse(PromptBody, await readJson(req, this.options.maxBodyBytes), "body");
    const { systemPrompt, reset } = body;
    const sessionsUpdated = await this.store(() =>
      this.options.sessions.setProjectPrompt(project, systemPrompt, reset),
    );
    this.log.info({ project, sessions: sessionsUpdated, reset }, "project system prompt replaced over HTTP");
    return { project, systemPrompt, reset, sessionsUpdated };
  }

  /**
   * Streams every conversation of the project, a batch of sessions at a time. The first batch is
   * read before the headers go out, so a store that is down still gets its 503; a failure later
   * cuts the response off, which the client sees as an incomplete transfer.
   */
  private async export({ res, query, project }: Call): Promise<void> {
    const { format } = parse(ExportQuery, query, "query");
    const ids = await this.store(() => this.conversations.ids(project));
    const batches = this.conversations.read(project, ids);
    const first = await this.store(() => batches.next());
    res.writeHead(200, {
      "content-type": EXPORT_TYPES[format],
      "content-disposition": `attachment; filename="${project.replace(/[^\w.-]/g, "_")}-conversations.${format}"`,
      "cache-control": "no-store",
    });
    try {
      let batch = first;
      let open = await writeChunk(res, exportHeader(format));
      while (open && !batch.done) {
        open = await writeChunk(res, batch.value.map((record) => exportSession(record, format)).join(""));
        if (open) batch = await batches.next();
      }
      res.end();
    } catch (error) {
      this.log.error({ err: error, project }, "export cut off: the session store failed");
      res.destroy(error as Error);
    }
  }

  /** Runs a session store operation; its failure becomes a 503 the client can retry. */
  private async store<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      this.log.error({ err: error }, "console API: the session store failed");
      throw new ApiError(
        503,
        `the session store is not available: ${(error as Error).message}`,
        {},
        {
          "retry-after": "5",
        },
      );
    }
  }

  private fail(res: ServerResponse, error: unknown): void {
    if (!(error instanceof ApiError)) this.log.error({ err: error }, "console API failed");
    const refusal = error instanceof ApiError ? error : new ApiError(500, "internal error");
    if (res.headersSent) return void res.destroy();
    for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
    json(res, refusal.status, { error: refusal.message, ...refusal.details });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" })
    .end(JSON.stringify(body));
}

function parse<T extends z.ZodType>(schema: T, input: unknown, where: string): z.infer<T> {
  const source = input instanceof URLSearchParams ? Object.fromEntries(input) : input;
  const result = schema.safeParse(source);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.join("."),
    message: issue.message,
  }));
  const text = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
  throw new ApiError(400, `invalid ${where}: ${text}`, { issues });
}

/**
 * The request body as JSON: only `application/json`, which browsers never send cross-origin
 * without asking first, and at most `limit` bytes, kept in memory only that far.
 */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
    throw new ApiError(415, "send the body as JSON, with content-type: application/json");
  }
  const tooLarge = () =>
    new ApiError(413, `the body is over ${limit} bytes`, { limit }, { connection: "close" });
  if (Number(req.headers["content-length"]) > limit) {
    req.resume();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const complete = await new Promise<boolean>((resolve, reject) => {
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Read the rest into nothing, so the client can finish sending and read the 413.
        req.removeAllListeners("data").resume();
        resolve(false);
      } else chunks.push(chunk);
    });
    req.once("end", () => resolve(true));
    req.once("error", reject);
  });
  if (!complete) throw tooLarge();
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new ApiError(400, "the body is not valid JSON");
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApiError(400, `bad percent-encoding in the path: ${segment}`);
  }
}

/** Cursors are opaque to clients: the last session id of the page before, base64url. */
function encodeCursor(sessionId: string): string {
  return Buffer.from(sessionId, "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString("utf8");
  if (id === "" || encodeCursor(id) !== cursor)
    throw new ApiError(400, "invalid query: cursor: not a cursor");
  return id;
}

function noSession(project: string, sessionId: string): ApiError {
  return new ApiError(404, `no session "${sessionId}" in project "${project}"`);
}

function sum<K extends string>(items: Record<K, number>[], key: K): number {
  return items.reduce((total, item) => total + item[key], 0);
}
