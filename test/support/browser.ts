import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

/** Headless Chromium for page tests, from the Debian package (nothing is downloaded). */
export const CHROMIUM = "/usr/bin/chromium";
/** Where page tests leave their screenshots (copied to docs/ by hand when they change). */
export const ARTIFACTS = resolve("test-artifacts");

/** A reason to skip page tests, or false. CI installs chromium, so there they never skip. */
export const chromiumSkip: string | false =
  existsSync(CHROMIUM) || process.env.CI === "true"
    ? false
    : `${CHROMIUM} is not installed (apt-get install chromium)`;

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh profile in a temporary directory, removed on close. */
export async function launchChromium(waitMs = 10_000): Promise<TestBrowser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is required in CI (apt-get install chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "llmqtt-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    acceptDownloads: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.setDefaultTimeout(waitMs);
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
