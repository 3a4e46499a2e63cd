import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { OpenAICompatibleBackend } from "../../src/backends/openaiBackend.js";
import type { BackendHealth } from "../../src/backends/types.js";
import { FakeModelServer, type FakeModelServerOptions } from "../support/fakeModelServer.js";
import { pino } from "pino";
import { closedPort, eventually, request, settings, silent } from "./helpers.js";

describe("OpenAICompatibleBackend health", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function fakeServer(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
    const fake = await FakeModelServer.start(options);
    cleanup.push(() => fake.stop());
    return fake;
  }

  function backendFor(url: string, probeIntervalSec = 60): OpenAICompatibleBackend {
    const backend = new OpenAICompatibleBackend(settings({ url, probeIntervalSec }), silent, {
      retry: { baseDelayMs: 5, maxDelayMs: 20 },
    });
    cleanup.push(() => backend.stop());
    return backend;
  }

  test("healthy with slots and their context from /props, and never probes with a generation request", async () => {
    const fake = await fakeServer({ slots: 3, slotContext: 2048 });
    const backend = backendFor(`${fake.url}/v1`);
    await backend.start();
    assert.deepEqual(backend.health(), { healthy: true, slots: 3, contextTokens: 2048 });
    assert.equal(fake.healthChecks, 2);
    assert.equal(fake.requests.length, 0);
  });

  test("unhealthy while the model loads (503)", async () => {
    const fake = await fakeServer({ health: "loading" });
    const backend = backendFor(fake.url);
    await backend.start();
    assert.deepEqual(backend.health(), { healthy: false, detail: "loading model" });
  });

  test("falls back to /v1/models when there is no /health", async () => {
    const fake = await fakeServer({ health: "absent" });
    const backend = backendFor(fake.url);
    await backend.start();
    assert.equal(backend.health().healthy, true);
    assert.equal(fake.healthChecks, 3);
  });

  test("starts with the server down, then notices it come back and its slot count change", async () => {
    const port = await closedPort();
    const backend = backendFor(`http://127.0.0.1:${port}`, 0.05);
    const seen: BackendHealth[] = [];
    backend.onHealthChange((h) => seen.push(h));

    await backend.start();
    assert.equal(backend.health().healthy, false);
    assert.match(backend.health().detail ?? "", /unreachable \(connection refused\); start llama-server/);

    const fake = await fakeServer({ port, slots: 2 });
    await eventually(() => backend.health().healthy);
    assert.equal(backend.health().slots, 2);

    fake.slots = 6;
    await eventually(() => backend.health().slots === 6);
    fake.slotContext = 1024;
    await eventually(() => backend.health().contextTokens === 1024);
    assert.deepEqual(
      seen.map((h) => [h.healthy, h.slots]),
      [
        [false, undefined],
        [true, 2],
        [true, 6],
        [true, 6],
      ],
    );
  });

  test("a successful chat marks the backend healthy before the next probe", async () => {
    const fake = await fakeServer({ health: "loading" });
    const backend = backendFor(fake.url);
    await backend.start();
    assert.equal(backend.health().healthy, false);
    fake.health = "ok";
    await backend.chat(request());
    assert.equal(backend.health().healthy, true);
  });

  test("an unreachable chat marks the backend unhealthy and re-probes soon", async () => {
    const fake = await fakeServer();
    const port = Number(new URL(fake.url).port);
    const backend = backendFor(fake.url);
    await backend.start();
    assert.equal(backend.health().healthy, true);

    await fake.stop();
    await assert.rejects(backend.chat(request()), { code: "unreachable" });
    assert.equal(backend.health().healthy, false);

    await fakeServer({ port });
    await eventually(() => backend.health().healthy, 3000);
  });

  test("warns once while the server stays down, naming the fix", async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const url = `http://127.0.0.1:${await closedPort()}`;
    const backend = new OpenAICompatibleBackend(settings({ url, probeIntervalSec: 0.02 }), logger);
    cleanup.push(() => backend.stop());
    let changes = 0;
    backend.onHealthChange(() => changes++);
    await backend.start();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]?.msg ?? "",
      /unreachable \(connection refused\); start llama-server or check --server-url/,
    );
    assert.equal(changes, 1);
  });
});
