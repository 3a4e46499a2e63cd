import { z } from "zod";
import { positiveInt, nonNegativeInt, port, flag, secret } from "./common.js";

/**
 * Settings schema sections, assembled in ../schema.ts:
 * the MQTT connection and the embedded broker.
 */

export const MqttSettingsSchema = z.strictObject({
  url: z.string().optional().describe("broker URL instead of host/port: mqtt[s]://, ws[s]://").meta(secret),
  host: z
    .string()
    .optional()
    .describe("external MQTT broker host (default: none, llmqtt starts its embedded broker)")
    .meta(flag("--mqtt-broker", { arg: "<host>" })),
  port: port.min(1).default(1883).describe("MQTT broker port"),
  username: z.string().optional().describe("MQTT username"),
  password: z.string().optional().describe("MQTT password").meta(secret),
  clientId: z
    .string()
    .min(1)
    .optional()
    .describe(
      "names the broker session that keeps requests while llmqtt restarts; one per instance (default: llmqtt-<hostname>)",
    ),
  clean: z.boolean().default(false).describe("fresh broker session on connect (loses queued requests)"),
  qos: z
    .union([z.literal(1), z.literal(2)])
    .default(1)
    .describe("QoS of subscriptions and replies: 1 = at least once, 2 = exactly once"),
  sessionExpirySec: nonNegativeInt
    .default(3600)
    .describe("MQTT 5: seconds the broker keeps llmqtt's session while it is away")
    .meta(flag("--mqtt-session-expiry")),
  shareGroup: z
    .string()
    .min(1)
    .regex(/^[^/+#]+$/, "must not contain /, + or #")
    .optional()
    .describe(
      "scale-out: inputs subscribed as $share/<name>/..., one instance gets each (needs the redis store)",
    )
    .meta(flag("--share-group", { arg: "<name>" })),
  tls: z
    .strictObject({
      caFile: z.string().optional().describe("TLS: CA certificate(s) to trust, PEM").meta(flag("--mqtt-ca")),
      certFile: z.string().optional().describe("mTLS: client certificate, PEM").meta(flag("--mqtt-cert")),
      keyFile: z.string().optional().describe("mTLS: client key, PEM").meta(flag("--mqtt-key")),
      keyPassphrase: z
        .string()
        .optional()
        .describe("passphrase of an encrypted client key")
        .meta(flag("--mqtt-key-passphrase", { secret: true })),
      rejectUnauthorized: z
        .boolean()
        .default(true)
        .describe("TLS: refuse a broker certificate that does not verify (false: for testing only)")
        .meta(flag("--mqtt-reject-unauthorized")),
      servername: z
        .string()
        .optional()
        .describe("TLS: name for SNI and certificate checks (default: the broker URL's host)")
        .meta(flag("--mqtt-servername", { arg: "<name>" })),
    })
    .default({ rejectUnauthorized: true }),
  keepaliveSec: nonNegativeInt.default(60).describe("MQTT keepalive, seconds").meta(flag("--mqtt-keepalive")),
  protocolVersion: z
    .union([z.literal(4), z.literal(5)])
    .default(4)
    .describe("4 = MQTT 3.1.1, 5 = MQTT 5"),
  reconnectPeriodMs: positiveInt.default(2000).describe("wait between reconnection attempts, ms"),
  /** Avoids Nagle's delay on every small reply. */
  noDelay: z.boolean().default(true).describe("TCP_NODELAY on the broker socket"),
});

export const BrokerSettingsSchema = z.strictObject({
  host: z.string().default("127.0.0.1").describe("address to listen on (0.0.0.0: the whole network)"),
  port: port.default(1883).describe("MQTT port"),
  wsPort: port.default(9001).describe("MQTT over WebSocket port for browser games, 0 = off"),
  username: z.string().optional().describe("username clients must give"),
  password: z.string().optional().describe("password clients must give").meta(secret),
});
