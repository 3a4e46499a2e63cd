import type { BridgeCommandName, MqttSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import type { GatewaySnapshot } from "../observability/snapshot.js";
import { MqttTransport } from "../transport/mqttTransport.js";
import { asArgs, COMMANDS, CommandError, type BridgeContext } from "./commands.js";

export interface BridgeOptions extends BridgeContext {
  baseTopic: string;
  healthIntervalSec: number;
  /** Commands answered; the others are refused (bridge.allow), e.g. those reading histories. */
  allow: readonly BridgeCommandName[];
  mqtt: MqttSettings & { clientId: string };
  logger: Logger;
  /** Retained `info`: version, projects, model servers, settings without secrets. */
  info: () => Promise<unknown>;
}

const OFFLINE = JSON.stringify({ state: "offline" });
const ONLINE = JSON.stringify({ state: "online" });

/**
 * Operator topics under `<base>` (default `llmqtt/bridge`), in the style of zigbee2mqtt: retained
 * `state` with a last-will, retained `info`, periodic `health`, and `request/<command>` answered
 * on `response/<command>`. It has its own broker connection because MQTT allows one last-will per
 * connection and the gateway's carries the original status topic's.
 */
export class Bridge {
  private readonly transport: MqttTransport;
  private readonly log: Logger;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: BridgeOptions) {
    this.log = options.logger.child({ module: "bridge" });
    const { baseTopic, mqtt } = options;
    this.transport = new MqttTransport(
      // Operator requests are interactive: nothing to keep for them while llmqtt is away.
      { ...mqtt, clientId: `${mqtt.clientId}-bridge`, clean: true },
      {
        logger: options.logger,
        subscriptions: [`${baseTopic}/request/+`],
        will: { topic: `${baseTopic}/state`, payload: OFFLINE, retain: true },
        onMessage: (topic, payload) => void this.handle(topic, payload),
        onReady: () => void this.announce(),
      },
    );
  }

  async start(url: string, credentials?: { username?: string; password?: string }): Promise<void> {
    await this.transport.start(url, credentials);
    if (this.options.healthIntervalSec > 0) {
      this.timer = setInterval(() => void this.publishHealth(), this.options.healthIntervalSec * 1000);
      this.timer.unref();
    }
  }

  /** Republishes the retained `info`, e.g. after a model server changed state. */
  async refreshInfo(): Promise<void> {
    if (this.transport.connected) await this.publish("info", JSON.stringify(await this.options.info()), true);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.transport.connected) await this.publish("state", OFFLINE, true);
    await this.transport.stop();
  }

  private async announce(): Promise<void> {
    await this.publish("state", ONLINE, true);
    await this.refreshInfo();
  }

  private async publishHealth(): Promise<void> {
    if (!this.transport.connected) return;
    const snapshot: GatewaySnapshot = await this.options.snapshot();
    await this.publish("health", JSON.stringify(snapshot), false);
  }

  private async handle(topic: string, payload: Buffer): Promise<void> {
    const command = topic.slice(`${this.options.baseTopic}/request/`.length);
    let transaction: unknown = null;
    let response: object;
    try {
      const body = payload.length === 0 ? undefined : parseJson(payload.toString("utf8"));
      transaction = (body as { transaction?: unknown } | undefined)?.transaction ?? null;
      const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command as BridgeCommandName] : undefined;
      if (!run)
        throw new CommandError(`unknown command "${command}"; known: ${Object.keys(COMMANDS).join(", ")}`);
      if (!this.options.allow.includes(command as BridgeCommandName))
        throw new CommandError(`command "${command}" is switched off on this gateway (bridge.allow)`);
      response = { status: "ok", data: await run(asArgs(body), this.options), error: null, transaction };
    } catch (error) {
      const known = error instanceof CommandError;
      if (!known) this.log.error({ err: error, command }, "bridge command failed");
      const message = known ? error.message : "internal error";
      response = { status: "error", data: null, error: message, transaction };
    }
    await this.publish(`response/${command}`, JSON.stringify(response), false);
  }

  private async publish(subtopic: string, payload: string, retain: boolean): Promise<void> {
    await this.transport.publish(`${this.options.baseTopic}/${subtopic}`, payload, { retain });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CommandError("the request payload is not valid JSON");
  }
}
