import mqtt, { type MqttClient } from "mqtt";

import { BrokerConnectError } from "./errors.js";

/** The client's broker connection: one bounded attempt, and an exit that cannot hang. */

export interface ConnectionOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  connectTimeoutMs?: number;
  protocolVersion: 4 | 5;
}

/** One attempt, bounded: the first error, close or timeout rejects and the client is ended. */
export function openConnection(options: ConnectionOptions): Promise<MqttClient> {
  const { url, clientId } = options;
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  let client: MqttClient;
  try {
    client = mqtt.connect(url, {
      clientId,
      username: options.username,
      password: options.password,
      clean: true,
      protocolVersion: options.protocolVersion,
      connectTimeout: timeoutMs,
      reconnectPeriod: 0,
    });
  } catch (error) {
    return Promise.reject(new BrokerConnectError(url, (error as Error).message));
  }
  // MQTT.js emits stream errors as events; without a listener one would crash the process.
  client.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (reason?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.removeListener("error", onError);
      client.removeListener("close", onClose);
      if (reason === undefined) return resolve(client);
      client.end(true);
      reject(new BrokerConnectError(url, reason));
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs / 1000}s`), timeoutMs);
    const onError = (error: Error & { code?: string | number; errors?: Error[] }) =>
      // Node reports a refused `localhost` (tried as ::1 and 127.0.0.1) as an AggregateError
      // with an empty message.
      done(error.message || error.errors?.[0]?.message || String(error.code ?? "unknown error"));
    const onClose = () => done("connection closed");
    client.once("connect", () => done());
    client.on("error", onError);
    client.on("close", onClose);
  });
}

/** A graceful end waits for in-flight QoS 1 publishes; a dead broker must not hang the exit. */
export async function closeConnection(client: MqttClient): Promise<void> {
  await Promise.race([client.endAsync(false), delay(2000).then(() => client.endAsync(true))]);
}

/** In Node the timer must not keep the process alive; browsers have no unref. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer: unknown = setTimeout(resolve, ms);
    (timer as { unref?: () => void }).unref?.();
  });
}
