import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Counter, Histogram, Registry } from "prom-client";
import { GatewayMetrics, type MetricSources } from "../../src/observability/metrics.js";

const sources: MetricSources = {
  queueDepth: () => 0,
  inFlight: () => 0,
  activeSessions: async () => 0,
  brokerConnected: () => true,
  servers: () => [],
};

const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];
/** A project name that needs escaping in the exposition format. */
const ODD = 'we"ird\\name\nx';

/**
 * The lines of the named metrics, each sample's labels in a fixed order (the exposition format
 * does not order them), so that two registries' outputs compare as sets of samples.
 */
function samples(text: string, names: string[]): string[] {
  const lines = text.split("\n").filter((line) => names.some((name) => line.includes(name)));
  return lines
    .map((line) => {
      const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
      if (!match) return line;
      const labels = match[2]!.match(/[a-z_]+="(?:[^"\\]|\\.)*"/g)!.sort();
      return `${match[1]}{${labels.join(",")}} ${match[3]}`;
    })
    .sort();
}

describe("GatewayMetrics exposition", () => {
  test("the per-turn counters and histograms keep their names, help, labels and buckets", async () => {
    const metrics = new GatewayMetrics(sources);
    const reference = new Registry();
    const registers = [reference];
    const counter = (name: string, help: string, labelNames: string[]) =>
      new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, labelNames: string[]) =>
      new Histogram({ name, help, labelNames, buckets: BUCKETS, registers });
    const by = "by project and kind";
    const received = counter("llmqtt_messages_received_total", `MQTT messages received, ${by}`, [
      "project",
      "kind",
    ]);
    const published = counter("llmqtt_messages_published_total", `MQTT messages published, ${by}`, [
      "project",
      "kind",
    ]);
    const rejected = counter(
      "llmqtt_rejected_total",
      "Messages refused before reaching the model, by reason",
      ["project", "reason"],
    );
    const tokens = counter(
      "llmqtt_tokens_total",
      "Model tokens, by project and direction (prompt or completion)",
      ["project", "direction"],
    );
    const turnSeconds = histogram(
      "llmqtt_turn_duration_seconds",
      "Time from a turn starting to its reply, by project and outcome",
      ["project", "outcome"],
    );
    const firstToken = histogram(
      "llmqtt_time_to_first_token_seconds",
      "Time from a streamed turn starting to its first text, by project",
      ["project"],
    );

    // On a bound (0.1 s counts in le="0.1"), between bounds, above the last bound, and failures.
    const turns: [string, number, boolean][] = [
      ["general", 100, true],
      ["general", 30, true],
      ["general", 2500, true],
      ["general", 150_000, true],
      ["general", 700, false],
      ["maze", 1, true],
      [ODD, 51, true],
    ];
    for (const [project, latencyMs, ok] of turns) {
      metrics.messageReceived(project, "user_input");
      received.inc({ project, kind: "user_input" });
      metrics.turnFinished(
        project,
        latencyMs,
        ok,
        ok ? { promptTokens: 12, completionTokens: 5 } : undefined,
      );
      turnSeconds.observe({ project, outcome: ok ? "ok" : "error" }, latencyMs / 1000);
      if (ok) {
        tokens.inc({ project, direction: "prompt" }, 12);
        tokens.inc({ project, direction: "completion" }, 5);
      }
      metrics.messagePublished(project, ok ? "reply" : "error");
      published.inc({ project, kind: ok ? "reply" : "error" });
    }
    for (const reason of ["rate_limited", "overloaded", "rate_limited"]) {
      metrics.rejected("general", reason);
      rejected.inc({ project: "general", reason });
    }
    metrics.messageReceived("maze", "maze_state");
    received.inc({ project: "maze", kind: "maze_state" });
    metrics.firstToken("general", 80);
    firstToken.observe({ project: "general" }, 0.08);
    metrics.firstToken(ODD, 20_000);
    firstToken.observe({ project: ODD }, 20);

    const names = [
      "llmqtt_messages_received_total",
      "llmqtt_rejected_total",
      "llmqtt_messages_published_total",
      "llmqtt_turn_duration_seconds",
      "llmqtt_time_to_first_token_seconds",
      "llmqtt_tokens_total",
    ];
    const ours = samples(await metrics.text(), names);
    assert.deepEqual(ours, samples(await reference.metrics(), names));
    // Not vacuous: every metric has samples, escaping included.
    for (const name of names)
      assert.ok(ours.some((line) => line.startsWith(`${name}`) && !line.startsWith("#")));
    assert.ok(ours.includes('llmqtt_turn_duration_seconds_count{outcome="ok",project="general"} 4'));
    assert.ok(ours.some((line) => line.includes('project="we\\"ird\\\\name\\nx"')));
  });

  test("prompt tokens evaluated and cached, per project, from turns whose server reported its cache", async () => {
    const metrics = new GatewayMetrics(sources);
    metrics.turnFinished("general", 10, true, { promptTokens: 100, completionTokens: 5, cachedTokens: 80 });
    metrics.turnFinished("general", 10, true, { promptTokens: 120, completionTokens: 5, cachedTokens: 119 });
    metrics.turnFinished("maze", 10, true, { promptTokens: 50, completionTokens: 5, cachedTokens: 0 });
    // A server that does not say what it reused adds to neither count.
    metrics.turnFinished("racing", 10, true, { promptTokens: 70, completionTokens: 5 });
    const names = ["llmqtt_prompt_tokens_evaluated_total", "llmqtt_prompt_tokens_cached_total"];
    assert.deepEqual(
      samples(await metrics.text(), names).filter((line) => !line.startsWith("#")),
      [
        'llmqtt_prompt_tokens_cached_total{project="general"} 199',
        'llmqtt_prompt_tokens_cached_total{project="maze"} 0',
        'llmqtt_prompt_tokens_evaluated_total{project="general"} 21',
        'llmqtt_prompt_tokens_evaluated_total{project="maze"} 50',
      ],
    );
    assert.deepEqual(metrics.promptCache.byProject(), {
      general: { evaluatedTokens: 21, cachedTokens: 199 },
      maze: { evaluatedTokens: 50, cachedTokens: 0 },
    });
  });

  test("token counts a model server got wrong are not counted, and break nothing", async () => {
    const metrics = new GatewayMetrics(sources);
    const wrong = [-3, Number.NaN, Infinity, "12", undefined] as unknown as number[];
    for (const value of wrong)
      metrics.turnFinished("general", 10, true, { promptTokens: value, completionTokens: 4 });
    const text = await metrics.text();
    assert.match(text, /llmqtt_tokens_total\{project="general",direction="prompt"\} 0\n/);
    assert.match(text, /llmqtt_tokens_total\{project="general",direction="completion"\} 20\n/);
    for (const value of wrong)
      metrics.turnFinished("maze", 10, true, { promptTokens: 10, completionTokens: 4, cachedTokens: value });
    metrics.turnFinished("maze", 10, true, { promptTokens: 10, completionTokens: 4, cachedTokens: 11 });
    assert.deepEqual(metrics.promptCache.byProject(), {});
    assert.doesNotMatch(await metrics.text(), /llmqtt_prompt_tokens_\w+_total\{/);
  });
});
