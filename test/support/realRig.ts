import { mergeInputs, type SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import type { TestBroker } from "./brokers.js";
import { GameClient } from "./gameClient.js";
import { captureLogs, type LogCapture } from "./logCapture.js";
import { testSettings } from "./settings.js";

export interface RealRig {
  gateway: Gateway;
  game: GameClient;
  logs: LogCapture;
  stop(): Promise<void>;
}

/**
 * llmqtt in process against real model servers (one, or a pool) and `broker`, with a game
 * client subscribed to every reply topic and every log line kept.
 */
export async function startRealRig(
  broker: TestBroker,
  serverUrls: string[],
  overrides: SettingsInput = {},
): Promise<RealRig> {
  const [first, ...others] = serverUrls;
  const settings = testSettings(
    mergeInputs(
      {
        mqtt: { url: broker.url, reconnectPeriodMs: 200 },
        server: { url: first, probeIntervalSec: 0.2, timeoutSec: 30 },
        ...(others.length > 0 ? { backends: serverUrls.map((url) => ({ url })) } : {}),
        logging: { level: "debug", statsIntervalSec: 0 },
        http: { port: 0 },
        sampling: { maxTokens: 16 },
      },
      overrides,
    ),
  );
  const logs = captureLogs("debug");
  const gateway = new Gateway(settings, { logger: logs.logger });
  await gateway.start();
  const game = await GameClient.connect(broker.url, ["+/assistant_response/#", "maze/hint/#"]);
  return {
    gateway,
    game,
    logs,
    stop: async () => {
      await game.close();
      await gateway.stop();
    },
  };
}

/** Log lines with this message. */
export function logged(logs: LogCapture, msg: string): Record<string, unknown>[] {
  return logs.lines().filter((line) => line["msg"] === msg);
}
