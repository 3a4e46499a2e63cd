/**
 * `llmqtt/client`: talk to an llmqtt gateway over MQTT from Node or a browser.
 *
 *   const client = await connect("ws://localhost:9001");
 *   const reply = await client.ask("general", "What is MQTT?");
 */
export {
  connect,
  LlmqttClient,
  type CallOptions,
  type ConnectOptions,
  type SessionOptions,
} from "./client.js";
export type { StreamEvent } from "./call.js";
export { BrokerConnectError, LlmqttError, ReplyTimeoutError, type LlmqttErrorCode } from "./errors.js";
export type { Reply, Usage } from "./replies.js";
export { ReplyStream } from "./stream.js";
