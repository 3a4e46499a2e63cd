import { mergeInputs, type SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { startAedes, type TestBroker } from "./brokers.js";
import { GameClient } from "./gameClient.js";
import { LlamaServer, type LlamaServerOptions } from "./llamaServer.js";
import { captureLogs, type LogCapture } from "./logCapture.js";
import { RecordingProxy } from "./recordingProxy.js";
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

/** llama-server behind a recording proxy, a broker, and llmqtt calling the server through the proxy. */
export interface ProxiedRig {
  server: LlamaServer;
  proxy: RecordingProxy;
  broker: TestBroker;
  rig: RealRig;
  stop(): Promise<void>;
}

export async function startProxiedRig(
  serverOptions: LlamaServerOptions,
  options: { broker?: () => Promise<TestBroker>; overrides?: SettingsInput } = {},
): Promise<ProxiedRig> {
  const server = await LlamaServer.start(serverOptions);
  const proxy = await RecordingProxy.start(server.url);
  const broker = await (options.broker ?? startAedes)();
  const rig = await startRealRig(broker, [proxy.url], options.overrides);
  return {
    server,
    proxy,
    broker,
    rig,
    stop: async () => {
      await rig.stop();
      await broker.stop();
      await proxy.stop();
      await server.stop();
    },
  };
}
