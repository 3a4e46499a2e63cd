/**
 * Child process: the fake OpenAI-compatible model server of test/support, reconfigurable between
 * scenarios (reply delay, streamed text), with its request count and peak concurrency on demand.
 */
import type http from "node:http";
import { performance } from "node:perf_hooks";
import { FakeModelServer, type FakeReply } from "../test/support/fakeModelServer.js";
import { childArgs, failStart, serve } from "./ipc.js";

export interface FakeConfig {
  /** Every reply leaves this long after its request arrived (a model taking its time); 0 = answer at once. */
  delayMs?: number;
  /** Fixed reply text; default: the fake's `reply to: <message>`. */
  text?: string;
}

export interface FakeStats {
  requests: number;
  maxInFlight: number;
  /**
   * With all slots busy, the request that takes the slot answer k freed is the (k + slots)-th
   * to arrive: the gap between answer k leaving (response finished) and that arrival is the time
   * the slot sat idle while the gateway turned it around. Percentiles in ms.
   */
  idleP50: number;
  idleP90: number;
  /** Arrival of a request to its response finished, p50 ms (the delay plus the fake's own work). */
  serviceP50: number;
  /** Share of slot time spent serving, from the first arrival to the last answer. */
  busyShare: number;
}

export interface FakeInfo {
  url: string;
}

let config: FakeConfig = {};
/** Chat requests since the last configure: arrival and response finished (performance.now, ms). */
let calls: { arrived: number; finished?: number }[] = [];

function quantile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

function slotStats(slots: number): Omit<FakeStats, "requests" | "maxInFlight"> {
  const done = calls.filter((c) => c.finished !== undefined) as { arrived: number; finished: number }[];
  const arrivals = done.map((c) => c.arrived).sort((a, b) => a - b);
  const finishes = done.map((c) => c.finished).sort((a, b) => a - b);
  const idle = finishes
    .slice(0, Math.max(0, arrivals.length - slots))
    .map((f, k) => arrivals[k + slots]! - f);
  const busy = done.reduce((sum, c) => sum + c.finished - c.arrived, 0);
  const span = finishes.length ? finishes[finishes.length - 1]! - arrivals[0]! : NaN;
  return {
    idleP50: quantile(idle, 0.5),
    idleP90: quantile(idle, 0.9),
    serviceP50: quantile(
      done.map((c) => c.finished - c.arrived),
      0.5,
    ),
    busyShare: busy / (slots * span),
  };
}

try {
  const { slots } = childArgs<{ slots: number }>();
  const fake = await FakeModelServer.start({
    slots,
    recordRequests: false,
    handler: () => {
      const reply: FakeReply = {};
      if (config.delayMs) reply.delayMs = config.delayMs;
      if (config.text !== undefined) reply.text = config.text;
      return reply;
    },
  });
  // Timing from the HTTP server itself: arrival of the request, response fully written.
  const server = (fake as unknown as { server: http.Server }).server;
  server.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.method !== "POST") return;
    const call: { arrived: number; finished?: number } = { arrived: performance.now() };
    calls.push(call);
    res.once("finish", () => (call.finished = performance.now()));
  });
  serve({ url: fake.url } satisfies FakeInfo, {
    configure: (next: FakeConfig) => {
      config = next;
      calls = [];
      fake.resetStats();
    },
    stats: (): FakeStats => ({
      requests: fake.requestCount,
      maxInFlight: fake.maxInFlight,
      ...slotStats(slots),
    }),
    stop: () => fake.stop(),
  });
} catch (error) {
  failStart(error);
}
