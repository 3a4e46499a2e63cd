import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { testSettings } from "../support/settings.js";
import { Gateway } from "../../src/gateway.js";
import { freePort } from "../support/brokers.js";
import { FakeModelServer, lastUserText } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { ARTIFACTS, chromiumSkip, launchChromium, type TestBrowser } from "../support/browser.js";

/**
 * The dashboard and the playground in headless Chromium against a real gateway with its embedded
 * broker: the pages read /api/status, and the playground talks MQTT over WebSocket like a browser game.
 */

/** Page-side expressions for waitForFunction (this file is compiled without DOM types). */
const byTestId = (id: string) => `document.querySelector('[data-testid="${id}"]')`;
const LAST_REPLY = `[...document.querySelectorAll('[data-testid="reply"]')].at(-1)`;

describe("dashboard and playground in a browser", { skip: chromiumSkip, timeout: 60_000 }, () => {
  let model: FakeModelServer;
  let gateway: Gateway;
  let browser: TestBrowser;
  let context: BrowserContext;
  let tcpUrl: string;
  const pageErrors: string[] = [];

  before(async () => {
    model = await FakeModelServer.start();
    const port = await freePort();
    tcpUrl = `mqtt://127.0.0.1:${port}`;
    gateway = new Gateway(
      testSettings({
        projects: ["general", "maze", "racing"],
        broker: { port, wsPort: await freePort() },
        http: { port: 0 },
        server: { url: model.url },
        logging: { level: "silent", statsIntervalSec: 0 },
      }),
    );
    await gateway.start();
    browser = await launchChromium();
    context = browser.context;
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await model?.stop();
  });

  async function open(path: string): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(`${path}: ${error.message}`));
    const response = await page.goto(`${gateway.httpUrl}${path}`);
    assert.equal(response?.status(), 200);
    return page;
  }

  test("the dashboard shows the model server healthy, the broker connected and recent turns", async () => {
    // A few turns first, so the chart, totals, sessions and prompt cache have something to show:
    // the server reuses 30 of 40 prompt tokens for general's turns, 10 of 40 for racing's.
    model.handler = (req) => ({
      usage: { prompt_tokens: 40, completion_tokens: 5 },
      cache: { cachedTokens: lastUserText(req.body).endsWith("carol") ? 10 : 30 },
    });
    const game = await GameClient.connect(tcpUrl, ["+/assistant_response/#"]);
    for (const [project, sid] of [
      ["general", "alice"],
      ["general", "bob"],
      ["racing", "carol"],
      ["general", "alice"],
    ] as const) {
      await game.publish(`${project}/user_input`, { sessionId: sid, message: `hi from ${sid}` });
      await game.next(`${project}/assistant_response/${sid}`);
    }
    await game.close();

    const page = await open("/");
    const text = (id: string) => page.getByTestId(id).first();
    await page.waitForFunction(`${byTestId("server-status")}?.textContent === "healthy"`);
    assert.equal(await text("server-status").textContent(), "healthy");
    assert.match((await text("server-status").getAttribute("class")) ?? "", /\bok\b/);
    assert.equal(await text("broker-status").textContent(), "connected");
    assert.match((await text("broker-ws-url").textContent()) ?? "", /^ws:\/\/127\.0\.0\.1:\d+/);
    assert.equal(await text("total-processed").textContent(), "4");
    assert.equal(await page.locator('[data-testid="latency-chart"] rect').count(), 4);
    assert.equal(await page.locator('[data-project="general"] span').last().textContent(), "2");
    assert.equal(await text("version").textContent(), (await statusJson()).version);
    const cacheShare = (project: string) =>
      page.locator(`[data-cache-project="${project}"] span`).last().textContent();
    assert.equal(await cacheShare("general"), "75 %");
    assert.equal(await cacheShare("racing"), "25 %");
    assert.equal(await text("cache-summary").textContent(), "· 63 % of 160 prompt tokens reused");
    // Turns per second needs two polls (about 2 s apart).
    await page.waitForFunction(`/^\\d/.test(${byTestId("turns-per-sec")}?.textContent)`);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test("the playground streams a reply over MQTT over WebSocket", async () => {
    model.handler = (req) => {
      const user = req.body.messages.at(-1).content as string;
      return {
        text: `Streaming reply to: ${user}. Bits arrive one chunk at a time, in order.`,
        chunkDelayMs: 20,
      };
    };
    const page = await open("/playground");
    await page.waitForFunction(`${byTestId("mqtt-status")}?.textContent === "connected"`);
    assert.deepEqual(await page.locator('[data-testid="project"] option').allTextContents(), [
      "general",
      "maze",
      "racing",
    ]);
    await page.getByTestId("session").fill("web-player");
    await page.getByTestId("system-prompt").fill("You are a terse test assistant.");
    await page.getByTestId("message").fill("hello over websocket");
    await page.getByTestId("send").click();

    const reply = page.getByTestId("reply").last();
    const expected = "Streaming reply to: hello over websocket. Bits arrive one chunk at a time, in order.";
    // The reply shows partial text while it is still streaming...
    await page.waitForFunction(`${LAST_REPLY}?.matches(".streaming") && ${LAST_REPLY}.textContent !== ""`);
    // ...and ends as the whole reply.
    await page.waitForFunction(`${LAST_REPLY}?.dataset.state === "done"`);
    assert.equal(await reply.locator(".text").textContent(), expected);

    const request = model.requests.at(-1)?.body;
    assert.equal(request.messages[0].role, "system");
    assert.equal(request.messages[0].content, "You are a terse test assistant.");
    assert.equal(request.messages.at(-1).content, "hello over websocket");
    assert.equal((await statusJson()).sessions.byProject["general"], 3);

    // A failed turn is shown as an error.
    model.handler = () => ({ status: 400, errorBody: { error: { code: 400, message: "bad request" } } });
    await page.getByTestId("message").fill("this one fails");
    await page.getByTestId("message").press("Enter");
    await page.waitForFunction(`${LAST_REPLY}?.dataset.state === "error"`);
    assert.match((await reply.locator(".text").textContent()) ?? "", /^Error: /);
    assert.match((await reply.getAttribute("class")) ?? "", /\berror\b/);

    await page.screenshot({ path: join(ARTIFACTS, "playground.png"), fullPage: true });
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test("without a broker WebSocket URL the playground says what it needs", async () => {
    const plain = new Gateway(
      testSettings({
        projects: ["general"],
        broker: { port: await freePort(), wsPort: 0 },
        http: { port: 0 },
        server: { url: model.url },
        logging: { level: "silent", statsIntervalSec: 0 },
      }),
    );
    await plain.start();
    try {
      const page = await context.newPage();
      await page.goto(`${plain.httpUrl}/playground`);
      const banner = page.getByTestId("playground-error");
      await banner.waitFor({ state: "visible" });
      assert.match((await banner.textContent()) ?? "", /needs a broker WebSocket URL.*--broker-ws-url/s);
      assert.equal(await page.getByTestId("send").isDisabled(), true);
      await page.close();
    } finally {
      await plain.stop();
    }
  });

  test("the bundle and pages are served with their content types", async () => {
    for (const [path, type] of [
      ["/", "text/html"],
      ["/playground", "text/html"],
      ["/assets/app.css", "text/css"],
      ["/assets/dashboard.js", "text/javascript"],
      ["/assets/mqtt.esm.js", "text/javascript"],
      ["/assets/llmqtt/client/index.js", "text/javascript"],
    ]) {
      const response = await fetch(`${gateway.httpUrl}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", new RegExp(`^${type}`), path);
      await response.arrayBuffer();
    }
  });

  async function statusJson() {
    return (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
      version: string;
      sessions: { byProject: Record<string, number> };
    };
  }
});
