import { readFileSync } from "node:fs";
import type { RequestOptions } from "node:https";
import { createSecureContext } from "node:tls";
import type { IClientOptions } from "mqtt";
import { ConfigError } from "../config/load.js";
import type { TlsSettings } from "../config/schema.js";

/**
 * MQTT.js hands these to tls.connect (for wss://, to the WebSocket library) as they are,
 * passphrase included (its types omit it).
 */
type TlsClientOptions = Pick<
  IClientOptions,
  "ca" | "cert" | "key" | "rejectUnauthorized" | "servername" | "wsOptions"
> & {
  passphrase?: string;
};

/**
 * The TLS part of the broker connection options. Files are read and the client key is unlocked
 * once, at start, so a missing file, a wrong passphrase or a mismatched key is a start-up error
 * naming the setting, not a reconnect loop (or, for the key, an uncaught exception in MQTT.js).
 */
export function tlsClientOptions(tls: TlsSettings): TlsClientOptions {
  const options: TlsClientOptions = { rejectUnauthorized: tls.rejectUnauthorized };
  if (tls.caFile) options.ca = readPem("mqtt.tls.caFile", tls.caFile);
  if (tls.certFile) options.cert = readPem("mqtt.tls.certFile", tls.certFile);
  if (tls.keyFile) options.key = readPem("mqtt.tls.keyFile", tls.keyFile);
  if (tls.keyPassphrase !== undefined) options.passphrase = tls.keyPassphrase;
  if (tls.servername) {
    options.servername = tls.servername;
    // For wss:// MQTT.js passes on only ca, cert, key, passphrase and rejectUnauthorized; the
    // WebSocket library hands its options to https.request, which takes a servername.
    const wsOptions: RequestOptions = { servername: tls.servername };
    options.wsOptions = wsOptions;
  }
  if (Boolean(options.cert) !== Boolean(options.key)) {
    throw new ConfigError("mqtt.tls: a client certificate needs its key (certFile and keyFile go together)");
  }
  if (options.cert) checkClientIdentity(options, tls);
  return options;
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(error as Error).message}`);
  }
}

function checkClientIdentity(options: TlsClientOptions, tls: TlsSettings): void {
  try {
    createSecureContext({ cert: options.cert, key: options.key, passphrase: options.passphrase });
  } catch (error) {
    const reason = (error as { reason?: string }).reason ?? (error as Error).message;
    const hint =
      reason === "bad decrypt"
        ? "the key is encrypted: mqtt.tls.keyPassphrase is missing or wrong"
        : "check mqtt.tls.certFile and mqtt.tls.keyFile";
    throw new ConfigError(
      `mqtt.tls: cannot use client certificate ${tls.certFile} with key ${tls.keyFile}: ${reason} (${hint})`,
    );
  }
}
