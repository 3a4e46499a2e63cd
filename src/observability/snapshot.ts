import type { ServerStatus } from "./metrics.js";
import type { PromptCacheTotals } from "./promptCache.js";

/** What the dashboard shows and the bridge publishes: the gateway at one moment. */
export interface GatewaySnapshot {
  version: string;
  startedAt: string;
  uptimeSec: number;
  broker: { connected: boolean; url?: string; wsUrl?: string };
  servers: ServerStatus[];
  scheduler: { queued: number; inFlight: number; concurrency: number };
  totals: { received: number; processed: number; errors: number; rejected: number; coalesced: number };
  sessions: { total: number; byProject: Record<string, number> };
  projects: string[];
  /** The latest turns, oldest first: when they finished (epoch ms), how long they took, success. */
  recentTurns: { at: number; latencyMs: number; ok: boolean; project: string }[];
  /** Prompt tokens evaluated and reused from the server's cache, by project (servers that report it). */
  promptCache: Record<string, PromptCacheTotals>;
}

/** A bounded record of the latest turns, for charts; older entries fall off. */
export class RecentTurns {
  private readonly entries: GatewaySnapshot["recentTurns"] = [];

  constructor(private readonly capacity = 300) {}

  add(entry: GatewaySnapshot["recentTurns"][number]): void {
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.shift();
  }

  list(): GatewaySnapshot["recentTurns"] {
    return [...this.entries];
  }
}
