/**
 * `npm run bench:real`: llmqtt against the real llama-server (../shared/bin, tiny model), figures
 * only, never pass/fail. Token counts come from llama-server's own `timings` (prompt_n evaluated,
 * cache_n reused), so R2 and A do not depend on the machine's speed; R1 and R3 do.
 *
 *   R1  completion tokens/s through llmqtt / straight HTTP to the same server, 8 sessions,
 *       streamed and not (paired rounds, median ratio)
 *   R2  maze flow, 1 and 8 sessions x 40 states: prompt tokens evaluated / prompt tokens over
 *       turns 10-40, and p50 hint latency there vs before the budget is reached, per low-water mark
 *   R3  latency llmqtt adds per turn (paired with the same request sent straight), p50 / p99
 *   A   slot affinity: prompt tokens evaluated with id_slot pinned per session vs the server's own
 *       choice, with more sessions than slots and fewer (straight HTTP)
 *
 * Options (after `npm run bench:real --`): --only R1,R2,R3,A; for R2 --low-water 1,0.5 (the
 * marks to compare; 1 trims on every turn, as llmqtt did before) and --sessions 1,8
 */
import { performance } from "node:perf_hooks";
import { startAedes, type TestBroker } from "../test/support/brokers.js";
import type { GameClient } from "../test/support/gameClient.js";
import { LlamaServer, llamaServerSkip } from "../test/support/llamaServer.js";
import { startRealRig, type RealRig } from "../test/support/realRig.js";
import { RecordingProxy, type RecordedExchange } from "../test/support/recordingProxy.js";
import { mazeState, playMaze, storyTurn, type ChatTurn, type DirectChat } from "./realServerFlows.js";
import { fixed, median, summarize, table } from "./stats.js";

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 ? argv[at + 1] : undefined;
};
const only = option("only")?.split(",");
const lowWaters = (option("low-water") ?? "1,0.5").split(",").map(Number);
const r2Sessions = (option("sessions") ?? "1,8").split(",").map(Number);
const wanted = (name: string) => !only || only.includes(name);

async function main(): Promise<void> {
  const skip = llamaServerSkip();
  if (skip) throw new Error(`cannot run: ${skip}`);
  const broker = await startAedes();
  try {
    if (wanted("R1")) await r1(broker);
    if (wanted("R2")) await r2(broker);
    if (wanted("R3")) await r3(broker);
    if (wanted("A")) await affinity();
  } finally {
    await broker.stop();
  }
}

/** A server, and llmqtt on it (through a recording proxy when `record`). */
async function withRig<T>(
  broker: TestBroker,
  server: { ctx: number; parallel: number },
  settings: Parameters<typeof startRealRig>[2],
  run: (rig: RealRig, llama: LlamaServer, proxy: RecordingProxy) => Promise<T>,
): Promise<T> {
  const llama = await LlamaServer.start(server);
  const proxy = await RecordingProxy.start(llama.url);
  try {
    const rig = await startRealRig(broker, [proxy.url], { logging: { level: "warn" }, ...settings });
    try {
      return await run(rig, llama, proxy);
    } finally {
      await rig.stop();
    }
  } finally {
    await proxy.stop();
    await llama.stop();
  }
}

// R1 ------------------------------------------------------------------------------------------

const R1_SESSIONS = 8;
const R1_TURNS = 6;
const R1_MAX_TOKENS = 64;
const R1_ROUNDS = 5;

async function r1(broker: TestBroker): Promise<void> {
  // Straight to the server, not through the proxy: both sides talk to llama-server itself.
  const llama = await LlamaServer.start({ ctx: 16_384, parallel: R1_SESSIONS });
  const rig = await startRealRig(broker, [llama.url], {
    logging: { level: "warn" },
    sampling: { maxTokens: R1_MAX_TOKENS },
  });
  const system = rig.gateway.projects.get("general").systemPrompt;
  const rows: string[][] = [];
  try {
    for (const stream of [false, true]) {
      const ratios: number[] = [];
      const rates: [number, number][] = [];
      for (let round = 0; round < R1_ROUNDS; round++) {
        const tag = `${stream ? "s" : "n"}${round}`;
        const direct = await directRate(llama.url, system, stream, tag).catch((error: unknown) => {
          throw new Error(`straight to llama-server: ${String(error)}\n${llama.log.slice(-3000)}`);
        });
        const viaLlmqtt = await llmqttRate(rig.game, stream, tag);
        ratios.push(viaLlmqtt / direct);
        rates.push([viaLlmqtt, direct]);
      }
      rows.push([
        stream ? "streamed" : "not streamed",
        fixed(median(rates.map(([, d]) => d))),
        fixed(median(rates.map(([l]) => l))),
        fixed(median(ratios), 3),
        ratios.map((r) => fixed(r, 2)).join(" "),
      ]);
    }
  } finally {
    await rig.stop();
    await llama.stop();
  }
  console.log(
    `\nR1  completion tokens/s, ${R1_SESSIONS} sessions x ${R1_TURNS} turns, max_tokens ${R1_MAX_TOKENS}, ${R1_ROUNDS} paired rounds (target >= 0.97)`,
  );
  console.log(table(["", "direct tok/s", "llmqtt tok/s", "ratio (median)", "ratios"], rows));
}

