import { Counter, type Registry } from "prom-client";
import type { TokenUsage } from "../backends/types.js";

/** A project's prompt tokens over the turns whose server said how much of the prompt it reused. */
export interface PromptCacheTotals {
  /** Evaluated by the model for these turns. */
  evaluatedTokens: number;
  /** Reused from the server's prompt cache. */
  cachedTokens: number;
}

/**
 * Prompt tokens evaluated and reused, per project. Only turns whose server reports its cache count
 * here, so the hit ratio is not diluted by servers that cannot say. Kept as plain numbers on the
 * turn path and exported as counters when /metrics is read.
 */
export class PromptCacheStats {
  private readonly totals = new Map<string, PromptCacheTotals>();

  constructor(registry: Registry) {
    const totals = this.totals;
    const counter = (name: string, help: string, value: (t: PromptCacheTotals) => number) =>
      new Counter({
        name,
        help,
        labelNames: ["project"] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const [project, projectTotals] of totals) this.inc({ project }, value(projectTotals));
        },
      });
    counter(
      "llmqtt_prompt_tokens_evaluated_total",
      "Prompt tokens the model server evaluated, by project (turns whose server reports its prompt cache)",
      (t) => t.evaluatedTokens,
    );
    counter(
      "llmqtt_prompt_tokens_cached_total",
      "Prompt tokens the model server reused from its prompt cache, by project",
      (t) => t.cachedTokens,
    );
  }

  record(project: string, usage: TokenUsage): void {
    const { promptTokens, cachedTokens } = usage;
    // Counts a server got wrong are left out, as from llmqtt_tokens_total: prom-client would throw.
    if (!isCount(cachedTokens) || !isCount(promptTokens) || cachedTokens > promptTokens) return;
    let totals = this.totals.get(project);
    if (!totals) this.totals.set(project, (totals = { evaluatedTokens: 0, cachedTokens: 0 }));
    totals.evaluatedTokens += promptTokens - cachedTokens;
    totals.cachedTokens += cachedTokens;
  }

  /** A copy, for the dashboard's snapshot. */
  byProject(): Record<string, PromptCacheTotals> {
    const copy: Record<string, PromptCacheTotals> = {};
    for (const [project, totals] of this.totals) copy[project] = { ...totals };
    return copy;
  }
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}
