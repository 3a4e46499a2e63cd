/**
 * The "bare forwarder": the least an MQTT↔LLM gateway can do, as the ceiling llmqtt is measured
 * against. One MQTT subscription on `<project>/user_input`, one POST to the model server with the
 * same HTTP client llmqtt uses (createModelClient: the `openai` SDK over undici, no retries), one
 * publish of the reply to `<project>/assistant_response/<sessionId>` (project: `general` unless
 * told otherwise, so that it can run beside an llmqtt serving `general`). No sessions, no history
 * (unless asked for, see `history`), no validation, no slot limit, no ordering. QoS 1 and
 * TCP_NODELAY, like llmqtt.
 *
 * Standalone: `node build/bench/bareForwarder.js '{"mqttUrl": "mqtt://127.0.0.1:1883", "serverUrl": "http://127.0.0.1:8080"}'`
 * As a bench child it reports ready over IPC and stops on command.
 */
import type { Socket } from "node:net";
import mqtt from "mqtt";
import { createModelClient } from "../src/backends/modelClient.js";

interface BareArgs {
  mqttUrl: string;
  serverUrl: string;
  project?: string;
  /** Diagnostics only: at most this many model calls at once, like llmqtt's slots (default: no limit). */
  maxInFlight?: number;
  /**
   * Send each session's whole conversation, as llmqtt does, kept in a Map without limit (default:
   * only the message); S1 runs one such forwarder beside the plain one (S6h). Tells the cost of
   * the history itself (the larger request to build and send, and for the model server to read)
   * from that of llmqtt's machinery.
   */
  history?: boolean;
  /** With `history`: the system prompt each conversation starts with, as llmqtt sends it. */
  systemPrompt?: string;
}

const {
  mqttUrl,
  serverUrl,
  project = "general",
  maxInFlight = Infinity,
  history = false,
  systemPrompt,
} = JSON.parse(process.argv[2] ?? "{}") as BareArgs;
type Message = { role: "system" | "user" | "assistant"; content: string };
const opening: Message[] = systemPrompt ? [{ role: "system", content: systemPrompt }] : [];
const conversations = new Map<string, Message[]>();
let inFlight = 0;
const waiting: (() => void)[] = [];
const { openai } = createModelClient({ root: serverUrl });
const client = await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 1000 });
(client.stream as unknown as Socket).setNoDelay?.(true);

async function answer(payload: Buffer): Promise<void> {
  const { sessionId, message } = JSON.parse(payload.toString("utf8")) as {
    sessionId: string;
    message: string;
  };
  let reply: string;
  const earlier = history ? (conversations.get(sessionId) ?? opening) : [];
  const question: Message = { role: "user", content: message };
  if (inFlight >= maxInFlight) await new Promise<void>((resolve) => waiting.push(resolve));
  inFlight++;
  try {
    const completion = await openai.chat.completions.create({
      model: "default",
      messages: [...earlier, question],
    });
    reply = completion.choices[0]?.message.content ?? "";
    if (history) conversations.set(sessionId, [...earlier, question, { role: "assistant", content: reply }]);
  } catch (error) {
    reply = `Error: ${(error as Error).message}`;
  } finally {
    inFlight--;
    waiting.shift()?.();
  }
  client.publish(`${project}/assistant_response/${sessionId}`, reply, { qos: 1 });
}

client.on("message", (_topic, payload) => {
  // A payload that is not the bench's own JSON would otherwise end the process unexplained.
  answer(payload).catch((error: unknown) => console.error("bare forwarder: cannot answer:", error));
});
await client.subscribeAsync(`${project}/user_input`, { qos: 1 });

if (process.send) {
  const { serve } = await import("./ipc.js");
  serve({}, { stop: () => client.endAsync() });
}
