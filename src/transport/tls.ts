import { readFileSync } from "node:fs";
import type { IClientOptions } from "mqtt";
import { ConfigError } from "../config/load.js";
import type { TlsSettings } from "../config/schema.js";

/** MQTT.js hands these to tls.connect as they are, passphrase included (its types omit it). */
type TlsClientOptions = Pick<IClientOptions, "ca" | "cert" | "key" | "rejectUnauthorized" | "servername"> & {
  passphrase?: string;
};

/**
 * The TLS part of the broker connection options. Files are read once, at start, so a missing
 * or unreadable certificate is a start-up error naming the setting, not a reconnect loop.
 */
export function tlsClientOptions(tls: TlsSettings): TlsClientOptions {
  const options: TlsClientOptions = { rejectUnauthorized: tls.rejectUnauthorized };
  if (tls.caFile) options.ca = readPem("mqtt.tls.caFile", tls.caFile);
  if (tls.certFile) options.cert = readPem("mqtt.tls.certFile", tls.certFile);
  if (tls.keyFile) options.key = readPem("mqtt.tls.keyFile", tls.keyFile);
  if (tls.keyPassphrase !== undefined) options.passphrase = tls.keyPassphrase;
  if (tls.servername) options.servername = tls.servername;
  if (Boolean(options.cert) !== Boolean(options.key)) {
    throw new ConfigError("mqtt.tls: a client certificate needs its key (certFile and keyFile go together)");
  }
  return options;
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(error as Error).message}`);
  }
}
