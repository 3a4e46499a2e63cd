import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { Gateway } from "../../src/gateway.js";
import { freePort } from "../support/brokers.js";
import { chromiumSkip, launchChromium, type TestBrowser } from "../support/browser.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { testSettings } from "../support/settings.js";

/**
 * examples/maze-browser in headless Chromium: the page plays the maze hint flow with llmqtt/client
 * over the embedded broker's WebSocket listener, against a gateway with the maze tools on.
 */

// Tests run from build/test/browser/; the example is plain JavaScript at the repo root.
const EXAMPLE = new URL("../../../examples/maze-browser/server.js", import.meta.url).href;
const WAIT_MS = 15_000;

interface ExampleServer {
  url: string;
  close(): Promise<void>;
}

describe("the maze example page in a browser", { skip: chromiumSkip, timeout: 90_000 }, () => {
  let model: FakeModelServer;
  let gateway: Gateway;
  let site: ExampleServer;
  let browser: TestBrowser;
  let wsUrl: string;
  const pageErrors: string[] = [];

  before(async () => {
    model = await FakeModelServer.start();
    const wsPort = await freePort();
    wsUrl = `ws://127.0.0.1:${wsPort}`;
    gateway = new Gateway(
      testSettings({
        projects: ["maze"],
        mazeTools: true,
        broker: { port: await freePort(), wsPort },
        server: { url: model.url },
        logging: { level: "silent", statsIntervalSec: 0 },
      }),
    );
    await gateway.start();
    const { startExampleServer } = (await import(EXAMPLE)) as {
      startExampleServer: (port: number) => Promise<ExampleServer>;
    };
    site = await startExampleServer(0);
    browser = await launchChromium(WAIT_MS);
  });

  after(async () => {
    await browser?.close();
    await site?.close();
    await gateway?.stop();
    await model?.stop();
  });

  async function open(session: string): Promise<Page> {
    const page = await browser.context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(`${site.url}?broker=${encodeURIComponent(wsUrl)}&session=${session}`);
    await page.waitForFunction(
      `document.querySelector('[data-testid="status"]')?.textContent === "connected"`,
    );
    return page;
  }

  test("a move publishes the maze state and the JSON hint with its actions is shown", async () => {
    model.handler = () => ({
      text: "Head right along the top row.",
      toolCalls: [{ name: "break_wall", arguments: '{"x": 1, "y": 1}' }],
    });
    const page = await open("web-maze");
    await page.keyboard.press("ArrowRight");
    const hint = page.getByTestId("hint").first();
    await hint.waitFor();
    const shown = JSON.parse((await hint.textContent()) ?? "") as Record<string, unknown>;
    assert.equal(shown.hint, "Head right along the top row.");
    assert.deepEqual(shown.break_wall, [1, 1]);

    // The model saw the state after the move, in the protocol's canonical form (A3).
    const turn = model.requests.at(-1)?.body.messages.at(-1)?.content as string;
    assert.match(
      turn,
      /^\{"player_pos": \[1, 0\], "exit_pos": \[6, 6\], "visible_map": \[\[1, 1, 1\], \[0, 0, 0\], \[0, 1, 0\]\]/,
    );
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test("a failing model shows the error code instead of a hint", async () => {
    model.handler = () => ({ status: 400, errorBody: { error: { code: 400, message: "bad" } } });
    const page = await open("web-maze-2");
    await page.getByTestId("send").click();
    const error = page.getByTestId("hint-error").first();
    await error.waitFor();
    assert.match((await error.textContent()) ?? "", /^invalid_request: /);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
