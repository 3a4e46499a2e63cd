import { timingSafeEqual } from "node:crypto";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Aedes, type AuthenticateError } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { BrokerSettings } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import { handleWholeConnection } from "./wholeConnection.js";

export interface BrokerEndpoints {
  tcpUrl: string;
  wsUrl?: string;
}

/**
 * An MQTT broker (Aedes) inside the llmqtt process, for set-ups without one: MQTT over TCP for
 * games and devices, MQTT over WebSocket for browser games.
 */
export class EmbeddedBroker {
  private aedes?: Aedes;
  private tcp?: Server;
  private http?: HttpServer;
  private wss?: WebSocketServer;
  /** Open TCP connections: Aedes closes only those that sent CONNECT, so stop() ends the rest. */
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;

  constructor(
    private readonly settings: BrokerSettings,
    logger: Logger,
  ) {
    this.log = logger.child({ module: "broker" });
  }

  /** Rejects with the listen error (e.g. EADDRINUSE) and leaves nothing running. */
  async start(): Promise<BrokerEndpoints> {
    const { host, port, wsPort } = this.settings;
    const authenticate = this.authenticator();
    const aedes = await Aedes.createBroker(authenticate ? { authenticate } : {});
    this.aedes = aedes;
    try {
      // Half-open: a client that shut its sending side still gets its CONNACK and PUBACKs.
      this.tcp = createServer({ allowHalfOpen: true }, (socket) => {
        // Replies are small packets; Nagle would hold each for a delayed ACK (~40 ms a hop).
        socket.setNoDelay(true);
        this.sockets.add(socket);
        socket.once("close", () => this.sockets.delete(socket));
        handleWholeConnection(aedes, socket);
      });
      const tcpPort = await listen(this.tcp, port, host);
      const endpoints: BrokerEndpoints = { tcpUrl: `mqtt://${urlHost(host)}:${tcpPort}` };
      if (wsPort !== 0) {
        this.http = createHttpServer((_req, res) => res.writeHead(426).end("MQTT over WebSocket only\n"));
        this.wss = new WebSocketServer({ server: this.http });
        this.wss.on("connection", (socket, request) =>
          handleWholeConnection(aedes, createWebSocketStream(socket), request),
        );
        const boundWsPort = await listen(this.http, wsPort, host);
        endpoints.wsUrl = `ws://${urlHost(host)}:${boundWsPort}`;
      }
      this.log.info(endpoints, "embedded MQTT broker listening");
      return endpoints;
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    const { aedes, tcp, http, wss } = this;
    this.aedes = this.tcp = this.http = this.wss = undefined;
    for (const client of wss?.clients ?? []) client.terminate();
    wss?.close();
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // Without this a socket that never sent CONNECT (or a stalled upgrade) holds stop() open
    // until Aedes' 30 s CONNECT timeout (or the HTTP server's request timeout).
    for (const socket of this.sockets) socket.destroy();
    http?.closeAllConnections();
    await Promise.all([closeServer(tcp), closeServer(http)]);
  }

  private authenticator() {
    const { username, password } = this.settings;
    if (username === undefined) return undefined;
    const expected = Buffer.from(password ?? "");
    return (
      _client: unknown,
      user: Readonly<string | undefined>,
      pass: Readonly<Buffer | undefined>,
      done: (error: AuthenticateError | null, success: boolean | null) => void,
    ) => {
      const given = Buffer.from(pass ?? "");
      const ok = user === username && given.length === expected.length && timingSafeEqual(given, expected);
      if (ok) return done(null, true);
      const error = new Error("bad username or password") as AuthenticateError;
      error.returnCode = 4;
      done(error, false);
    };
  }
}

function listen(server: Server | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server | HttpServer | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
