import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { Gateway } from "../../src/gateway.js";
import type { TestBroker } from "./brokers.js";
import type { GameClientTls } from "./gameClient.js";

/** Certificates and keys made for one test run; every path is a PEM file. */
export interface TestPki {
  dir: string;
  /** The CA that signed the server and client certificates. */
  caFile: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  unrelatedCaFile: string;
  /** For `localhost`, with subjectAltName DNS:localhost and IP:127.0.0.1. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate (CN `llmqtt-gateway`) for mutual TLS. */
  clientCertFile: string;
  clientKeyFile: string;
  /** The same client key, encrypted with `clientKeyPassphrase`. */
  encryptedClientKeyFile: string;
  clientKeyPassphrase: string;
  remove(): void;
}

const CA_EXTENSIONS = [
  "basicConstraints=critical,CA:TRUE",
  "keyUsage=critical,keyCertSign,cRLSign",
  "subjectKeyIdentifier=hash",
];
const LEAF_KEY_USAGE = "keyUsage=critical,digitalSignature";

/** Everything a broker and its clients need for TLS and mutual TLS, made with `openssl`. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "llmqtt-pki-"));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });

  /** `<name>.key` and `<name>.crt`, signed by `issuer`'s key, or self-signed without one. */
  const newCertificate = (name: string, commonName: string, extensions: string[], issuer?: string) => {
    const key = file(`${name}.key`);
    const request = file(`${name}.csr`);
    const extensionFile = file(`${name}.ext`);
    // EC keys: generating RSA keys would dominate the test's run time.
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", key);
    openssl("req", "-new", "-key", key, "-subj", `/CN=${commonName}`, "-out", request);
    writeFileSync(extensionFile, extensions.join("\n"));
    const signer = issuer
      ? ["-CA", file(`${issuer}.crt`), "-CAkey", file(`${issuer}.key`)]
      : ["-signkey", key];
    const serial = ["-set_serial", `0x${randomBytes(8).toString("hex")}`];
    const output = ["-extfile", extensionFile, "-days", "2", "-out", file(`${name}.crt`)];
    openssl("x509", "-req", "-in", request, ...signer, ...serial, ...output);
  };

  newCertificate("ca", "llmqtt test CA", CA_EXTENSIONS);
  newCertificate("unrelated-ca", "unrelated test CA", CA_EXTENSIONS);
  newCertificate(
    "server",
    "localhost",
    ["subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth", LEAF_KEY_USAGE],
    "ca",
  );
  newCertificate("client", "llmqtt-gateway", ["extendedKeyUsage=clientAuth", LEAF_KEY_USAGE], "ca");
  const clientKeyPassphrase = randomBytes(12).toString("hex");
  const encrypted = ["-aes-256-cbc", "-passout", `pass:${clientKeyPassphrase}`];
  openssl("pkey", "-in", file("client.key"), ...encrypted, "-out", file("client-encrypted.key"));

  // Mosquitto started as root reads its certificates after dropping to its own user.
  chmodSync(dir, 0o755);
  for (const name of readdirSync(dir)) chmodSync(file(name), 0o644);

  return {
    dir,
    caFile: file("ca.crt"),
    unrelatedCaFile: file("unrelated-ca.crt"),
    serverCertFile: file("server.crt"),
    serverKeyFile: file("server.key"),
    clientCertFile: file("client.crt"),
    clientKeyFile: file("client.key"),
    encryptedClientKeyFile: file("client-encrypted.key"),
    clientKeyPassphrase,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A Mosquitto listener block serving TLS with `pki`'s server certificate and CA, followed by
 * `settings` (who may connect, whether a client certificate is required).
 */
export function tlsListener(pki: TestPki, settings: string[] = ["allow_anonymous true"]): string {
  return [
    "listener {port} 127.0.0.1",
    `cafile ${pki.caFile}`,
    `certfile ${pki.serverCertFile}`,
    `keyfile ${pki.serverKeyFile}`,
    ...settings,
  ].join("\n");
}

/**
 * Aedes behind MQTT over secure WebSocket with `pki`'s server certificate. Not Mosquitto: whether
 * its WebSocket listener works depends on how the package was built.
 */
export async function startSecureWebSocketBroker(pki: TestPki): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const server = createServer({
    cert: readFileSync(pki.serverCertFile),
    key: readFileSync(pki.serverKeyFile),
  });
  const webSockets = new WebSocketServer({ server });
  webSockets.on("connection", (socket, request) => aedes.handle(createWebSocketStream(socket), request));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name: "aedes over wss",
    url: `wss://127.0.0.1:${port}`,
    port,
    stop: async () => {
      for (const socket of webSockets.clients) socket.terminate();
      webSockets.close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** How a game connects to a broker of `pki`: trusting its CA, and presenting the client certificate. */
export function gameClientTls(pki: TestPki, { withCertificate = true } = {}): GameClientTls {
  const ca = readFileSync(pki.caFile);
  if (!withCertificate) return { ca };
  return { ca, cert: readFileSync(pki.clientCertFile), key: readFileSync(pki.clientKeyFile) };
}

export function opensslAvailable(): boolean {
  return spawnSync("openssl", ["version"]).status === 0;
}

/**
 * Starts the gateway; start() resolves only once connected, and a certificate or credential
 * mistake would leave it pending forever.
 */
export async function connectedWithin(gateway: Gateway, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the gateway did not connect within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([gateway.start(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
