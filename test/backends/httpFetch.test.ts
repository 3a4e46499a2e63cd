import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { classifyError } from "../../src/backends/errors.js";
import {
  createHttpFetch,
  DeadlinePassed,
  withCallLimits,
  type CallLimits,
  type HttpFetch,
} from "../../src/backends/httpFetch.js";
import { OpenAICompatibleBackend } from "../../src/backends/openaiBackend.js";
import { unreachableDetail } from "../../src/backends/probe.js";
import { BackendError, type ChatRequest } from "../../src/backends/types.js";
import { FakeModelServer, type FakeReply } from "../support/fakeModelServer.js";
import { closedPort, eventually, request, settings, silent } from "./helpers.js";

/** A real HTTP server on loopback that counts the connections made to it. */
interface TestServer {
  url: string;
  connections: number;
  /** Connections the client has closed or that were closed on it. */
  closed: number;
  stop(): Promise<void>;
}

async function serve(handler: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(handler);
  const testServer: TestServer = {
    url: "",
    connections: 0,
    closed: 0,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on("connection", (socket) => {
    testServer.connections++;
    socket.on("close", () => testServer.closed++);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  testServer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return testServer;
}

/** The error a call fails with, whether the fetch rejects or its body errors while being read. */
async function failureOf(fetchImpl: typeof fetch, url: string): Promise<unknown> {
  try {
    await (await fetchImpl(url)).text();
  } catch (error) {
    return error;
  }
  return assert.fail(`${url} did not fail`);
}

const decoder = new TextDecoder();
// A fetch that loses track of a connection or a stream hangs rather than fails; this turns it into a failure.
const suite = { timeout: 20_000 };

describe("createHttpFetch", suite, () => {
  let client: HttpFetch;
  let server: TestServer | undefined;
  before(() => {
    client = createHttpFetch();
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });
  after(() => client.close());

  test("sends method, headers (not the SDK's telemetry) and body, and answers with status, headers and body", async () => {
    server = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.writeHead(429, "Slow Down", { "content-type": "application/json", "retry-after": "3" });
        res.end(
          JSON.stringify({
            method: req.method,
            headers: req.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
    });
    const body = JSON.stringify({ text: "héllo" });
    const response = await client.fetch(`${server.url}/v1/chat?x=1`, {
      method: "POST",
      headers: new Headers({
        "content-type": "application/json",
        authorization: "Bearer k",
        "x-stainless-os": "Linux",
        "x-stainless-retry-count": "0",
      }),
      body,
    });
    assert.equal(response.status, 429);
    assert.equal(response.statusText, "Slow Down");
    assert.equal(response.ok, false);
    assert.equal(response.headers.get("retry-after"), "3");
    assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
    const echo = (await response.json()) as {
      method: string;
      headers: http.IncomingHttpHeaders;
      body: string;
    };
    assert.equal(echo.method, "POST");
    assert.equal(echo.headers.authorization, "Bearer k");
    assert.equal(echo.headers["x-stainless-os"], undefined);
    assert.equal(echo.headers["x-stainless-retry-count"], undefined);
    assert.equal(echo.headers["content-length"], String(Buffer.byteLength(body)));
    assert.equal(echo.body, body);
  });

  test("streams the body chunk by chunk, as the server writes it", async () => {
    let sendRest!: () => void;
    const rest = new Promise<void>((resolve) => (sendRest = resolve));
    server = await serve(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      await rest;
      res.end("data: two\n\n");
    });
    const response = await client.fetch(server.url);
    const reader = response.body!.getReader();
    // The server holds back the rest until the first chunk has been read: nothing may wait for it.
    const first = await reader.read();
    assert.equal(decoder.decode(first.value), "data: one\n\n");
    sendRest();
    let remainder = "";
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      remainder += decoder.decode(next.value);
    }
    assert.equal(remainder, "data: two\n\n");
  });

  test("reads a body larger than the stream's buffer in full", async () => {
    const big = "x".repeat(4 * 1024 * 1024);
    server = await serve((_req, res) => res.end(big));
    assert.equal(await (await client.fetch(server.url)).text(), big);
  });

  test("keeps one connection for sequential calls and one per concurrent call", async () => {
    server = await serve((_req, res) => res.end("ok"));
    for (let i = 0; i < 20; i++) assert.equal(await (await client.fetch(server.url)).text(), "ok");
    // A probe cancels a body it does not need; a body already received keeps the connection.
    for (let i = 0; i < 5; i++) await (await client.fetch(server.url)).body?.cancel();
    assert.equal(server.connections, 1);
    for (let round = 0; round < 5; round++) {
      const replies = await Promise.all(
        Array.from({ length: 8 }, async () => (await client.fetch(server!.url)).text()),
      );
      assert.deepEqual(replies, Array(8).fill("ok"));
    }
    assert.equal(server.connections, 8);
  });

  test("cancelling a body keeps the connection if the body has arrived, else drops it", async () => {
    server = await serve((req, res) => {
      res.write("first");
      if (req.url === "/whole") setTimeout(() => res.end("rest"), 20);
    });
    // Unread, the first chunk fills the stream; the rest arrives and waits in the socket's buffer.
    const whole = await client.fetch(`${server.url}/whole`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await whole.body?.cancel();
    assert.equal(await (await client.fetch(`${server.url}/whole`)).text(), "firstrest");
    assert.equal(server.connections, 1);

    await (await client.fetch(`${server.url}/partial`)).body?.cancel();
    await eventually(() => server!.closed === 1);
  });

  test("answers 204 and HEAD without a body and keeps the connection", async () => {
    server = await serve((req, res) => {
      res.writeHead(req.method === "HEAD" ? 200 : 204);
      res.end();
    });
    const empty = await client.fetch(server.url);
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    const head = await client.fetch(server.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    assert.equal(server.connections, 1);
  });

  test("close() ends every connection; later calls open new ones", async () => {
    server = await serve((_req, res) => res.end("ok"));
    await (await client.fetch(server.url)).text();
    client.close();
    await eventually(() => server!.closed === 1);
    assert.equal(await (await client.fetch(server.url)).text(), "ok");
    assert.equal(server.connections, 2);
  });

  test("aborting before the response rejects with the signal's reason and drops the connection", async () => {
    server = await serve(() => {});
    const controller = new AbortController();
    const pending = client.fetch(server.url, { signal: controller.signal });
    await eventually(() => server!.connections === 1);
    controller.abort();
    await assert.rejects(pending, { name: "AbortError" });
    await eventually(() => server!.closed === 1);
    await assert.rejects(client.fetch(server.url, { signal: AbortSignal.timeout(20) }), {
      name: "TimeoutError",
    });
    await assert.rejects(client.fetch(server.url, { signal: AbortSignal.abort() }), { name: "AbortError" });
  });

  test("aborting mid-body errors the body with the signal's reason and drops the connection", async () => {
    server = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
    });
    const controller = new AbortController();
    const response = await client.fetch(server.url, { signal: controller.signal });
    const reader = response.body!.getReader();
    assert.equal(decoder.decode((await reader.read()).value), "data: one\n\n");
    controller.abort();
    await assert.rejects(reader.read(), { name: "AbortError" });
    await eventually(() => server!.closed === 1);
  });

  test("CallLimits: a deadline fails the call before the response and mid-body, and drops the connection", async () => {
    server = await serve((req, res) => {
      if (req.url === "/body") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write("data: one\n\n");
      }
    });
    const soon = (): RequestInit => ({ deadline: Date.now() + 100 }) as CallLimits as RequestInit;
    await assert.rejects(client.fetch(`${server.url}/wait`, soon()), DeadlinePassed);
    await eventually(() => server!.closed === 1);
    const reader = (await client.fetch(`${server.url}/body`, soon())).body!.getReader();
    assert.equal(decoder.decode((await reader.read()).value), "data: one\n\n");
    await assert.rejects(reader.read(), DeadlinePassed);
    await eventually(() => server!.closed === 2);
    const past = { deadline: Date.now() } as CallLimits as RequestInit;
    await assert.rejects(client.fetch(`${server.url}/wait`, past), DeadlinePassed);
    assert.equal(server.connections, 2, "a call already past its deadline is never sent");
  });

  test("CallLimits: answered runs once a 2xx body has arrived whole, before its reader is told, and never for a failure", async () => {
    let sendRest!: () => void;
    const rest = new Promise<void>((resolve) => (sendRest = resolve));
    server = await serve(async (req, res) => {
      if (req.url === "/error") return void res.writeHead(500).end("no");
      res.write("first ");
      if (req.url === "/broken") return void setTimeout(() => res.destroy(), 20);
      if (req.url === "/slow") await rest;
      res.end("rest");
    });
    const seen: string[] = [];
    let next: Promise<Response> | undefined;
    let readerDone = false;
    let readerDoneWhenAnswered: boolean | undefined;
    const limits = (name: string): RequestInit =>
      ({
        answered: () => {
          seen.push(name);
          readerDoneWhenAnswered ??= readerDone;
          // As the pool's next call does, a promise step later: by then the connection is free.
          if (name !== "slow") return false;
          next = Promise.resolve().then(() => client.fetch(`${server!.url}/next`));
          return true;
        },
      }) as CallLimits as RequestInit;

    const reader = (await client.fetch(`${server.url}/slow`, limits("slow"))).body!.getReader();
    assert.equal(decoder.decode((await reader.read()).value), "first ");
    assert.deepEqual(seen, [], "half a body is no answer");
    const drained = (async () => {
      while (!(await reader.read()).done);
      readerDone = true;
    })();
    sendRest();
    await drained;
    assert.equal(readerDoneWhenAnswered, false, "answered before the reader had the end");
    assert.equal(await (await next!).text(), "first rest");
    assert.equal(server.connections, 1, "the next call went out on the same connection");

    assert.equal(await (await client.fetch(`${server.url}/error`, limits("error"))).text(), "no");
    await assert.rejects((await client.fetch(`${server.url}/broken`, limits("broken"))).text(), {
      message: "terminated",
    });
    assert.deepEqual(seen, ["slow"]);
  });

  test("CallLimits: when answered has set another call going, the reader hears of the end a loop turn later", async () => {
    let sendRest!: () => void;
    server = await serve(async (_req, res) => {
      res.write("first ");
      await new Promise<void>((resolve) => (sendRest = resolve));
      res.end("rest");
    });
    /** Whether the reader had the end by the first loop turn after `answered` (its check phase). */
    const readerDoneOneTurnLater = async (handedOn: boolean): Promise<boolean> => {
      let readerDone = false;
      let seen: boolean | undefined;
      const answered = (): boolean => {
        setImmediate(() => (seen = readerDone));
        return handedOn;
      };
      const response = await client.fetch(server!.url, { answered } as CallLimits as RequestInit);
      const reader = response.body!.getReader();
      await reader.read();
      const drained = (async () => {
        while (!(await reader.read()).done);
        readerDone = true;
      })();
      sendRest();
      await drained;
      await new Promise((resolve) => setImmediate(resolve));
      return seen!;
    };
    assert.equal(await readerDoneOneTurnLater(false), true, "nothing set going: the reader is told at once");
    assert.equal(await readerDoneOneTurnLater(true), false, "the other call goes first");
  });

  test("CallLimits: calls sharing a cancel signal put one listener on it; its abort fails them all", async () => {
    server = await serve((req, res) => {
      if (req.url === "/now") res.end("ok");
    });
    const shutdown = new AbortController();
    const limits = { cancel: shutdown.signal, deadline: Date.now() + 60_000 } as CallLimits as RequestInit;
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    const idleTimers = timers();
    // Answered calls let go of the signal and clear their deadline timers.
    for (let i = 0; i < 5; i++)
      assert.equal(await (await client.fetch(`${server.url}/now`, limits)).text(), "ok");
    assert.equal(timers(), idleTimers);
    const calls = Array.from({ length: 20 }, () => client.fetch(`${server!.url}/wait`, limits));
    // The first of them takes the connection the answered calls left idle.
    await eventually(() => server!.connections === 20);
    assert.equal(getEventListeners(shutdown.signal, "abort").length, 1);
    shutdown.abort();
    for (const outcome of await Promise.allSettled(calls)) {
      assert.equal(outcome.status, "rejected");
      assert.equal((outcome.reason as Error).name, "AbortError");
    }
    await eventually(() => server!.closed === 20);
    await assert.rejects(client.fetch(`${server.url}/now`, limits), { name: "AbortError" });
  });

  test("CallLimits: places freed by answered calls serve later ones; an abort stops every open call and nothing else", async () => {
    let waiting = 0;
    let laterAsked = false;
    server = await serve((req, res) => {
      if (req.url === "/now") res.end("ok");
      if (req.url === "/wait") waiting++;
      if (req.url === "/later") {
        laterAsked = true;
        setTimeout(() => res.end("later"), 200);
      }
    });
    const shutdown = new AbortController();
    const limits = { cancel: shutdown.signal } as CallLimits as RequestInit;
    const open = [client.fetch(`${server.url}/wait`, limits)];
    // Each answered call frees its place, which the next call takes.
    for (let i = 1; i <= 3; i++) {
      assert.equal(await (await client.fetch(`${server.url}/now`, limits)).text(), "ok");
      open.push(client.fetch(`${server.url}/wait`, limits));
      await eventually(() => waiting === i + 1);
    }
    assert.equal(await (await client.fetch(`${server.url}/now`, limits)).text(), "ok");
    // A call outside the signal, on the connection the last answered call left idle.
    const outside = client.fetch(`${server.url}/later`);
    await eventually(() => laterAsked);
    shutdown.abort();
    for (const outcome of await Promise.allSettled(open)) {
      assert.equal(outcome.status, "rejected");
      assert.equal((outcome.reason as Error).name, "AbortError");
    }
    assert.equal(
      await (await outside).text(),
      "later",
      "the abort reached the connection of a call that had ended",
    );
  });

  test("CallLimits: a call stopped by its deadline frees its place once, so later calls each keep their own", async () => {
    let waiting = 0;
    server = await serve((req) => {
      if (req.url === "/wait") waiting++;
    });
    const shutdown = new AbortController();
    const soon = { cancel: shutdown.signal, deadline: Date.now() + 50 } as CallLimits as RequestInit;
    await assert.rejects(client.fetch(`${server.url}/wait`, soon), DeadlinePassed);
    const limits = { cancel: shutdown.signal } as CallLimits as RequestInit;
    const open = [client.fetch(`${server.url}/wait`, limits), client.fetch(`${server.url}/wait`, limits)];
    await eventually(() => waiting === 3);
    shutdown.abort();
    for (const outcome of await Promise.allSettled(open)) {
      assert.equal(outcome.status, "rejected");
      assert.equal((outcome.reason as Error).name, "AbortError");
    }
  });

  test("withCallLimits gives another fetch the same deadline and cancel", async () => {
    let received = 0;
    server = await serve(() => received++);
    const limited = withCallLimits(globalThis.fetch);
    const soon = { deadline: Date.now() + 100 } as CallLimits as RequestInit;
    await assert.rejects(limited(server.url, soon), DeadlinePassed);
    const shutdown = new AbortController();
    const pending = limited(server.url, { cancel: shutdown.signal } as CallLimits as RequestInit);
    await eventually(() => received === 2);
    shutdown.abort();
    await assert.rejects(pending, { name: "AbortError" });
  });

  test("rejects what it does not support instead of sending it half right", async () => {
    await assert.rejects(client.fetch(new Request("http://127.0.0.1:1/")), TypeError);
    await assert.rejects(client.fetch("ftp://127.0.0.1/"), TypeError);
    await assert.rejects(
      client.fetch("http://127.0.0.1:1/", { method: "POST", body: new URLSearchParams("a=1") }),
      TypeError,
    );
  });
});

describe("createHttpFetch fails the way the global fetch does", suite, () => {
  let client: HttpFetch;
  let server: TestServer;
  before(async () => {
    client = createHttpFetch();
    server = await serve((req, res) => {
      if (req.url === "/reset") return void req.socket.destroy();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n", () => setTimeout(() => req.socket.destroy(), 20));
    });
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  const cases: [string, () => Promise<string>][] = [
    ["connection refused", async () => `http://127.0.0.1:${await closedPort()}/`],
    ["connection reset before the response", async () => `${server.url}/reset`],
    ["connection reset within the body", async () => `${server.url}/body`],
  ];
  for (const [name, url] of cases) {
    test(name, async () => {
      const target = await url();
      const expected = await failureOf(globalThis.fetch, target);
      const actual = await failureOf(client.fetch, target);
      assert.ok(actual instanceof TypeError && expected instanceof TypeError);
      assert.equal(actual.message, expected.message);
      assert.ok(actual.cause instanceof Error, "the system error is the cause");
      assert.equal(unreachableDetail(actual), unreachableDetail(expected));
      const context = { server: target, redact: (text: string) => text };
      assert.equal(classifyError(actual, context).error.code, classifyError(expected, context).error.code);
    });
  }
});

describe("OpenAICompatibleBackend over createHttpFetch and over the global fetch", suite, () => {
  let fake: FakeModelServer;
  before(async () => {
    fake = await FakeModelServer.start();
  });
  after(() => fake.stop());

  /** The error code, delivered text and health detail a failing call ends with, for either fetch. */
  async function outcome(url: string, overrides: Partial<ChatRequest>, fetchImpl?: typeof fetch) {
    const backend = new OpenAICompatibleBackend(settings({ url }), silent, {
      retry: { maxAttempts: 1 },
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
    });
    try {
      const error = await backend.chat(request(overrides)).then(
        () => assert.fail("expected a failure"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof BackendError, String(error));
      return { code: error.code, partialText: error.partialText, health: backend.health().detail };
    } finally {
      await backend.stop();
    }
  }

  test("end with the same error codes, delivered text and health details", async () => {
    const refused = `http://127.0.0.1:${await closedPort()}`;
    const streamed = () => ({ onDelta: () => {} });
    const cases: [string, FakeReply | undefined, () => Partial<ChatRequest>][] = [
      ["connection refused", undefined, () => ({})],
      ["reset", { destroy: true }, () => ({})],
      ["reset, streamed", { destroy: true }, streamed],
      ["reset mid-stream", { text: "Once upon a time", breakAfterContent: 2 }, streamed],
      ["no answer before the deadline", { hang: true }, () => ({ deadline: Date.now() + 300 })],
    ];
    for (const [name, reply, overrides] of cases) {
      if (reply) fake.handler = () => reply;
      const url = reply ? fake.url : refused;
      const expected = await outcome(url, overrides(), globalThis.fetch);
      assert.deepEqual(await outcome(url, overrides()), expected, name);
    }
  });

  test("end the same way when a JSON answer is cut off, by a reset or a clean end", async () => {
    const half = '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"mess';
    const cut = await serve((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(half, () => (req.url?.startsWith("/reset/") ? req.socket.destroy() : res.end()));
    });
    try {
      for (const how of ["reset", "end"]) {
        const url = `${cut.url}/${how}`;
        const expected = await outcome(url, {}, globalThis.fetch);
        assert.deepEqual(await outcome(url, {}), expected, how);
      }
    } finally {
      await cut.stop();
    }
  });
});