/** Completion tokens per second of R1_SESSIONS conversations sent straight to the server. */
async function directRate(url: string, system: string, stream: boolean, tag: string): Promise<number> {
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: R1_SESSIONS }, async (_, session) => {
      const chat: DirectChat = { url, system, history: [], maxTokens: R1_MAX_TOKENS, stream };
      let tokens = 0;
      for (let turn = 0; turn < R1_TURNS; turn++) {
        tokens += (await storyTurn(chat, `${tag}-${session}: ${turn}`)).completionTokens;
      }
      return tokens;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
}

/** The same through llmqtt, as a game: one turn at a time per session, JSON envelope for usage. */
async function llmqttRate(game: GameClient, stream: boolean, tag: string): Promise<number> {
  const started = performance.now();
  const counts = await Promise.all(
    Array.from({ length: R1_SESSIONS }, async (_, session) => {
      const sessionId = `r1-${tag}-${session}`;
      let tokens = 0;
      for (let turn = 0; turn < R1_TURNS; turn++) {
        await game.publish("general/user_input", {
          sessionId,
          message: `${tag}-${session}: ${turn}`,
          responseFormat: "json",
          stream,
        });
        const reply = JSON.parse((await game.next(`general/assistant_response/${sessionId}`, 60_000)).text);
        tokens += reply.usage.completionTokens as number;
      }
      return tokens;
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
}

// R2 ------------------------------------------------------------------------------------------

const R2_STATES = 40;

async function r2(broker: TestBroker): Promise<void> {
  const rows: string[][] = [];
  for (const sessions of r2Sessions) {
    for (const lowWater of lowWaters) {
      const figures = await withRig(
        broker,
        { ctx: 8192, parallel: 4 },
        { projects: ["maze"], sampling: { maxTokens: 24 }, sessions: { historyLowWater: lowWater } },
        (rig, _llama, proxy) => mazeRun(rig, proxy, sessions),
      );
      rows.push([
        String(sessions),
        fixed(lowWater, 2),
        fixed(figures.evaluatedShare, 3),
        fixed(figures.promptMean),
        String(figures.firstTrim ?? "-"),
        String(figures.trims),
        fixed(figures.preBudgetP50, 1),
        fixed(figures.p50, 1),
        fixed(figures.p50 / figures.preBudgetP50, 2),
      ]);
    }
  }
  console.log(
    `\nR2  maze flow, ${R2_STATES} states per session, max_tokens 24, -c 8192 --parallel 4 (targets: evaluated <= 0.25, p50 <= 1.3x pre-budget)`,
  );
  console.log(
    table(
      [
        "sessions",
        "low water",
        "evaluated/prompt 10-40",
        "prompt tokens",
        "first trim",
        "trims",
        "p50 ms pre-budget",
        "p50 ms 10-40",
        "x",
      ],
      rows,
    ),
  );
}

interface MazeFigures {
  evaluatedShare: number;
  promptMean: number;
  firstTrim?: number;
  trims: number;
  preBudgetP50: number;
  p50: number;
}

async function mazeRun(rig: RealRig, proxy: RecordingProxy, sessions: number): Promise<MazeFigures> {
  const latencies = await Promise.all(
    Array.from({ length: sessions }, (_, s) => playMaze(rig.game, `r2-${s}`, R2_STATES, s)),
  );
  await new Promise((resolve) => setTimeout(resolve, 50)); // the last answers' timings
  const bySession = new Map<number, RecordedExchange[]>();
  for (const exchange of proxy.chats) {
    const messages = exchange.body["messages"] as { content: string }[];
    const state = JSON.parse(messages.at(-1)!.content.split("\n\n")[0]!) as { exit_pos: number[] };
    const session = state.exit_pos[1]! - 12;
    bySession.set(session, [...(bySession.get(session) ?? []), exchange]);
  }
  let evaluated = 0;
  let prompt = 0;
  let trims = 0;
  let firstTrim: number | undefined;
  const pre: number[] = [];
  const late: number[] = [];
  [...bySession.entries()].forEach(([s, exchanges]) => {
    let previousStart: string | undefined;
    exchanges.forEach((exchange, turn) => {
      // A trim changes the oldest turn sent: the prompt no longer starts as the last one did.
      const messages = exchange.body["messages"] as { content: string }[];
      const start = messages.length > 2 ? messages[1]!.content : undefined;
      const trimmed = previousStart !== undefined && start !== previousStart;
      previousStart = start;
      if (trimmed) {
        trims++;
        if (s === 0 && firstTrim === undefined) firstTrim = turn + 1;
      }
      if (turn + 1 >= 10) {
        evaluated += exchange.timings?.prompt_n ?? 0;
        prompt += (exchange.timings?.prompt_n ?? 0) + (exchange.timings?.cache_n ?? 0);
      }
    });
  });
  for (const sessionLatencies of latencies) {
    sessionLatencies.forEach((ms, turn) => {
      if (turn + 1 >= 10) late.push(ms);
      else if (turn >= 1 && (firstTrim === undefined || turn + 1 < firstTrim)) pre.push(ms);
    });
  }
  const turnsCounted = sessions * (R2_STATES - 9);
  return {
    evaluatedShare: evaluated / prompt,
    promptMean: prompt / turnsCounted,
    firstTrim,
    trims,
    preBudgetP50: summarize(pre).p50,
    p50: summarize(late).p50,
  };
}

// R3 ------------------------------------------------------------------------------------------

const R3_TURNS = 200;

async function r3(broker: TestBroker): Promise<void> {
  const llama = await LlamaServer.start({ ctx: 4096, parallel: 2 });
  const rig = await startRealRig(broker, [llama.url], {
    logging: { level: "warn" },
    sampling: { maxTokens: 8 },
  });
  const system = rig.gateway.projects.get("general").systemPrompt;
  const added: number[] = [];
  try {
    for (let i = 0; i < R3_TURNS + 10; i++) {
      // The same one-turn prompt every time, so the server's work is the same on both paths.
      const chat: DirectChat = { url: llama.url, system, history: [], maxTokens: 8, stream: false };
      const t0 = performance.now();
      await storyTurn(chat, "Tell me a story");
      const direct = performance.now() - t0;
      const t1 = performance.now();
      await rig.game.publish("general/user_input", { sessionId: `r3-${i}`, message: "Tell me a story" });
      await rig.game.next(`general/assistant_response/r3-${i}`, 30_000);
      const viaLlmqtt = performance.now() - t1;
      if (i >= 10) added.push(viaLlmqtt - direct);
    }
  } finally {
    await rig.stop();
    await llama.stop();
  }
  const { p50, p99 } = summarize(added);
  console.log(
    `\nR3  latency llmqtt adds per turn (MQTT both ways, gateway), ${R3_TURNS} paired turns (target p50 <= 2 ms)`,
  );
  console.log(table(["p50 ms", "p99 ms"], [[fixed(p50, 2), fixed(p99, 2)]]));
}

// A -------------------------------------------------------------------------------------------

const A_STATES = 20;

async function affinity(): Promise<void> {
  const rows: string[][] = [];
  for (const [sessions, parallel] of [
    [8, 4],
    [2, 4],
  ] as const) {
    for (const pinned of [false, true]) {
      const llama = await LlamaServer.start({ ctx: 2048 * parallel, parallel });
      try {
        let evaluated = 0;
        let prompt = 0;
        await Promise.all(
          Array.from({ length: sessions }, async (_, s) => {
            const chat: DirectChat = {
              url: llama.url,
              system: "You give short hints for a maze game.",
              history: [],
              maxTokens: 24,
              stream: false,
              ...(pinned ? { slot: s % parallel } : {}),
            };
            for (let turn = 0; turn < A_STATES; turn++) {
              const answer: ChatTurn = await storyTurn(chat, mazeState(s, turn), 1400);
              evaluated += answer.promptEvaluated;
              prompt += answer.promptTokens;
            }
          }),
        );
        rows.push([
          `${sessions} sessions / ${parallel} slots`,
          pinned ? "id_slot = session % slots" : "server's choice",
          String(evaluated),
          fixed(evaluated / prompt, 3),
        ]);
      } finally {
        await llama.stop();
      }
    }
  }
  console.log(`\nA   slot affinity, maze states straight to llama-server, ${A_STATES} turns per session`);
  console.log(table(["", "slot", "prompt tokens evaluated", "evaluated/prompt"], rows));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
