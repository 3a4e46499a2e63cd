/**
 * The load generator: MQTT clients that behave like games (QoS 1, TCP_NODELAY, one connection
 * per session unless told otherwise) and the drivers that run turns through them and check every
 * reply against the message it should answer.
 */
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import mqtt, { type MqttClient } from "mqtt";
import { createModelClient, type ModelClient } from "../src/backends/modelClient.js";

/** The project the load talks to unless told otherwise: llmqtt's bench gateway serves only this one. */
export const PROJECT = "general";
export const inputTopic = (project = PROJECT) => `${project}/user_input`;
export const replyTopic = (sessionId: string, project = PROJECT) =>
  `${project}/assistant_response/${sessionId}`;

/** One MQTT connection; replies are dispatched by exact topic. */
export class LoadClient {
  private readonly handlers = new Map<string, (text: string) => void>();
  publishErrors = 0;

  private constructor(private readonly client: MqttClient) {
    client.on("message", (topic, payload) => this.handlers.get(topic)?.(payload.toString("utf8")));
  }

  static async connect(url: string): Promise<LoadClient> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 10_000 });
    (client.stream as unknown as Socket).setNoDelay?.(true);
    return new LoadClient(client);
  }

  on(topic: string, handler: (text: string) => void): void {
    this.handlers.set(topic, handler);
  }

  off(topic: string): void {
    this.handlers.delete(topic);
  }

  async subscribe(topics: string[]): Promise<void> {
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  /** QoS 1; not awaited by the drivers, the reply is what they wait for. */
  publish(topic: string, payload: string): void {
    this.client.publish(topic, payload, { qos: 1 }, (error) => {
      if (error) this.publishErrors++;
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Connects `count` clients, a few at a time (a connection storm measures the broker's accept path). */
export async function connectClients(url: string, count: number): Promise<LoadClient[]> {
  const clients: LoadClient[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Math.min(50, count - i);
    clients.push(...(await Promise.all(Array.from({ length: batch }, () => LoadClient.connect(url)))));
  }
  return clients;
}

export async function closeClients(clients: LoadClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

export interface TurnsOptions {
  url: string;
  sessions: number;
  /** Turns per session. */
  turns: number;
  /** Messages in flight per session: 1 = strictly sequential (send, await reply, send...). */
  window: number;
  /** Session ids are `<prefix>-<n>`. */
  prefix: string;
  /** Topics `<project>/user_input` and `<project>/assistant_response/<sessionId>` (default general). */
  project?: string;
  /** Run every session on this one connection (subscribed to a wildcard by the caller). */
  shared?: LoadClient;
  timeoutMs: number;
}

export interface TurnsResult {
  expected: number;
  replies: number;
  seconds: number;
  latenciesMs: number[];
  /** Replies that answer no message of their session that is still waiting (errors included). */
  wrong: number;
  /** Replies that answer a message of their session while an earlier one is still unanswered. */
  outOfOrder: number;
  /** Replies starting with "Error:" (overloaded, model error...). */
  errors: number;
  timedOut: boolean;
}

interface SessionState {
  id: string;
  client: LoadClient;
  sentAt: number[];
  answered: boolean[];
  /** Lowest index not answered yet: the reply that must come next. */
  next: number;
  received: number;
}

/**
 * Every session sends `turns` messages `<sessionId> t<n>`, keeping `window` of them in flight,
 * and checks each reply: the fake answers `reply to: <message>`, so a reply names the message it
 * answers. Latency is from just before the publish to the reply's arrival.
 */
export async function runTurns(options: TurnsOptions): Promise<TurnsResult> {
  const { sessions, turns, window, prefix, project = PROJECT } = options;
  const input = inputTopic(project);
  const replies = (st: SessionState) => replyTopic(st.id, project);
  const clients = options.shared ? [] : await connectClients(options.url, sessions);
  const states: SessionState[] = Array.from({ length: sessions }, (_, s) => ({
    id: `${prefix}-${s}`,
    client: options.shared ?? clients[s]!,
    sentAt: [],
    answered: [],
    next: 0,
    received: 0,
  }));
  if (!options.shared) await Promise.all(states.map((st) => st.client.subscribe([replies(st)])));

  const expected = sessions * turns;
  const latenciesMs: number[] = [];
  let wrong = 0;
  let outOfOrder = 0;
  let errors = 0;
  let received = 0;

  const send = (st: SessionState) => {
    const n = st.sentAt.length;
    const payload = JSON.stringify({ sessionId: st.id, message: `${st.id} t${n}` });
    st.sentAt.push(performance.now());
    st.answered.push(false);
    st.client.publish(input, payload);
  };

  let finish!: (timedOut: boolean) => void;
  const done = new Promise<boolean>((resolve) => (finish = resolve));
  const onReply = (st: SessionState, text: string) => {
    const arrived = performance.now();
    const answerPrefix = `reply to: ${st.id} t`;
    let index = text.startsWith(answerPrefix) ? Number(text.slice(answerPrefix.length)) : NaN;
    if (!Number.isInteger(index) || index < 0 || index >= st.sentAt.length || st.answered[index]) {
      // Not an answer to any waiting message of this session: count it, charge it to the oldest.
      wrong++;
      if (text.startsWith("Error:")) errors++;
      index = st.next;
    } else if (index !== st.next) outOfOrder++;
    if (index < st.sentAt.length) {
      st.answered[index] = true;
      latenciesMs.push(arrived - st.sentAt[index]!);
    }
    while (st.answered[st.next]) st.next++;
    st.received++;
    received++;
    if (st.sentAt.length < turns) send(st);
    if (received === expected) finish(false);
  };
  for (const st of states) st.client.on(replies(st), (text) => onReply(st, text));

  const started = performance.now();
  for (const st of states) for (let i = 0; i < Math.min(window, turns); i++) send(st);
  const timer = setTimeout(() => finish(true), options.timeoutMs);
  const timedOut = await done;
  const seconds = (performance.now() - started) / 1000;
  clearTimeout(timer);

  for (const st of states) st.client.off(replies(st));
  await closeClients(clients);
  return { expected, replies: received, seconds, latenciesMs, wrong, outOfOrder, errors, timedOut };
}

export interface StreamOptions {
  url: string;
  /** Streams running side by side, each on its own connection. */
  streams: number;
  /** Streamed turns per stream, one after the other; each turn uses a fresh session. */
  turns: number;
  prefix: string;
  /** The text the model streams; every turn must reassemble exactly this. */
  text: string;
  timeoutMs: number;
}

export interface StreamResult {
  turns: number;
  chars: number;
  seconds: number;
  /** Stream messages (MQTT publishes or SSE chunks with content) per turn, on average. */
  messagesPerTurn: number;
  /** Time to first text, per turn. */
  firstMs: number[];
  /** Time to the end of the stream, per turn. */
  totalMs: number[];
  /** Turns whose reassembled text, final chunk or sequence numbers were not right. */
  wrong: number;
}

/** Streamed turns through llmqtt: `stream: true`, chunks read from `<reply topic>/stream`. */
export async function runMqttStreams(options: StreamOptions): Promise<StreamResult> {
  const { streams, turns, prefix, text } = options;
  const clients = await connectClients(options.url, streams);
  const sid = (s: number, t: number) => `${prefix}-${s}-${t}`;
  await Promise.all(
    clients.map((c, s) =>
      c.subscribe(Array.from({ length: turns }, (_, t) => `${replyTopic(sid(s, t))}/stream`)),
    ),
  );
  const firstMs: number[] = [];
  const totalMs: number[] = [];
  let chars = 0;
  let messages = 0;
  let wrong = 0;

  const turn = (client: LoadClient, sessionId: string) =>
    new Promise<void>((resolve) => {
      const topic = `${replyTopic(sessionId)}/stream`;
      let assembled = "";
      let seq = 0;
      let ok = true;
      let started = 0;
      client.on(topic, (payload) => {
        const now = performance.now();
        const chunk = JSON.parse(payload) as {
          seq: number;
          delta?: string;
          done?: boolean;
          response?: string;
        };
        messages++;
        if (chunk.seq !== seq++) ok = false;
        if (chunk.delta !== undefined) {
          if (assembled === "") firstMs.push(now - started);
          assembled += chunk.delta;
        }
        if (!chunk.done) return;
        totalMs.push(now - started);
        chars += assembled.length;
        if (!ok || assembled !== text || chunk.response !== text) wrong++;
        client.off(topic);
        resolve();
      });
      started = performance.now();
      client.publish(inputTopic(), JSON.stringify({ sessionId, message: "stream, please", stream: true }));
    });

  const started = performance.now();
  const run = Promise.all(
    clients.map(async (client, s) => {
      for (let t = 0; t < turns; t++) await turn(client, sid(s, t));
    }),
  );
  await withTimeout(run, options.timeoutMs);
  const seconds = (performance.now() - started) / 1000;
  await closeClients(clients);
  return streamResult(seconds, { chars, messages, firstMs, totalMs, wrong });
}

/** The openai SDK as llmqtt sets it up, for calls straight to the model server. */
function directClient(serverUrl: string): ModelClient {
  return createModelClient({ root: serverUrl });
}

/** Runs `loops` loops of `each` sequential calls of `call`; seconds until all are done or the timeout. */
async function timedLoops(
  loops: number,
  each: number,
  call: () => Promise<void>,
  timeoutMs: number,
): Promise<number> {
  const started = performance.now();
  const run = Promise.all(
    Array.from({ length: loops }, async () => {
      for (let i = 0; i < each; i++) await call();
    }),
  );
  await withTimeout(run, timeoutMs);
  return (performance.now() - started) / 1000;
}

/**
 * The same streamed turns read straight from the model server with the openai SDK (SSE), set up as
 * llmqtt's (createModelClient).
 */
export async function runDirectStreams(serverUrl: string, options: StreamOptions): Promise<StreamResult> {
  const { streams, turns, text } = options;
  const { openai, close } = directClient(serverUrl);
  const firstMs: number[] = [];
  const totalMs: number[] = [];
  let chars = 0;
  let messages = 0;
  let wrong = 0;
  const turn = async () => {
    const started = performance.now();
    const stream = await openai.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "stream, please" }],
      stream: true,
    });
    let assembled = "";
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content;
      if (!delta) continue;
      if (assembled === "") firstMs.push(performance.now() - started);
      messages++;
      assembled += delta;
    }
    totalMs.push(performance.now() - started);
    chars += assembled.length;
    if (assembled !== text) wrong++;
  };
  const seconds = await timedLoops(streams, turns, turn, options.timeoutMs);
  await close();
  return streamResult(seconds, { chars, messages, firstMs, totalMs, wrong });
}

export interface DirectCallsResult {
  /** Calls answered with the text the fake gives for their message. */
  answered: number;
  wrong: number;
  seconds: number;
}

/**
 * Model calls straight from this process, `loops` at a time, each loop one call after another:
 * with one loop per model slot, the most a client on this machine gets out of those slots.
 */
export async function runDirectCalls(
  serverUrl: string,
  options: { loops: number; calls: number; timeoutMs: number },
): Promise<DirectCallsResult> {
  const { openai, close } = directClient(serverUrl);
  let answered = 0;
  let wrong = 0;
  let n = 0;
  const call = async () => {
    const message = `direct ${n++}`;
    const completion = await openai.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: message }],
    });
    if (completion.choices[0]?.message.content === `reply to: ${message}`) answered++;
    else wrong++;
  };
  const seconds = await timedLoops(options.loops, options.calls, call, options.timeoutMs);
  await close();
  return { answered, wrong, seconds };
}

function streamResult(
  seconds: number,
  counts: { chars: number; messages: number; firstMs: number[]; totalMs: number[]; wrong: number },
): StreamResult {
  const { chars, messages, firstMs, totalMs, wrong } = counts;
  const turns = totalMs.length;
  return { turns, chars, seconds, messagesPerTurn: messages / Math.max(1, turns), firstMs, totalMs, wrong };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
