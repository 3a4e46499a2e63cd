import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { pino, type Logger } from "pino";
import { OpenAICompatibleBackend } from "../../src/backends/openaiBackend.js";
import { BackendPool, type PoolOptions } from "../../src/backends/pool.js";
import { createServerPool } from "../../src/backends/serverPool.js";
import { BackendError, type BackendHealth } from "../../src/backends/types.js";
import { FakeModelServer, type FakeModelServerOptions } from "../support/fakeModelServer.js";
import { closedPort, eventually, failure, request, settings, silent } from "./helpers.js";

const fastRetry = { baseDelayMs: 5, maxDelayMs: 20 };

/** A logger whose lines end up in `lines`, parsed. */
function capturingLogger(): {
  logger: Logger;
  lines: { level: number; msg: string; [k: string]: unknown }[];
} {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const WARN = 40;

describe("BackendPool", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A fake server that answers with its own name, so a reply tells which server gave it. */
  async function server(name: string, options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
    const fake = await FakeModelServer.start({ handler: () => ({ text: name }), ...options });
    cleanup.push(() => fake.stop());
    return fake;
  }

  async function poolOf(
    urls: string[],
    options: { logger?: Logger; cooldownMs?: number; pool?: Partial<PoolOptions> } = {},
  ): Promise<BackendPool> {
    const pool = createServerPool(
      urls.map((url) => settings({ url, probeIntervalSec: 0.05 })),
      4,
      options.logger ?? silent,
      { backend: { retry: fastRetry }, pool: { cooldownMs: options.cooldownMs ?? 60_000, ...options.pool } },
    );
    cleanup.push(() => pool.stop());
    await pool.start();
    return pool;
  }

  test("is named after its size, sums the capacity of its servers and fits the smallest context", async () => {
    const a = await server("A", { slots: 2, slotContext: 4096 });
    const b = await server("B", { slots: 3, slotContext: 2048 });
    const pool = await poolOf([a.url, b.url]);
    assert.equal(pool.name, "pool(2 servers)");
    assert.deepEqual(pool.health(), { healthy: true, slots: 5, contextTokens: 2048 });
    assert.deepEqual(
      pool.status().map((s) => [s.name, s.healthy, s.coolingDown, s.slots, s.inFlight, s.served, s.failed]),
      [
        [a.url, true, false, 2, 0, 0, 0],
        [b.url, true, false, 3, 0, 0, 0],
      ],
    );
  });

  test("capacity: a configured override, else the server's count, else the default", async () => {
    const a = await server("A", { slots: 2 });
    const b = await server("B", { slots: 0 }); // /props without a usable total_slots
    const c = await server("C", { slots: 3 });
    const pool = createServerPool(
      [
        settings({ url: a.url, probeIntervalSec: 60 }),
        settings({ url: b.url, probeIntervalSec: 60 }),
        settings({ url: c.url, probeIntervalSec: 60, slots: 7, weight: 2 }),
      ],
      5,
      silent,
    );
    cleanup.push(() => pool.stop());
    await pool.start();
    assert.deepEqual(
      pool.status().map((s) => s.slots),
      [2, 5, 7],
    );
    assert.deepEqual(pool.health(), { healthy: true, slots: 14, contextTokens: 32_768 });
  });

  test("as many calls as slots (what the scheduler sends): none over a server's slots, all servers used", async () => {
    const a = await server("A", { slots: 2, handler: () => ({ text: "A", delayMs: 60 }) });
    const b = await server("B", { slots: 3, handler: () => ({ text: "B", delayMs: 60 }) });
    const pool = await poolOf([a.url, b.url]);
    const round = () =>
      Array.from({ length: 5 }, (_, i) =>
        pool.chat(request({ messages: [{ role: "user", content: `turn ${i}` }] })),
      );
    const replies = [...(await Promise.all(round())), ...(await Promise.all(round()))];
    assert.equal(replies.length, 10);
    assert.ok(a.maxInFlight <= 2, `A had ${a.maxInFlight} in flight`);
    assert.ok(b.maxInFlight <= 3, `B had ${b.maxInFlight} in flight`);
    assert.ok(a.requests.length > 0 && b.requests.length > 0, "both used");
    assert.equal(a.requests.length + b.requests.length, 10);
    const status = pool.status();
    assert.deepEqual(
      status.map((s) => s.inFlight),
      [0, 0],
    );
    assert.equal(status[0]!.served + status[1]!.served, 10);
  });

  test("spreads by weight: the heavier server takes more of the parallel calls", async () => {
    const a = await server("A", { slots: 4, handler: () => ({ text: "A", delayMs: 60 }) });
    const b = await server("B", { slots: 4, handler: () => ({ text: "B", delayMs: 60 }) });
    const pool = createServerPool(
      [
        settings({ url: a.url, probeIntervalSec: 60, weight: 3 }),
        settings({ url: b.url, probeIntervalSec: 60 }),
      ],
      4,
      silent,
    );
    cleanup.push(() => pool.stop());
    await pool.start();
    await Promise.all(Array.from({ length: 4 }, () => pool.chat(request())));
    assert.equal(a.requests.length, 3);
    assert.equal(b.requests.length, 1);
  });

  test("keeps a conversation on the server that last served it while it has a free slot", async () => {
    const a = await server("A", { slots: 1 });
    const b = await server("B", { slots: 1 });
    const pool = await poolOf([a.url, b.url]);
    const first = (await pool.chat(request({ affinityKey: "game/1" }))).text;
    for (let i = 0; i < 4; i++) {
      assert.equal((await pool.chat(request({ affinityKey: "game/1" }))).text, first);
      // Other conversations and keyless calls take turns and do not disturb it.
      await pool.chat(request({ affinityKey: `other/${i}` }));
      await pool.chat(request());
    }

    // With its server busy, the conversation moves to the other one, and then stays there.
    const busy = first === "A" ? a : b;
    busy.handler = () => ({ hang: true });
    const blocker = new AbortController();
    const hanging = pool.chat(request({ affinityKey: "game/1" }), blocker.signal).catch(() => undefined);
    await eventually(() => busy.inFlight === 1);
    const moved = (await pool.chat(request({ affinityKey: "game/1" }))).text;
    assert.notEqual(moved, first);
    blocker.abort();
    await hanging;
    busy.handler = () => ({ text: first });
    assert.equal((await pool.chat(request({ affinityKey: "game/1" }))).text, moved);
  });

  test("fails over from a server answering 500, cools it down, and takes it back later", async () => {
    const a = await server("A", { handler: () => ({ status: 500 }) });
    const b = await server("B");
    const { logger, lines } = capturingLogger();
    const pool = await poolOf([a.url, b.url], { logger, cooldownMs: 300 });
    const seen: BackendHealth[] = [];
    pool.onHealthChange((h) => seen.push(h));

    for (let i = 0; i < 6; i++) assert.equal((await pool.chat(request())).text, "B");
    assert.ok(a.requests.length >= 1, "A was tried");
    assert.ok(a.requests.length < 6, "A was left out after failing");
    const [statusA, statusB] = pool.status();
    assert.equal(statusA!.failed, a.requests.length);
    assert.equal(statusB!.served, 6);
    const warning = lines.find((l) => l.level === WARN && l.msg.includes(a.url));
    assert.ok(warning, "a warning names the failing server");
    assert.match(warning.msg, /HTTP 500/);
    assert.match(warning.msg, /left out for at least 0\.3s/);
    assert.equal(warning["cooldownMs"], 300);
    // One attempt per server in a pool: A was not retried with backoff before failing over.
    assert.equal(statusA!.failed, a.requests.length);

    a.handler = () => ({ text: "A" });
    await eventually(() => !pool.status()[0]!.coolingDown, 5000);
    assert.deepEqual(pool.health(), { healthy: true, slots: 8, contextTokens: 32_768 });
    const texts = new Set<string>();
    for (let i = 0; i < 4; i++) texts.add((await pool.chat(request())).text);
    assert.ok(texts.has("A"), "A serves again");
    assert.ok(seen.some((h) => h.slots === 4));
    assert.ok(lines.some((l) => l.msg.includes(a.url) && /back in the pool/.test(l.msg)));
  });

  test("after its cooldown a failed server stays out until a probe finds it healthy", async () => {
    // The server fails and starts reloading its model: its probes fail from then on.
    const a = await server("A", {
      handler: () => {
        a.health = "loading";
        return { status: 500 };
      },
    });
    const b = await server("B");
    // The pool's clock runs ahead on demand, so the cooldown can pass without waiting for it.
    let skew = 0;
    const pool = await poolOf([a.url, b.url], { cooldownMs: 1000, pool: { now: () => Date.now() + skew } });
    const seen: BackendHealth[] = [];
    pool.onHealthChange((h) => seen.push(h));

    assert.equal((await pool.chat(request())).text, "B");
    assert.equal(a.requests.length, 1);
    assert.equal(pool.status()[0]!.coolingDown, true);
    assert.deepEqual(seen, [{ healthy: true, slots: 4, contextTokens: 32_768 }]);

    await eventually(() => !pool.status()[0]!.healthy);
    skew = 2000;
    assert.equal(pool.status()[0]!.coolingDown, true, "still out: not healthy yet");
    assert.deepEqual(pool.health(), { healthy: true, slots: 4, contextTokens: 32_768 });
    for (let i = 0; i < 3; i++) assert.equal((await pool.chat(request())).text, "B");
    assert.equal(a.requests.length, 1);

    a.health = "ok";
    a.handler = () => ({ text: "A" });
    await eventually(() => !pool.status()[0]!.coolingDown, 5000);
    await eventually(() => seen.at(-1)?.slots === 8);
    const texts = new Set<string>();
    for (let i = 0; i < 4; i++) texts.add((await pool.chat(request())).text);
    assert.ok(texts.has("A"));
  });

  test("does not fail over for errors of the request itself", async () => {
    const a = await server("A", {
      handler: () => ({
        status: 400,
        errorBody: { error: { message: "bad", type: "invalid_request_error" } },
      }),
    });
    const b = await server("B", {
      handler: () => ({
        status: 400,
        errorBody: { error: { message: "bad", type: "invalid_request_error" } },
      }),
    });
    const pool = await poolOf([a.url, b.url]);
    await failure(pool.chat(request()), "invalid_request");
    assert.equal(a.requests.length + b.requests.length, 1);
    assert.ok(pool.status().every((s) => !s.coolingDown));
  });

  test("fails over after one attempt; the last server left keeps its retries; reports the last failure", async () => {
    const a = await server("A", { handler: () => ({ status: 503 }) });
    const b = await server("B", { handler: () => ({ status: 502 }) });
    const pool = await poolOf([a.url, b.url]);
    const err = await failure(pool.chat(request()), "server_error");
    assert.deepEqual(
      [a.requests.length, b.requests.length].sort(),
      [1, 4],
      "one attempt on the first, four (the retry policy) on the last one left",
    );
    assert.match(err.message, /HTTP 50[23]/);
    assert.equal(pool.health().healthy, false);
    assert.match(pool.health().detail ?? "", /no model server available: .*cooling down/);
    // Now nobody is usable: fail fast without calling anyone.
    const fast = await failure(pool.chat(request()), "unreachable");
    assert.match(fast.message, /^no model server available/);
    assert.equal(a.requests.length + b.requests.length, 5);
  });

  test("fails fast with unreachable when no server is available", async () => {
    const urls = [`http://127.0.0.1:${await closedPort()}`, `http://127.0.0.1:${await closedPort()}`];
    const pool = await poolOf(urls);
    assert.equal(pool.health().healthy, false);
    const err = await failure(pool.chat(request()), "unreachable");
    assert.match(err.message, /^no model server available: /);
    for (const url of urls) assert.ok(err.message.includes(url), err.message);
    assert.match(err.message, /connection refused/);
  });

  test("keeps no waiting line: with every slot busy a call goes to the least-loaded server, within its deadline", async () => {
    const a = await server("A", { slots: 1, handler: () => ({ hang: true }) });
    const b = await server("B", { slots: 1, handler: () => ({ hang: true }) });
    const pool = await poolOf([a.url, b.url]);
    const blocker = new AbortController();
    const hanging = [1, 2, 3].map(() => pool.chat(request(), blocker.signal).catch((e: unknown) => e));
    await eventually(() => a.inFlight + b.inFlight === 3);
    assert.deepEqual(
      pool
        .status()
        .map((m) => m.inFlight)
        .sort(),
      [1, 2],
      "the third call went to a busy server, which queues it",
    );
    await failure(pool.chat(request({ deadline: Date.now() + 150 })), "timeout");
    await failure(pool.chat(request(), AbortSignal.abort()), "cancelled");
    blocker.abort();
    for (const call of hanging) assert.ok((await call) instanceof BackendError);
    assert.deepEqual(
      pool.status().map((m) => m.inFlight),
      [0, 0],
    );
  });

  test("a passing fault on the last server left is retried there, not turned into an outage", async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    // B resets the connection of its first call only: a kept-alive connection it had just closed.
    const b = await server("B", { handler: (_req, i) => (i === 0 ? { destroy: true } : { text: "B" }) });
    const pool = await poolOf([dead, b.url]);
    assert.equal((await pool.chat(request())).text, "B");
    assert.equal(b.requests.length, 2, "reset, then answered on the retry");
    assert.equal(pool.status()[1]!.coolingDown, false);
    assert.equal(pool.health().healthy, true, "B stays in: the pool is not left without a server");
  });

  test("a single server keeps its own retries and is never cooled down", async () => {
    const a = await server("A", { handler: (_req, i) => (i === 0 ? { status: 500 } : { text: "A" }) });
    const pool = await poolOf([a.url]);
    assert.equal(pool.name, "pool(1 server)");
    assert.equal((await pool.chat(request())).text, "A");
    assert.equal(a.requests.length, 2);

    a.handler = () => ({ status: 500 });
    await failure(pool.chat(request()), "server_error");
    assert.equal(a.requests.length, 6);
    assert.equal(pool.status()[0]!.coolingDown, false);
    assert.equal(pool.health().healthy, true);
  });

  test("streams through the pool and fails over before the first delta", async () => {
    const a = await server("A", { handler: () => ({ text: "lost", breakAfterContent: 0 }) });
    const b = await server("B", { handler: () => ({ text: "streamed by B" }) });
    const pool = await poolOf([a.url, b.url]);
    const deltas: string[] = [];
    const result = await pool.chat(request({ onDelta: (t) => deltas.push(t) }));
    assert.equal(result.text, "streamed by B");
    assert.equal(deltas.join(""), "streamed by B");
    assert.equal(a.requests.length, 1);
  });

  test("continues a stream broken mid-way on another server without repeating text", async () => {
    const full = "The troll guards the northern door, so go east.";
    const a = await server("A", { handler: () => ({ text: full, breakAfterContent: 3 }) });
    const b = await server("B", {
      handler: (req) => {
        const messages = req.body.messages as { role: string; content: string }[];
        const last = messages[messages.length - 1]!;
        // llama-server continues a final assistant message; the fake does it by hand.
        return { text: last.role === "assistant" ? full.slice(last.content.length) : full };
      },
    });
    const pool = await poolOf([a.url, b.url]);
    // A is the first pick on a tie; make sure of it.
    const deltas: string[] = [];
    const result = await pool.chat(
      request({ onDelta: (t) => deltas.push(t), messages: [{ role: "user", content: "where?" }] }),
    );
    assert.equal(a.requests.length, 1);
    assert.equal(deltas.join(""), full);
    assert.equal(result.text, full);
    const sent = b.requests[0]!.body.messages;
    assert.deepEqual(sent, [
      { role: "user", content: "where?" },
      { role: "assistant", content: full.slice(0, 12) },
    ]);
    assert.equal(pool.status()[0]!.coolingDown, true);
  });

  test("without continuation, a stream broken mid-way fails with the delivered text", async () => {
    const a = await server("A", { handler: () => ({ text: "Once upon a time", breakAfterContent: 2 }) });
    const b = await server("B");
    const pool = await poolOf([a.url, b.url], { pool: { continueBrokenStreams: false } });
    const deltas: string[] = [];
    const err = await failure(pool.chat(request({ onDelta: (t) => deltas.push(t) })), "unreachable");
    assert.equal(err.partialText, "Once upo");
    assert.equal(deltas.join(""), "Once upo");
    assert.equal(b.requests.length, 0);
  });

  test("an answer cut short fails over to another server; a single server retries it", async () => {
    const broken = { text: "lost", breakAfterContent: 0, breakBy: "end" } as const;
    const a = await server("A", { slots: 1, handler: () => broken });
    const b = await server("B", { slots: 1 });
    const pool = await poolOf([a.url, b.url]);
    const deltas: string[] = [];
    const reply = await pool.chat(request({ onDelta: (t) => deltas.push(t) }));
    assert.equal(reply.text, "B");
    assert.equal(a.requests.length, 1);

    const alone = await poolOf([a.url]);
    a.resetStats();
    await failure(alone.chat(request({ onDelta: (t) => deltas.push(t) })), "server_error");
    assert.equal(a.requests.length, 4, "its own retries");
    assert.equal(alone.status()[0]!.inFlight, 0);
  });

  test("validates its members", () => {
    const backend = new OpenAICompatibleBackend(settings({ url: "http://127.0.0.1:1" }), silent);
    assert.throws(() => new BackendPool([], { defaultSlots: 4, logger: silent }), RangeError);
    assert.throws(
      () => new BackendPool([{ backend, weight: 0 }], { defaultSlots: 4, logger: silent }),
      RangeError,
    );
    assert.throws(
      () => new BackendPool([{ backend, slots: 1.5 }], { defaultSlots: 4, logger: silent }),
      RangeError,
    );
    const pool = new BackendPool([{ backend, slots: 2 }], { defaultSlots: 4, logger: silent });
    assert.deepEqual(pool.health().healthy, false);
  });

  test("forgets the least recently used affinity keys beyond its bound", async () => {
    // Sequential calls on two idle servers take turns: A, B, A, B... unless affinity says otherwise.
    async function k1Lands(maxAffinityKeys: number): Promise<[string, string]> {
      const a = await server("A", { slots: 1 });
      const b = await server("B", { slots: 1 });
      const pool = await poolOf([a.url, b.url], { pool: { maxAffinityKeys } });
      const home = (await pool.chat(request({ affinityKey: "k1" }))).text;
      await pool.chat(request({ affinityKey: "k2" }));
      await pool.chat(request());
      return [home, (await pool.chat(request({ affinityKey: "k1" }))).text];
    }
    const [home, remembered] = await k1Lands(2);
    assert.equal(remembered, home);
    const [home1, forgotten] = await k1Lands(1);
    assert.notEqual(forgotten, home1);
  });
});
