import type { ErrorCode } from "../protocol/types.js";

/**
 * Why a call failed. The gateway's own codes (PROTOCOL C1: `overloaded`, `timeout`,
 * `context_overflow`, ...; `cancelled` and `expired` from C9), plus what only a client can see:
 * - `no_reply`: nothing came back within the call's timeout;
 * - `closed`: the client was closed while the call waited;
 * - `connect_failed`: the broker could not be reached or refused the connection;
 * - `publish_failed`: the broker did not take the request;
 * - `subscribe_failed`: the broker refused the subscription to the reply topic (an ACL);
 * - `unknown`: an error reply without a code (a gateway that does not write the envelope).
 */
export type LlmqttErrorCode =
  | ErrorCode
  | "cancelled"
  | "expired"
  | "no_reply"
  | "closed"
  | "connect_failed"
  | "publish_failed"
  | "subscribe_failed"
  | "unknown";

export class LlmqttError extends Error {
  override name = "LlmqttError";

  constructor(
    readonly code: LlmqttErrorCode,
    message: string,
    /** Whether sending the same request again later can succeed. */
    readonly retryable = false,
    readonly requestId?: string,
  ) {
    super(message);
  }
}

export class ReplyTimeoutError extends LlmqttError {
  override name = "ReplyTimeoutError";

  constructor(
    readonly topic: string,
    readonly project: string,
    readonly timeoutMs: number,
    requestId?: string,
  ) {
    super(
      "no_reply",
      `no reply within ${timeoutMs / 1000}s on ${topic} — is an llmqtt gateway running and serving project ${project}?`,
      true,
      requestId,
    );
  }
}

export class BrokerConnectError extends LlmqttError {
  override name = "BrokerConnectError";

  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super("connect_failed", `cannot connect to MQTT broker at ${url}: ${reason}`, true);
  }
}
