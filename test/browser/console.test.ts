import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { testSettings } from "../support/settings.js";
import type { SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { freePort } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { ARTIFACTS, chromiumSkip, launchChromium, type TestBrowser } from "../support/browser.js";

/**
 * The conversations console in headless Chromium against a real gateway: sessions made by real
 * turns over MQTT, browsed, read, cleared and exported in the page, and a project's prompt edited
 * there; with an access token, the page asks for it once per tab.
 */

const TOKEN = "console-test-token-0123456789";

describe("conversations console in a browser", { skip: chromiumSkip, timeout: 90_000 }, () => {
  let model: FakeModelServer;
  let browser: TestBrowser;
  let context: BrowserContext;
  const gateways: Gateway[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    model = await FakeModelServer.start();
    browser = await launchChromium();
    context = browser.context;
  });

  after(async () => {
    await browser?.close();
    for (const gateway of gateways) await gateway.stop();
    await model?.stop();
  });

  async function startGateway(input: SettingsInput = {}): Promise<{ gateway: Gateway; mqttUrl: string }> {
    const port = await freePort();
    const gateway = new Gateway(
      testSettings({
        // maze as a plain chat project: the fake's replies are not the hints its schema asks for.
        projects: ["general", { name: "maze", responseSchema: false }, "racing"],
        broker: { port, wsPort: 0 },
        http: { port: 0 },
        server: { url: model.url },
        logging: { level: "silent", statsIntervalSec: 0 },
        ...input,
      }),
    );
    gateways.push(gateway);
    await gateway.start();
    return { gateway, mqttUrl: `mqtt://127.0.0.1:${port}` };
  }

  async function open(gateway: Gateway, path: string): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(`${path}: ${error.message}`));
    const response = await page.goto(`${gateway.httpUrl}${path}`);
    assert.equal(response?.status(), 200);
    return page;
  }

  async function play(mqttUrl: string, turns: [project: string, sessionId: string, message: string][]) {
    const game = await GameClient.connect(mqttUrl, ["+/assistant_response/#"]);
    for (const [project, sessionId, message] of turns) {
      await game.publish(`${project}/user_input`, { sessionId, message });
      await game.next(`${project}/assistant_response/${sessionId}`);
    }
    await game.close();
  }

  test("browse sessions, read and clear a conversation, edit the prompt, export", async () => {
    const { gateway, mqttUrl } = await startGateway();
    await play(mqttUrl, [
      ["general", "alice", "What is the capital of France?"],
      ["general", "alice", "And how many people live there?"],
      ["general", "bob", "Tell me a joke about robots."],
      ["maze", "carol", "Where is the exit?"],
    ]);
    for (let i = 0; i < 55; i++)
      await gateway.sessions.setSessionPrompt({ project: "racing", sessionId: `car-${i}` }, "p", false);

    const page = await open(gateway, "/console");
    const projectRow = (name: string) => page.locator(`[data-testid="projects"] tr[data-project="${name}"]`);
    await projectRow("general").waitFor();
    assert.deepEqual(await projectRow("general").locator("td").allTextContents(), [
      "general",
      "2",
      "3",
      (await projectRow("general").locator("td").nth(3).textContent()) ?? "",
    ]);
    assert.match((await projectRow("general").locator("td").nth(3).textContent()) ?? "", /^\d+ \/ \d+$/);

    await projectRow("general").locator("a").click();
    const sessions = page.locator('[data-testid="session-list"] tr[data-session]');
    await page.waitForFunction(
      `document.querySelectorAll('[data-testid="session-list"] tr[data-session]').length === 2`,
    );
    assert.deepEqual(await sessions.locator("a").allTextContents(), ["alice", "bob"]);
    assert.equal(await page.getByTestId("sessions-more").isHidden(), true);

    await sessions.first().locator("a").click();
    const messages = page.locator('[data-testid="messages"] .msg');
    await page.waitForFunction(`document.querySelectorAll('[data-testid="messages"] .msg').length === 5`);
    assert.deepEqual(await messages.evaluateAll((nodes) => nodes.map((n) => n.getAttribute("data-role"))), [
      "system",
      "user",
      "assistant",
      "user",
      "assistant",
    ]);
    assert.equal(await messages.nth(1).textContent(), "What is the capital of France?");
    assert.equal(await messages.nth(2).textContent(), "reply to: What is the capital of France?");
    assert.equal(await page.getByTestId("conversation-id").textContent(), "alice");
    assert.match(page.url(), /\/console#general\/alice$/);
    await page.screenshot({ path: join(ARTIFACTS, "console-conversation.png"), fullPage: true });

    // The export downloads what the API gives, through the token-aware fetch.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByTestId("export-csv").click(),
    ]);
    assert.equal(download.suggestedFilename(), "general-conversations.csv");
    const csv = readFileSync((await download.path())!, "utf8");
    assert.match(csv, /^project,session_id,message,role,content,images,last_active_at\r\n/);
    assert.match(csv, /general,alice,1,user,What is the capital of France\?,0,/);

    // Editing the prompt keeps the histories when asked to, and new turns get it.
    await page.getByTestId("prompt-editor").fill("You are a patient geography teacher.");
    assert.equal(
      await page.getByTestId("prompt-reset").isChecked(),
      false,
      "histories are kept unless asked",
    );
    await page.getByTestId("prompt-save").click();
    await page.waitForFunction(
      `/^Saved/.test(document.querySelector('[data-testid="prompt-status"]').textContent)`,
    );
    assert.equal(await page.getByTestId("prompt-status").textContent(), "Saved · 2 session(s) updated");
    assert.equal(await gateway.sessions.projectPrompt("general"), "You are a patient geography teacher.");
    assert.equal(await messages.first().textContent(), "You are a patient geography teacher.");
    assert.equal(await messages.count(), 5, "history kept");
    await page.screenshot({ path: join(ARTIFACTS, "console-prompt.png"), fullPage: true });

    // Clearing asks first, then the conversation is empty but keeps its prompt.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByTestId("session-clear").click();
    await page.waitForFunction(`document.querySelectorAll('[data-testid="messages"] .msg').length === 1`);
    assert.equal(
      (await gateway.sessions.peek({ project: "general", sessionId: "alice" }))?.history.length,
      0,
    );
    assert.equal(await projectRow("general").locator("td").nth(2).textContent(), "1");

    // Pages of 50: the rest comes with "More sessions".
    await projectRow("racing").locator("a").click();
    await page.waitForFunction(
      `document.querySelectorAll('[data-testid="session-list"] tr[data-session]').length === 50`,
    );
    assert.equal(await page.getByTestId("sessions-count").textContent(), "· 55");
    await page.getByTestId("sessions-more").click();
    await page.waitForFunction(
      `document.querySelectorAll('[data-testid="session-list"] tr[data-session]').length === 55`,
    );
    assert.equal(await page.getByTestId("sessions-more").isHidden(), true);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  test("with a token the pages ask for it once per tab and the dashboard works with it", async () => {
    const { gateway, mqttUrl } = await startGateway({ http: { port: 0, token: TOKEN } });
    await play(mqttUrl, [["maze", "dora", "Which way now?"]]);
    const page = await open(gateway, "/console");
    const dialog = page.getByTestId("token-dialog");
    await dialog.waitFor({ state: "visible" });
    await page.screenshot({ path: join(ARTIFACTS, "console-token.png") });
    await page.getByTestId("token-input").fill("wrong-token-0123456789");
    await page.getByTestId("token-input").press("Enter");
    await page.waitForFunction(
      `document.querySelector('[data-testid="token-dialog"]')?.textContent.includes("not accepted")`,
    );
    await page.getByTestId("token-input").fill(TOKEN);
    await page.getByTestId("token-input").press("Enter");
    await page.locator('[data-testid="projects"] tr[data-project="maze"]').waitFor();
    assert.equal(await dialog.count(), 0);

    // Another page in the same tab: the token is kept, nothing is asked.
    await page.goto(`${gateway.httpUrl}/`);
    await page.waitForFunction(
      `document.querySelector('[data-testid="total-processed"]')?.textContent === "1"`,
    );
    assert.equal(await page.getByTestId("token-dialog").count(), 0);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
