import { setImmediate as nextLoopTurn } from "node:timers/promises";
import type { SessionManager } from "../sessions/manager.js";
import { TokenEstimator } from "../sessions/tokens.js";
import type { StoredSession } from "../sessions/types.js";

/** A session at a glance, for lists; tokens are estimated from the stored messages. */
export interface SessionSummary {
  id: string;
  turns: number;
  tokensIn: number;
  tokensOut: number;
  createdAt: string;
  lastActiveAt: string;
}

/** Sessions read at once from the store when many are needed (a store round trip each). */
const PEEK_BATCH = 100;

/**
 * The conversations of the session store as operators see them: read with `peek`, so looking
 * never keeps a session from expiring, and in session id order, so pages stay put while new
 * sessions arrive. The stores keep no token counts: these are estimates (characters over the
 * estimator's ratio) of the stored user messages (in) and replies (out).
 */
export class Conversations {
  constructor(
    private readonly sessions: SessionManager,
    private readonly estimator = new TokenEstimator(),
  ) {}

  /** Session ids of a project in a stable order: by code unit, as the cursor compares them. */
  async ids(project: string): Promise<string[]> {
    return (await this.sessions.list(project)).sort(compareIds);
  }

  /** One page of session ids after `afterId` (none: from the start), and whether more follow. */
  async page(
    project: string,
    limit: number,
    afterId?: string,
  ): Promise<{ ids: string[]; total: number; more: boolean }> {
    const ids = await this.ids(project);
    const start = afterId === undefined ? 0 : ids.findIndex((id) => compareIds(id, afterId) > 0);
    const rest = start === -1 ? [] : ids.slice(start);
    return { ids: rest.slice(0, limit), total: ids.length, more: rest.length > limit };
  }

  /**
   * The sessions still there among `ids`, in their order; read in batches. The SQLite store reads
   * synchronously, so between batches turns get the event loop: a long listing or export never
   * holds up the gateway's replies for more than one batch.
   */
  async *read(project: string, ids: readonly string[]): AsyncGenerator<StoredSession[]> {
    for (let i = 0; i < ids.length; i += PEEK_BATCH) {
      if (i > 0) await nextLoopTurn();
      const batch = ids.slice(i, i + PEEK_BATCH);
      const records = await Promise.all(batch.map((sessionId) => this.sessions.peek({ project, sessionId })));
      yield records.filter((record) => record !== undefined);
    }
  }

  async summaries(project: string, ids: readonly string[]): Promise<SessionSummary[]> {
    const out: SessionSummary[] = [];
    for await (const batch of this.read(project, ids)) out.push(...batch.map((r) => this.summary(r)));
    return out;
  }

  summary(record: StoredSession): SessionSummary {
    let turns = 0;
    let tokensIn = 0;
    let tokensOut = 0;
    for (const message of record.history) {
      const tokens = this.estimator.estimateMessage(message);
      if (message.role === "assistant") {
        tokensOut += tokens;
      } else {
        tokensIn += tokens;
        if (message.role === "user") turns++;
      }
    }
    return {
      id: record.sessionId,
      turns,
      tokensIn,
      tokensOut,
      createdAt: iso(record.createdAt),
      lastActiveAt: iso(record.lastActiveAt),
    };
  }
}

export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function iso(epochMs: number): string {
  return new Date(epochMs).toISOString();
}
