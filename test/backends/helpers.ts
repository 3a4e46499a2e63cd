import net from "node:net";
import { pino } from "pino";
import { ServerSettingsSchema, type ServerSettings } from "../../src/config/schema.js";
import assert from "node:assert/strict";
import {
  BackendError,
  type BackendErrorCode,
  type ChatRequest,
  type ModelBackend,
} from "../../src/backends/types.js";

export const silent = pino({ level: "silent" });

export function settings(overrides: Partial<ServerSettings> & { url: string }): ServerSettings {
  return ServerSettingsSchema.parse(overrides);
}

export function request(overrides: Partial<ChatRequest> = {}): ChatRequest {
  return {
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "hello" },
    ],
    temperature: 0.7,
    topP: 0.9,
    maxTokens: 64,
    enableThinking: false,
    deadline: Date.now() + 5000,
    ...overrides,
  };
}

/** An in-process model backend, always healthy with `slots` slots, answering with `chat`. */
export function stubBackend(name: string, chat: ModelBackend["chat"], slots = 1): ModelBackend {
  return {
    name,
    start: async () => {},
    stop: async () => {},
    health: () => ({ healthy: true, slots }),
    onHealthChange: () => {},
    chat,
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export { eventually } from "../support/wait.js";

/** Awaits a promise that must fail with a BackendError of this code, and returns the error. */
export async function failure(promise: Promise<unknown>, code: BackendErrorCode): Promise<BackendError> {
  const err = await promise.then(
    () => assert.fail(`expected ${code}, got a reply`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof BackendError, `expected BackendError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return err;
}
