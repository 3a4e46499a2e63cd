import type { Socket } from "node:net";
import type { MqttClient } from "mqtt";

/**
 * Makes the packets a client writes in one turn of the event loop leave its socket in one
 * write: the replies to every model answer that arrived together, the PUBACKs of every request
 * read in one chunk. Each write is a system call that also wakes the broker, and costs more
 * than building the packets. A packet waits at most until the loop's check phase, and order is
 * kept. (MQTT.js alone flushes after each callback, as soon as its own packet is built.)
 */
export function coalesceWrites(client: Pick<MqttClient, "on" | "stream">): void {
  let corked: Socket | undefined;
  const release = () => {
    corked?.uncork();
    corked = undefined;
  };
  client.on("packetsend", () => {
    const socket = client.stream as unknown as Partial<Socket>;
    if (corked || typeof socket.cork !== "function") return;
    corked = socket as Socket;
    corked.cork();
    setImmediate(release);
  });
}
