/**
 * A start-up failure that retrying cannot fix (refused credentials, an untrusted certificate, a
 * refused subscription): the message names the cause and the setting to change, and `llmqtt
 * serve` exits with status 2, as for a bad setting.
 */
export class StartupError extends Error {
  override name = "StartupError";
}

const CREDENTIALS =
  "check --mqtt-username and --mqtt-password (LLMQTT_MQTT_USERNAME, LLMQTT_MQTT_PASSWORD or --mqtt-password-file)";

/** CONNACK refusals that are the same on every attempt, by protocol version: [reason, fix]. */
const REFUSALS: Record<4 | 5, Record<number, [string, string]>> = {
  4: {
    1: ["unacceptable protocol version", "set --mqtt-protocol-version to one the broker speaks"],
    2: ["client id rejected", "set --mqtt-client-id to an id the broker accepts"],
    4: ["bad user name or password", CREDENTIALS],
    5: ["not authorised", CREDENTIALS],
  },
  5: {
    0x84: ["unsupported protocol version", "set --mqtt-protocol-version 4"],
    0x85: ["client id not valid", "set --mqtt-client-id to an id the broker accepts"],
    0x86: ["bad user name or password", CREDENTIALS],
    0x87: ["not authorised", CREDENTIALS],
    0x8a: ["banned", "ask the broker's operator why this client is banned"],
    0x8c: ["bad authentication method", CREDENTIALS],
  },
};

/** OpenSSL's verdicts on a certificate chain the client does not trust. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
]);

/**
 * The StartupError for an error MQTT.js reported before the first connection was ready, or
 * undefined when trying again may help (broker down, busy, network).
 */
export function startupFailure(
  error: Error & { code?: unknown },
  url: string,
  protocolVersion: 4 | 5,
): StartupError | undefined {
  const { code } = error;
  if (typeof code === "number") {
    const refusal = REFUSALS[protocolVersion][code];
    return refusal === undefined
      ? undefined
      : new StartupError(`the MQTT broker at ${url} refused the connection: ${refusal[0]}; ${refusal[1]}`);
  }
  if (typeof code !== "string") return undefined;
  const tls = tlsFix(code);
  return tls === undefined
    ? undefined
    : new StartupError(`TLS with the MQTT broker at ${url} failed: ${error.message}; ${tls}`);
}

function tlsFix(code: string): string | undefined {
  if (UNTRUSTED.has(code))
    return "the broker's certificate is not trusted: set --mqtt-ca to the CA file that signed it";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    return "connect by a host name the certificate lists, or set --mqtt-servername to one";
  if (/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN/.test(code))
    return "the broker did not accept llmqtt's client certificate: check --mqtt-cert and --mqtt-key";
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER")
    return "the broker does not speak TLS there: check the port and scheme of --mqtt-url";
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_"))
    return "check --mqtt-ca, --mqtt-cert, --mqtt-key and --mqtt-servername";
  return undefined;
}

/** A SUBACK that refused some of llmqtt's topics: the broker's access control says no. */
export function subscriptionRefused(error: Error, url: string, topics: string[]): StartupError {
  return new StartupError(
    `the MQTT broker at ${url} refused the subscription to ${topics.join(", ")} (${error.message}); ` +
      "allow llmqtt's MQTT user to subscribe to these topics in the broker's ACL, or check --projects and --share-group",
  );
}
