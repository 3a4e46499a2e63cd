/* global location, setTimeout, URL */
// The playground: talks to llmqtt over MQTT-over-WebSocket exactly as a browser game would, with
// the client library (llmqtt/client): each message is a streaming turn on `P/user_input`.

import { connect } from "/assets/llmqtt/client/index.js";
import { apiJson } from "./api.js";
import { $, el } from "./dom.js";

const NO_REPLY_MS = 180_000;
const RETRY_MS = 3000;

const randomId = () => Math.random().toString(36).slice(2, 10);

const clientId = `playground-${randomId()}`;
const autoSession = `playground-${randomId()}`;
let client;
/** Bumped on every (re)connect, so an older attempt that finishes late is dropped. */
let generation = 0;

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function setStatus(ok, text) {
  $("mqtt-status").className = `badge ${ok ? "ok" : "bad"}`;
  $("mqtt-status").textContent = text;
  $("send").disabled = !ok;
}

/** The session id as the gateway will use it: one topic level (PROTOCOL B10). */
function sessionId() {
  const given = $("session").value.trim() || autoSession;
  return given.replace(/[+#/]|\p{Cc}/gu, "_").slice(0, 128);
}

function showTopics() {
  const project = $("project").value || "P";
  $("input-topic").textContent = `${project}/user_input`;
  $("reply-topic").textContent = `${project}/assistant_response/${sessionId()}/${clientId}/#`;
}

/** A broker URL on loopback means "this machine": from another machine, use the page's host. */
function reachable(wsUrl) {
  const url = new URL(wsUrl);
  const loopback = (host) => ["127.0.0.1", "localhost", "[::1]"].includes(host);
  if (!loopback(url.hostname) || loopback(location.hostname)) return wsUrl;
  url.hostname = location.hostname;
  return url.toString();
}

/** One connection at a time; a broker that is not there yet is tried again every few seconds. */
async function open(wsUrl) {
  const attempt = ++generation;
  const previous = client;
  client = undefined;
  await previous?.close();
  $("broker").textContent = wsUrl;
  setStatus(false, "connecting");
  try {
    const opened = await connect(wsUrl, {
      clientId,
      username: $("username").value || undefined,
      password: $("password").value || undefined,
      timeoutMs: NO_REPLY_MS,
      onConnectionChange: (event) =>
        event === "lost" ? setStatus(false, "reconnecting") : setStatus(true, "connected"),
    });
    if (attempt !== generation) return opened.close();
    client = opened;
    setStatus(true, "connected");
    showError("");
  } catch (error) {
    if (attempt !== generation) return;
    setStatus(false, "offline");
    showError(`MQTT over WebSocket (${wsUrl}): ${error.message}`);
    setTimeout(() => attempt === generation && open(wsUrl), RETRY_MS);
  }
}

function scrollDown() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function addTurn(message) {
  const box = $("messages");
  box.querySelector(".empty")?.remove();
  const text = el("span", { class: "text" });
  const bubble = el("div", { class: "msg assistant streaming", "data-testid": "reply" }, text);
  box.append(el("div", { class: "msg user", "data-testid": "user-message" }, message), bubble);
  scrollDown();
  return { bubble, text };
}

/** The final state of a turn: its reply with timing, finish reason and tokens, or its error. */
function finish(turn, { reply, error }) {
  turn.bubble.classList.remove("streaming");
  turn.bubble.classList.toggle("error", error !== undefined);
  turn.bubble.dataset.state = error === undefined ? "done" : "error";
  if (error !== undefined) {
    turn.text.textContent = `Error: ${error.message}`;
  } else {
    turn.text.textContent = reply.text;
    const parts = [`${(reply.latencyMs / 1000).toFixed(1)} s`];
    if (reply.finishReason) parts.push(reply.finishReason);
    if (reply.usage) {
      const { promptTokens, completionTokens, cachedTokens } = reply.usage;
      const cached = cachedTokens === undefined ? "" : ` (${cachedTokens} cached)`;
      parts.push(`${promptTokens} prompt${cached} + ${completionTokens} reply tokens`);
    }
    turn.bubble.append(el("span", { class: "info" }, parts.join(" · ")));
  }
  scrollDown();
}

async function send(event) {
  event.preventDefault();
  const message = $("message").value;
  if (!message.trim() || !client?.connected) return;
  $("message").value = "";
  const turn = addTurn(message);
  const systemPrompt = $("system-prompt").value.trim() || undefined;
  try {
    const stream = client.stream($("project").value, message, { sessionId: sessionId(), systemPrompt });
    for await (const part of stream) {
      if (part.type === "reply") return finish(turn, { reply: part.reply });
      turn.text.textContent += part.text;
      scrollDown();
    }
  } catch (error) {
    finish(turn, { error });
  }
}

async function start() {
  $("session").placeholder = autoSession;
  let status;
  try {
    status = await apiJson("/api/status");
  } catch (error) {
    setStatus(false, "no gateway");
    return showError(`Cannot read the gateway's /api/status: ${error.message}. Reload to try again.`);
  }
  const projects = status.projects ?? [];
  $("project").replaceChildren(...projects.map((name) => el("option", { value: name }, name)));
  if (projects.includes("general")) $("project").value = "general";
  showTopics();
  for (const id of ["project", "session"]) $(id).addEventListener("input", showTopics);
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });

  const wsUrl = status.broker?.wsUrl;
  if (!wsUrl) {
    setStatus(false, "no WebSocket URL");
    return showError(
      "The playground needs a broker WebSocket URL, and the gateway has none. Use the embedded broker " +
        "(its WebSocket port, --broker-ws-port, is on by default) or start llmqtt with " +
        "--broker-ws-url ws://<host>:<port> pointing at your broker's WebSocket listener.",
    );
  }
  const url = reachable(wsUrl);
  await open(url);
  for (const id of ["username", "password"]) $(id).addEventListener("change", () => open(url));
}

start();
