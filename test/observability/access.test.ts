import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { maskSecrets } from "../../src/config/file.js";
import { configOption, normalizeArgv, serveOptions, settingsFromOptions } from "../../src/config/flags.js";
import { ConfigError } from "../../src/config/load.js";
import { isLoopbackHost, type Settings } from "../../src/config/schema.js";
import { HttpAccess } from "../../src/observability/access.js";
import { HttpEndpoint } from "../../src/observability/httpServer.js";
import { createLogger } from "../../src/observability/logger.js";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { startRig, type Rig } from "../support/harness.js";

const TOKEN = "s3cret-token-0123456789abcdef";
const cli = fileURLToPath(new URL("../../../dist/cli.js", import.meta.url));

function parse(args: string[]): Settings {
  const command = new Command("serve").exitOverride().addOption(configOption());
  for (const option of serveOptions()) command.addOption(option);
  command.parse(normalizeArgv(args), { from: "user" });
  return settingsFromOptions(command.opts());
}

const request = (authorization?: string, host = "127.0.0.1:8090") =>
  ({ headers: authorization === undefined ? { host } : { authorization, host } }) as IncomingMessage;

/** A GET with any Host header (fetch may not set one). */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
}

describe("HTTP access settings", () => {
  const dir = mkdtempSync(join(tmpdir(), "llmqtt-access-"));
  afterEach(() => delete process.env.LLMQTT_HTTP_TOKEN);
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("serving beyond loopback without a token is refused, naming the ways out", () => {
    assert.throws(
      () => parse(["--http-host", "0.0.0.0"]),
      (error: Error) =>
        error instanceof ConfigError &&
        /http\.token: .*0\.0\.0\.0.*--http-token-file.*LLMQTT_HTTP_TOKEN.*--http-insecure/s.test(
          error.message,
        ),
    );
    assert.equal(parse(["--http-host", "0.0.0.0", "--http-insecure"]).http.insecure, true);
    assert.equal(parse(["--http-host", "0.0.0.0", "--http-token", TOKEN]).http.token, TOKEN);
    assert.equal(parse(["--http-host", "192.168.1.5", "--http", "false"]).http.enabled, false);
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
      assert.equal(isLoopbackHost(host), true, host);
    for (const host of ["0.0.0.0", "::", "192.168.1.5", "example.org", "127.0.0.1.example.org"])
      assert.equal(isLoopbackHost(host), false, host);
  });

  test("the token comes from a flag, a file or LLMQTT_HTTP_TOKEN, is long enough and never shown", () => {
    const file = join(dir, "token");
    writeFileSync(file, `${TOKEN}\n`);
    assert.equal(parse(["--http-token-file", file]).http.token, TOKEN);
    process.env.LLMQTT_HTTP_TOKEN = TOKEN;
    const settings = parse([]);
    assert.equal(settings.http.token, TOKEN);
    assert.equal(maskSecrets(settings).http.token, "***");
    assert.throws(() => parse(["--http-token", "short"]), /http\.token: use at least 16 characters/);
  });

  test("the bridge's commands can be switched off one by one", () => {
    assert.ok(parse([]).bridge.allow.includes("session_get"), "all allowed by default");
    assert.deepEqual(parse(["--bridge-allow", "projects,health", "servers"]).bridge.allow, [
      "projects",
      "health",
      "servers",
    ]);
    assert.throws(() => parse(["--bridge-allow", "session_gte"]), /bridge\.allow\.0/);
  });

  test("the cli stops with exit status 2 before listening anywhere", () => {
    const run = spawnSync(process.execPath, [cli, "serve", "--http-host", "0.0.0.0", "--http-port", "0"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /beyond this machine, with no access control/);
  });
});

describe("HttpAccess", () => {
  test("a token protects /api only, unless the probes are asked for too", () => {
    const access = new HttpAccess({ host: "0.0.0.0", token: TOKEN, protectMetrics: false });
    for (const path of ["/api", "/api/status", "/api/projects/x/export"])
      assert.equal(access.protects(path), true);
    for (const path of ["/", "/console", "/assets/api.js", "/healthz", "/readyz", "/metrics", "/apix"])
      assert.equal(access.protects(path), false, path);
    const strict = new HttpAccess({ host: "0.0.0.0", token: TOKEN, protectMetrics: true });
    for (const path of ["/healthz", "/readyz", "/metrics"]) assert.equal(strict.protects(path), true);
    assert.equal(
      new HttpAccess({ host: "0.0.0.0", protectMetrics: true }).protects("/api/status"),
      false,
      "no token: all open",
    );
  });

  test("only the exact token as a Bearer credential is accepted", () => {
    const access = new HttpAccess({ host: "127.0.0.1", token: TOKEN, protectMetrics: false });
    assert.equal(access.allows(request(`Bearer ${TOKEN}`), "/api/status"), true);
    assert.equal(access.allows(request(`bearer  ${TOKEN} `), "/api/status"), true);
    for (const header of [
      undefined,
      "",
      TOKEN,
      `Basic ${TOKEN}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      "Bearer",
    ])
      assert.equal(access.allows(request(header), "/api/status"), false, String(header));
    assert.equal(access.allows(request(), "/healthz"), true);
    assert.equal(access.refusal(request(`Bearer ${TOKEN}`, "llmqtt.example.org"), "/api/status"), undefined);
    assert.equal(access.refusal(request(undefined, "llmqtt.example.org"), "/api/status"), 401);
  });

  test("without a token on loopback, /api answers only requests for a loopback name (DNS rebinding)", () => {
    const access = new HttpAccess({ host: "127.0.0.1", protectMetrics: false });
    for (const host of ["127.0.0.1:8090", "localhost:8090", "localhost", "[::1]:8090"])
      assert.equal(access.refusal(request(undefined, host), "/api/projects"), undefined, host);
    for (const host of ["attacker.example:8090", "attacker.example", "", "127.0.0.1.nip.io:8090"])
      assert.equal(access.refusal(request(undefined, host), "/api/projects"), 403, host);
    assert.equal(
      access.refusal(request(undefined, "attacker.example"), "/console"),
      undefined,
      "pages hold no data",
    );
    const insecure = new HttpAccess({ host: "0.0.0.0", protectMetrics: false });
    assert.equal(insecure.refusal(request(undefined, "llmqtt.example.org"), "/api/projects"), undefined);
  });
});

describe("HTTP endpoint with a token", () => {
  let broker: TestBroker;
  let rig: Rig;
  before(async () => {
    broker = await startAedes();
    rig = await startRig(broker, { projects: ["general"], http: { token: TOKEN } });
  });
  after(async () => {
    await rig?.stop();
    await broker?.stop();
  });

  const get = (path: string, authorization?: string) =>
    fetch(`${rig.gateway.httpUrl}${path}`, { headers: authorization ? { authorization } : {} });

  test("/api needs the token; pages, probes and metrics stay open", async () => {
    for (const path of ["/api/status", "/api/projects", "/api/projects/general/export"]) {
      for (const authorization of [undefined, "Bearer wrong-token-0123456789", `Basic ${TOKEN}`]) {
        const response = await get(path, authorization);
        assert.equal(response.status, 401, `${path} ${authorization}`);
        assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="llmqtt"');
        assert.match(((await response.json()) as { error: string }).error, /Authorization: Bearer/);
      }
      const allowed = await get(path, `Bearer ${TOKEN}`);
      assert.equal(allowed.status, 200, path);
      await allowed.arrayBuffer();
    }
    const put = await fetch(`${rig.gateway.httpUrl}/api/projects/general/prompt`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ systemPrompt: "taken over" }),
    });
    assert.equal(put.status, 401);
    assert.notEqual(await rig.gateway.sessions.projectPrompt("general"), "taken over");
    assert.equal(await getWithHost(`${rig.gateway.httpUrl}/api/status`, "anything.example"), 401);
    for (const path of ["/", "/console", "/assets/api.js", "/healthz", "/metrics"]) {
      const response = await get(path);
      assert.equal(response.status, 200, path);
      await response.arrayBuffer();
    }
  });

  test("--http-protect-metrics closes the probes and metrics too", async () => {
    const http = new HttpEndpoint({
      host: "127.0.0.1",
      port: 0,
      logger: createLogger("silent"),
      readiness: () => ({ ready: true, checks: {} }),
      metrics: async () => "metric 1\n",
      metricsContentType: "text/plain",
      access: new HttpAccess({ host: "127.0.0.1", token: TOKEN, protectMetrics: true }),
    });
    const url = await http.start();
    try {
      for (const path of ["/healthz", "/readyz", "/metrics"]) {
        assert.equal((await fetch(`${url}${path}`)).status, 401, path);
        const allowed = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(allowed.status, 200, path);
        await allowed.arrayBuffer();
      }
    } finally {
      await http.stop();
    }
  });
});
