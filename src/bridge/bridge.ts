import type { BridgeCommandName, MqttSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import type { GatewaySnapshot } from "../observability/snapshot.js";
import { SessionStoreUnavailable } from "../sessions/types.js";
import { MqttTransport } from "../transport/mqttTransport.js";
import { OFFLINE_WAIT_MS } from "../transport/status.js";
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

  /** Republishes the retained `info`, e.g. after a model server changed state. Never rejects. */
  async refreshInfo(): Promise<void> {
    if (!this.transport.connected) return;
    try {
      await this.publish("info", JSON.stringify(await this.options.info()), true);
    } catch (error) {
      this.log.error({ err: error }, "bridge info not published");
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.transport.connected) {
      const topic = `${this.options.baseTopic}/state`;
      await this.transport.publishWithin(topic, OFFLINE, { retain: true }, OFFLINE_WAIT_MS);
    }
    await this.transport.stop();
  }

  private async announce(): Promise<void> {
    await this.publish("state", ONLINE, true);
    await this.refreshInfo();
  }

  /** Never rejects: a timer calls it. */
  private async publishHealth(): Promise<void> {
    if (!this.transport.connected) return;
    try {
      const snapshot: GatewaySnapshot = await this.options.snapshot();
      await this.publish("health", JSON.stringify(snapshot), false);
    } catch (error) {
      this.log.warn({ err: error }, "bridge health not published");
    }
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
      // The caller's mistake, or a store that is away for now: both worth telling the operator.
      const told = error instanceof CommandError || error instanceof SessionStoreUnavailable;
      if (!(error instanceof CommandError)) this.log.error({ err: error, command }, "bridge command failed");
      const message = told ? error.message : "internal error";
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
