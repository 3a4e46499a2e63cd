import type { Settings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import type { EmbeddedBroker } from "./embeddedBroker.js";
import { brokerUrl } from "./mqttTransport.js";

/** Where llmqtt's MQTT connections go, and the embedded broker when llmqtt runs one. */
export interface BrokerChoice {
  url: string;
  credentials: { username?: string; password?: string };
  /** MQTT over WebSocket for browsers: the configured one, else the embedded broker's. */
  wsUrl?: string;
  embedded?: EmbeddedBroker;
}

/**
 * An external broker when one is configured; otherwise the embedded one, started here. If the
 * embedded broker's port is taken, a broker is most likely already running there (the original
 * gateway's default set-up), so llmqtt uses it instead of failing.
 */
export async function chooseBroker(settings: Settings, logger: Logger): Promise<BrokerChoice> {
  const external = brokerUrl(settings.mqtt);
  const configuredWsUrl = settings.http.brokerWsUrl;
  if (external) return { url: external, credentials: settings.mqtt, wsUrl: configuredWsUrl };
  if (settings.mqtt.protocolVersion === 5) {
    throw new Error(
      "the embedded broker speaks MQTT 3.1.1 only: use --mqtt-url with an MQTT 5 broker (Mosquitto, EMQX)",
    );
  }
  const credentials = {
    username: settings.mqtt.username ?? settings.broker.username,
    password: settings.mqtt.password ?? settings.broker.password,
  };
  // Aedes and ws are loaded only by gateways that run the broker themselves.
  const { EmbeddedBroker } = await import("./embeddedBroker.js");
  const embedded = new EmbeddedBroker(settings.broker, logger);
  try {
    const { tcpUrl, wsUrl } = await embedded.start();
    return {
      url: loopback(tcpUrl),
      credentials,
      wsUrl: configuredWsUrl ?? (wsUrl && loopback(wsUrl)),
      embedded,
    };
  } catch (error) {
    const { code, port } = error as NodeJS.ErrnoException & { port?: number };
    if (code !== "EADDRINUSE" || port !== settings.broker.port) throw error;
    const existing = loopback(`mqtt://${settings.broker.host}:${settings.broker.port}`);
    logger.warn({ url: existing }, "port in use: connecting to the MQTT broker already running there");
    return { url: existing, credentials, wsUrl: configuredWsUrl };
  }
}

/** A wildcard listen address is not a place to connect to. */
function loopback(url: string): string {
  return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
}
