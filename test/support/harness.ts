import { mergeInputs, type SettingsInput } from "../../src/config/load.js";
import { testSettings } from "./settings.js";
import { Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observability/logger.js";
import { FakeModelServer, type FakeModelServerOptions } from "./fakeModelServer.js";
import { GameClient } from "./gameClient.js";
import { mosquittoAvailable, startAedes, startMosquitto, type TestBroker } from "./brokers.js";

export interface Rig {
  gateway: Gateway;
  model: FakeModelServer;
  game: GameClient;
  stop(): Promise<void>;
}

/**
 * A running llmqtt against `broker` and a fresh fake model server, plus a game client
 * subscribed to every reply topic.
 */
export async function startRig(
  broker: TestBroker,
  overrides: SettingsInput = {},
  modelOptions: FakeModelServerOptions = {},
): Promise<Rig> {
  const model = await FakeModelServer.start(modelOptions);
  const settings = testSettings(
    mergeInputs(
      {
        mqtt: { url: broker.url, reconnectPeriodMs: 200 },
        server: { url: model.url, probeIntervalSec: 0.2, timeoutSec: 5 },
        logging: { level: process.env.LLMQTT_TEST_LOG ?? "silent", statsIntervalSec: 0 },
        http: { port: 0 },
      },
      overrides,
    ),
  );
  const gateway = new Gateway(settings, { logger: createLogger(settings.logging.level) });
  await gateway.start();
  const game = await GameClient.connect(broker.url, ["+/assistant_response/#", "maze/hint/#", "+/status"]);
  return {
    gateway,
    model,
    game,
    stop: async () => {
      await game.close();
      await gateway.stop();
      await model.stop();
    },
  };
}

export interface BrokerKind {
  name: string;
  start: () => Promise<TestBroker>;
  /** A reason to skip, or false. CI installs Mosquitto, so there it is never skipped. */
  skip: string | false;
}

/** Integration suites run once per broker: embedded Aedes, and real Mosquitto. */
export const BROKERS: BrokerKind[] = [
  { name: "aedes", start: startAedes, skip: false },
  {
    name: "mosquitto",
    start: () => startMosquitto(),
    skip: mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed",
  },
];
