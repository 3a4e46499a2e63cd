import { randomBytes } from "node:crypto";
import { buildSettings, mergeInputs, type SettingsInput } from "../../src/config/load.js";
import type { Settings } from "../../src/config/schema.js";

/**
 * Settings for an in-process gateway under test: sessions in memory (no file left behind) and a
 * client id of its own, since two gateways with one id take each other's broker session.
 */
export function testSettings(input: SettingsInput = {}): Settings {
  return buildSettings(
    mergeInputs(
      { sessions: { store: "memory" }, mqtt: { clientId: `llmqtt-test-${randomBytes(4).toString("hex")}` } },
      input,
    ),
  );
}
