import { connect, type Socket } from "node:net";
import mqttPacket, { type QoS } from "mqtt-packet";

/** How a fire-and-forget client leaves: a FIN after its last bytes, or its socket closed outright. */
export type Leaving = "end" | "destroy";

export interface FireAndForget {
  port: number;
  topic: string;
  payload: string;
  qos: QoS;
  clientId: string;
  username?: string;
  password?: string;
  leaving?: Leaving;
}

/**
 * A blocking client's connect, publish, disconnect, close: CONNECT, PUBLISH and DISCONNECT go in
 * one write without waiting for the CONNACK, and the socket is closed at once.
 */
export async function connectPublishDisconnect(options: FireAndForget): Promise<void> {
  const socket = await open(options.port);
  leave(socket, connectPublishDisconnectBytes(options), options);
}

export function connectPublishDisconnectBytes(options: Omit<FireAndForget, "port" | "leaving">): Buffer {
  return Buffer.concat([connectPacket(options), publishPacket(options), disconnectPacket()]);
}

/** Waits for the CONNACK, then sends PUBLISH and DISCONNECT in one write and closes at once. */
export async function publishDisconnectAfterConnack(options: FireAndForget): Promise<void> {
  const socket = await open(options.port);
  const parser = mqttPacket.parser();
  const connack = new Promise<void>((resolve, reject) => {
    parser.on("packet", (packet) => (packet.cmd === "connack" ? resolve() : undefined));
    socket.once("close", () => reject(new Error("closed before CONNACK")));
  });
  socket.on("data", (chunk: Buffer) => parser.parse(chunk));
  socket.write(connectPacket(options));
  await connack;
  leave(socket, Buffer.concat([publishPacket(options), disconnectPacket()]), options);
}

/**
 * Connects, writes `bytes` and a FIN at once; resolves when the broker has closed its side too,
 * that is, once it let the client go.
 */
export async function sendAndClose(port: number, bytes: Buffer): Promise<void> {
  const socket = await open(port);
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.resume(); // reads (and drops) the replies, so that the broker's end can be seen
  leave(socket, bytes, { leaving: "end" });
  await closed;
}

/**
 * Sends CONNECT and a QoS 1 PUBLISH, shuts its sending side at once and keeps reading: the
 * packets the broker answers with, until it closes.
 */
export async function halfOpenReplies(port: number, clientId: string): Promise<string[]> {
  const socket = await open(port, true);
  const parser = mqttPacket.parser();
  const replies: string[] = [];
  parser.on("packet", (packet) => replies.push(packet.cmd));
  socket.on("data", (chunk: Buffer) => parser.parse(chunk));
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.end(
    Buffer.concat([
      connectPacket({ clientId }),
      publishPacket({ topic: "ff/half", payload: clientId, qos: 1 }),
    ]),
  );
  await closed;
  return replies;
}

export function connectPacket(options: Pick<FireAndForget, "clientId" | "username" | "password">): Buffer {
  return mqttPacket.generate({
    cmd: "connect",
    protocolVersion: 4,
    clientId: options.clientId,
    clean: true,
    keepalive: 30,
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: Buffer.from(options.password) }),
  });
}

function publishPacket({ topic, payload, qos }: Pick<FireAndForget, "topic" | "payload" | "qos">): Buffer {
  return mqttPacket.generate({
    cmd: "publish",
    topic,
    payload: Buffer.from(payload),
    qos,
    dup: false,
    retain: false,
    ...(qos > 0 ? { messageId: 1 } : {}),
  });
}

function disconnectPacket(): Buffer {
  return mqttPacket.generate({ cmd: "disconnect" });
}

function open(port: number, allowHalfOpen = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen }, () => {
      socket.off("error", reject);
      // The broker's replies may meet a closed socket; that reset is expected, not a failure.
      socket.on("error", () => undefined);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

function leave(socket: Socket, bytes: Buffer, { leaving = "destroy" }: Pick<FireAndForget, "leaving">): void {
  if (leaving === "end") return void socket.end(bytes);
  socket.write(bytes);
  socket.destroy();
}
