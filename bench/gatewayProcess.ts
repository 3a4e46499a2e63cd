/**
 * Child process: one llmqtt gateway, built from the settings the parent passes, exactly as
 * `llmqtt serve` builds it (external broker, fake model server). Started with --expose-gc so the
 * parent can ask for its memory after a full collection.
 */
import { performance } from "node:perf_hooks";
import { writeHeapSnapshot } from "node:v8";
import { buildSettings, type SettingsInput } from "../src/config/load.js";
import { Gateway } from "../src/gateway.js";
import { createLogger } from "../src/observability/logger.js";
import { childArgs, failStart, serve } from "./ipc.js";

export interface MemoryFigures {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Whether a full GC ran first (needs --expose-gc). */
  collected: boolean;
}

export interface SessionFigures {
  sessions: number;
  messages: number;
  /** UTF-8 bytes of the stored message contents, all sessions. */
  historyBytes: number;
}

/** Several full collections with turns of the event loop between them (finalizers, weak refs). */
async function collectedMemory(): Promise<MemoryFigures> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; gc && i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, external, arrayBuffers, collected: gc !== undefined };
}

export interface HandoffFigures {
  /** Model calls traced. */
  calls: number;
  /** Gateway-internal slot hand-off: a model call's answer arrived -> the next turn's model call began (ms). */
  p50: number;
  p90: number;
  /** A model call, from the gateway's call to its answer having arrived, p50 ms. */
  callP50: number;
}

/**
 * Times every model call at the gateway's backend (wrapping `gateway.backend.chat`; the turn
 * runner looks the method up per call): when it was made, and when its answer had arrived
 * (the call's return). With all slots busy and turns queued, the k-th answer to arrive frees
 * the slot the (k + slots)-th call starts on: the gap between the two is what the gateway itself
 * adds to each slot's cycle (storing and publishing the answered turn, scheduling the next one,
 * opening its session, building its request).
 */
function traceModelCalls(gateway: Gateway) {
  const backend = gateway.backend;
  const chat = backend.chat.bind(backend);
  let starts: number[] = [];
  let answers: number[] = [];
  const durations: number[] = [];
  backend.chat = async (request, signal) => {
    const start = performance.now();
    starts.push(start);
    try {
      return await chat(request, signal);
    } finally {
      const at = performance.now();
      answers.push(at);
      durations.push(at - start);
    }
  };
  return {
    reset: () => {
      starts = [];
      answers = [];
      durations.length = 0;
    },
    handoff: (slots: number): HandoffFigures => {
      const gaps = answers
        .slice(0, Math.max(0, starts.length - slots))
        .map((answer, k) => starts[k + slots]! - answer)
        .sort((a, b) => a - b);
      const at = (values: number[], p: number) =>
        values[Math.min(values.length - 1, Math.floor(p * values.length))] ?? NaN;
      const calls = [...durations].sort((a, b) => a - b);
      return { calls: starts.length, p50: at(gaps, 0.5), p90: at(gaps, 0.9), callP50: at(calls, 0.5) };
    },
  };
}

try {
  const input = childArgs<SettingsInput>();
  const settings = buildSettings(input);
  const gateway = new Gateway(settings, { logger: createLogger(settings.logging.level) });
  await gateway.start();
  // Installed only for the runs that read it: the wrapper costs a closure and a promise per call.
  let trace: ReturnType<typeof traceModelCalls> | undefined;
  serve(
    { slots: gateway.scheduler.concurrency },
    {
      memory: () => collectedMemory(),
      /** Writes a heap snapshot (diagnostics: `bench/heapDiff.ts` compares two). */
      heapSnapshot: async (args: { file: string }) => {
        await collectedMemory();
        return writeHeapSnapshot(args.file);
      },
      /** Starts (or restarts) tracing model calls; `handoff` then reads the trace. */
      traceStart: () => {
        trace ??= traceModelCalls(gateway);
        trace.reset();
      },
      handoff: (args: { slots: number }) => {
        if (!trace) throw new Error("handoff needs traceStart first");
        return trace.handoff(args.slots);
      },
      sessions: async (): Promise<SessionFigures> => {
        let sessions = 0;
        let messages = 0;
        let historyBytes = 0;
        for (const project of gateway.projects.names) {
          for (const sessionId of await gateway.sessions.list(project)) {
            const record = await gateway.sessions.read({ project, sessionId });
            if (!record) continue;
            sessions++;
            messages += record.history.length;
            for (const m of record.history) historyBytes += Buffer.byteLength(m.content, "utf8");
          }
        }
        return { sessions, messages, historyBytes };
      },
      stop: () => gateway.stop(),
    },
  );
} catch (error) {
  failStart(error);
}
