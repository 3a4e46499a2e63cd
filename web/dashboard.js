/* global document, setTimeout */
// The dashboard: polls /api/status and shows it. Plain DOM, no framework.
import { apiFetch } from "./api.js";
import { $, el } from "./dom.js";

const POLL_MS = 2000;
const CHART_TURNS = 80; // most bars drawn
const CHART_MIN_SLOTS = 30; // fewer turns still get bars of this width
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function setBadge(node, ok, text) {
  node.className = `badge ${ok ? "ok" : "bad"}`;
  node.textContent = text;
}

function duration(totalSec) {
  const d = Math.floor(totalSec / 86400);
  const h = Math.floor((totalSec % 86400) / 3600);
  const m = Math.floor((totalSec % 3600) / 60);
  const s = totalSec % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function ms(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

let previous; // { count, at } of the last poll, for turns per second

function turnsPerSecond(totals) {
  const now = { count: totals.processed + totals.errors, at: Date.now() };
  const before = previous;
  previous = now;
  if (!before || now.at <= before.at) return "–";
  const rate = Math.max(0, now.count - before.count) / ((now.at - before.at) / 1000);
  if (rate === 0) return "0";
  return rate >= 10 ? rate.toFixed(0) : rate.toFixed(2);
}

function renderServers(servers) {
  $("servers").replaceChildren(
    ...servers.map((server) => {
      const status = el("span", { "data-testid": "server-status" });
      setBadge(status, server.healthy, server.healthy ? "healthy" : "unhealthy");
      return el(
        "tr",
        {},
        el("td", { class: "mono" }, server.name),
        el("td", {}, status),
        el("td", { class: "num" }, String(server.slots)),
        el("td", { class: "num" }, String(server.inFlight)),
        el("td", { class: "num" }, String(server.served)),
        el("td", { class: server.failed ? "num bad-text" : "num" }, String(server.failed)),
      );
    }),
  );
  if (servers.length === 0) $("servers").append(el("tr", {}, el("td", { colspan: "6" }, "none")));
}

/** Bars of the latest turns' latency, oldest left; red bars failed. */
function renderLatency(turns) {
  const box = $("latency-chart");
  const shown = turns.slice(-CHART_TURNS);
  if (shown.length === 0) {
    $("latency-summary").textContent = "";
    box.replaceChildren(el("p", { class: "muted" }, "No turns yet."));
    return;
  }
  const width = Math.max(box.clientWidth, 300);
  const height = 180;
  const left = 52;
  const bottom = 24;
  const top = 8;
  const sorted = shown.map((t) => t.latencyMs).sort((a, b) => a - b);
  const max = Math.max(sorted[sorted.length - 1], 1);
  const avg = sorted.reduce((sum, v) => sum + v, 0) / sorted.length;
  const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
  $("latency-summary").textContent = `· avg ${ms(avg)} · p95 ${ms(p95)} · last ${shown.length}`;

  const plot = { w: width - left - 4, h: height - top - bottom };
  const slot = plot.w / Math.max(shown.length, CHART_MIN_SLOTS);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latency" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot.h * (1 - fraction);
    chart.append(svg("line", { class: "axis", x1: left, x2: width, y1: y, y2: y }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, ms(max * fraction)));
  }
  shown.forEach((turn, i) => {
    const h = Math.max(1, (turn.latencyMs / max) * plot.h);
    const bar = svg("rect", {
      class: turn.ok ? "ok" : "bad",
      x: left + i * slot + 1,
      y: top + plot.h - h,
      width: Math.max(1, slot - 2),
      height: h,
    });
    bar.append(svg("title", {}, `${turn.project}: ${ms(turn.latencyMs)}${turn.ok ? "" : " (failed)"}`));
    chart.append(bar);
  });
  const time = (at) => new Date(at).toLocaleTimeString();
  const lastX = left + shown.length * slot;
  chart.append(svg("text", { x: lastX, y: height - 4, "text-anchor": "end" }, time(shown.at(-1).at)));
  if (lastX - left > 150) chart.append(svg("text", { x: left, y: height - 4 }, time(shown[0].at)));
  box.replaceChildren(chart);
}

function renderSessions(sessions) {
  $("sessions-total").textContent = `· ${sessions.total}`;
  const rows = Object.entries(sessions.byProject).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...rows.map(([, n]) => n));
  $("sessions").replaceChildren(
    ...rows.map(([project, count]) =>
      el(
        "div",
        { class: "bar-row", "data-project": project },
        el("span", { class: "mono" }, project),
        el("span", { class: "bar" }, el("i", { style: `width: ${(count / max) * 100}%` })),
        el("span", {}, String(count)),
      ),
    ),
  );
}

function percent(part, whole) {
  return whole === 0 ? "–" : `${Math.round((part / whole) * 100)} %`;
}

/** Per project, the share of prompt tokens the model server reused from its cache. */
function renderPromptCache(byProject) {
  const rows = Object.entries(byProject ?? {}).map(([project, t]) => ({
    project,
    cached: t.cachedTokens,
    prompt: t.cachedTokens + t.evaluatedTokens,
  }));
  const cached = rows.reduce((sum, row) => sum + row.cached, 0);
  const prompt = rows.reduce((sum, row) => sum + row.prompt, 0);
  $("cache-summary").textContent = prompt
    ? `· ${percent(cached, prompt)} of ${prompt} prompt tokens reused`
    : "";
  if (rows.length === 0) {
    $("prompt-cache").replaceChildren(
      el("p", { class: "muted" }, "No model server has reported its prompt cache yet."),
    );
    return;
  }
  rows.sort((a, b) => b.prompt - a.prompt);
  $("prompt-cache").replaceChildren(
    ...rows.map((row) => {
      const share = row.prompt ? (row.cached / row.prompt) * 100 : 0;
      return el(
        "div",
        {
          class: "bar-row",
          "data-cache-project": row.project,
          title: `${row.cached} of ${row.prompt} prompt tokens reused, ${row.prompt - row.cached} evaluated`,
        },
        el("span", { class: "mono" }, row.project),
        el("span", { class: "bar" }, el("i", { style: `width: ${share}%` })),
        el("span", {}, percent(row.cached, row.prompt)),
      );
    }),
  );
}

function render(status) {
  $("version").textContent = status.version;
  $("uptime").textContent = duration(status.uptimeSec);
  setBadge(
    $("broker-status"),
    status.broker.connected,
    status.broker.connected ? "connected" : "disconnected",
  );
  $("broker-url").textContent = status.broker.url ?? "–";
  $("broker-ws-url").textContent = status.broker.wsUrl ?? "none";
  $("queued").textContent = status.scheduler.queued;
  $("in-flight").textContent = status.scheduler.inFlight;
  $("concurrency").textContent = status.scheduler.concurrency;
  $("turns-per-sec").textContent = turnsPerSecond(status.totals);
  for (const key of ["received", "processed", "errors", "rejected", "coalesced"]) {
    $(`total-${key}`).textContent = status.totals[key];
  }
  $("total-errors").classList.toggle("bad-text", status.totals.errors > 0);
  renderServers(status.servers);
  renderLatency(status.recentTurns);
  renderSessions(status.sessions);
  renderPromptCache(status.promptCache);
}

async function poll() {
  try {
    const response = await apiFetch("/api/status");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    setBadge($("live"), true, "live");
    $("error").hidden = true;
  } catch (error) {
    setBadge($("live"), false, "offline");
    $("error").textContent = `Cannot reach the gateway's /api/status: ${error.message}. Retrying…`;
    $("error").hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

poll();
