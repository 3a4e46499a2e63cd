import { performance } from "node:perf_hooks";
import type { GameClient } from "../test/support/gameClient.js";

/** A conversation sent straight to llama-server, as a minimal gateway would. */
export interface DirectChat {
  url: string;
  system: string;
  history: { role: "user" | "assistant"; content: string }[];
  maxTokens: number;
  stream: boolean;
  /** id_slot: pin the conversation to this slot. */
  slot?: number;
}

export interface ChatTurn {
  completionTokens: number;
  /** Prompt tokens the server evaluated, and the whole prompt (evaluated + reused from cache). */
  promptEvaluated: number;
  promptTokens: number;
}

interface Timings {
  prompt_n: number;
  cache_n: number;
  predicted_n: number;
}

/**
 * One turn of `chat` straight to the server; the answer joins the history. Over `budgetChars`,
 * the oldest pairs go down to half of it (the trimming llmqtt does, in characters).
 */
export async function storyTurn(
  chat: DirectChat,
  message: string,
  budgetChars = Infinity,
): Promise<ChatTurn> {
  chat.history.push({ role: "user", content: message });
  const size = () => chat.system.length + chat.history.reduce((sum, m) => sum + m.content.length, 0);
  if (size() > budgetChars) {
    while (size() > budgetChars / 2 && chat.history.length > 1) chat.history.splice(0, 2);
  }
  const body = JSON.stringify({
    messages: [{ role: "system", content: chat.system }, ...chat.history],
    max_tokens: chat.maxTokens,
    temperature: 1.2,
    top_p: 0.9,
    chat_template_kwargs: { enable_thinking: false },
    cache_prompt: true,
    ...(chat.slot === undefined ? {} : { id_slot: chat.slot }),
    ...(chat.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
  const res = await post(`${chat.url}/v1/chat/completions`, body);
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const { text, timings } = chat.stream ? await readStream(res) : await readAnswer(res);
  chat.history.push({ role: "assistant", content: text });
  return {
    completionTokens: timings.predicted_n,
    promptEvaluated: timings.prompt_n,
    promptTokens: timings.prompt_n + timings.cache_n,
  };
}

/**
 * llama-server closes a kept-alive connection after a few requests; a POST that meets the
 * closed connection fails before any answer, and is sent again.
 */
async function post(url: string, body: string): Promise<Response> {
  const send = () => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      // Each retry may meet another connection the server has just closed; a few are enough.
      if (attempt === 4) throw error;
    }
  }
}

async function readAnswer(res: Response): Promise<{ text: string; timings: Timings }> {
  const body = (await res.json()) as { choices: { message: { content: string } }[]; timings: Timings };
  return { text: body.choices[0]!.message.content, timings: body.timings };
}

async function readStream(res: Response): Promise<{ text: string; timings: Timings }> {
  let text = "";
  let timings: Timings = { prompt_n: 0, cache_n: 0, predicted_n: 0 };
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const events = pending.split("\n\n");
    pending = events.pop() ?? "";
    for (const event of events) {
      const data = event.replace(/^data: /, "");
      if (!data || data === "[DONE]") continue;
      const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; timings?: Timings };
      text += parsed.choices?.[0]?.delta?.content ?? "";
      if (parsed.timings) timings = parsed.timings;
    }
  }
  return { text, timings };
}

/** A maze game snapshot as the game sends it: the player walks on, germs move, the map grows. */
export function mazeState(session: number, turn: number): string {
  return JSON.stringify(mazeSnapshot(session, turn));
}

function mazeSnapshot(session: number, turn: number) {
  const x = 1 + (turn % 9);
  const y = 1 + Math.floor(turn / 9) + session;
  const visible = Array.from({ length: 5 }, (_, row) =>
    Array.from({ length: 5 }, (_, col) => ((row * 7 + col * 3 + turn + session) % 4 === 0 ? 1 : 0)),
  );
  return {
    player_pos: { x, y },
    // The exit tells the sessions apart in what reaches the server.
    exit_pos: [12, 12 + session],
    visible_map: visible,
    germs: [
      { x: (x + 3) % 13, y: (y + 2) % 13 },
      { x: (x + 7) % 13, y: (y + 5) % 13 },
    ],
    oxygenPellets: [{ x: (turn * 5) % 13, y: (turn * 3) % 13 }],
    oxygenCollected: Math.floor(turn / 3),
  };
}

/** One session playing `states` maze states through llmqtt; the hint latencies in order. */
export async function playMaze(
  game: GameClient,
  sessionId: string,
  states: number,
  session: number,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let turn = 0; turn < states; turn++) {
    const started = performance.now();
    await game.publish("maze/state", { sessionId, ...mazeSnapshot(session, turn) });
    await game.next(`maze/hint/${sessionId}`, 60_000);
    latencies.push(performance.now() - started);
  }
  return latencies;
}
