/* global document, location, window, URL, URLSearchParams, confirm */
// The conversations console: projects with their prompt, sessions page by page, one conversation,
// over the JSON API under /api/projects. Plain DOM, no framework; the location hash says what is
// shown (#<project> or #<project>/<session id>), so views can be linked and reloaded.
import { apiFetch, apiJson } from "./api.js";
import { $, el } from "./dom.js";

const PAGE_SIZE = 50;
const projectPath = (project) => `/api/projects/${encodeURIComponent(project)}`;
const sessionHash = (project, id) => `#${encodeURIComponent(project)}/${encodeURIComponent(id)}`;
const when = (iso) => new Date(iso).toLocaleString();

let projects = []; // the last /api/projects answer
let shown = { project: undefined, sessionId: undefined };
let nextCursor = null;

function showError(error) {
  $("error").textContent = error ? String(error.message ?? error) : "";
  $("error").hidden = !error;
}

async function loadProjects() {
  ({ projects } = await apiJson("/api/projects"));
  $("projects").replaceChildren(
    ...projects.map((p) =>
      el(
        "tr",
        { "data-project": p.name, class: p.name === shown.project ? "selected" : "" },
        el("td", {}, el("a", { href: `#${encodeURIComponent(p.name)}`, class: "mono" }, p.name)),
        el("td", { class: "num" }, String(p.sessions)),
        el("td", { class: "num" }, String(p.turns)),
        el("td", { class: "num" }, `${p.tokensIn} / ${p.tokensOut}`),
      ),
    ),
  );
}

function sessionRow(project, session) {
  return el(
    "tr",
    { "data-session": session.id, class: session.id === shown.sessionId ? "selected" : "" },
    el("td", {}, el("a", { href: sessionHash(project, session.id), class: "mono" }, session.id)),
    el("td", { class: "num" }, String(session.turns)),
    el("td", { class: "num" }, `${session.tokensIn} / ${session.tokensOut}`),
    el("td", {}, when(session.lastActiveAt)),
  );
}

/** The first page of the project's sessions, or the next one after those shown. */
async function loadSessions(project, more = false) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (more && nextCursor) query.set("cursor", nextCursor);
  const page = await apiJson(`${projectPath(project)}/sessions?${query}`);
  const rows = page.sessions.map((session) => sessionRow(project, session));
  if (more) $("sessions").append(...rows);
  else $("sessions").replaceChildren(...rows);
  if (page.total === 0) $("sessions").append(el("tr", {}, el("td", { colspan: "4" }, "No sessions yet.")));
  $("sessions-count").textContent = `· ${page.total}`;
  nextCursor = page.nextCursor;
  $("more").hidden = !nextCursor;
}

async function showConversation(project, sessionId) {
  const box = $("conversation");
  box.hidden = false;
  $("conversation-id").textContent = sessionId;
  const session = await apiJson(`${projectPath(project)}/sessions/${encodeURIComponent(sessionId)}`);
  const bubble = (role, text) => el("div", { class: `msg ${role}`, "data-role": role }, text);
  const system = bubble("system", session.systemPrompt);
  const turns = session.history.map((m) =>
    bubble(m.role, m.images?.length ? `${m.content}\n[${m.images.length} image(s)]` : m.content),
  );
  const empty = turns.length ? [] : [el("p", { class: "empty" }, "No turns since the last clear.")];
  $("messages").replaceChildren(system, ...turns, ...empty);
  const info = `${session.turns} turns · ~${session.tokensIn} / ${session.tokensOut} tokens · ${when(session.lastActiveAt)}`;
  $("messages").append(el("p", { class: "muted" }, info));
}

async function route() {
  const [project, sessionId] = location.hash.slice(1).split("/").map(decodeURIComponent);
  const known = projects.find((p) => p.name === project);
  shown = { project: known ? project : undefined, sessionId: known ? sessionId : undefined };
  for (const row of document.querySelectorAll("#projects tr"))
    row.classList.toggle("selected", row.dataset.project === shown.project);
  $("project").hidden = !known;
  $("conversation").hidden = true;
  if (!known) return;
  $("project-name").textContent = project;
  $("prompt").value = known.systemPrompt;
  $("prompt-status").textContent = "";
  await loadSessions(project);
  if (sessionId) await showConversation(project, sessionId);
}

async function savePrompt(event) {
  event.preventDefault();
  const { project } = shown;
  const reset = $("prompt-reset").checked;
  const result = await apiJson(`${projectPath(project)}/prompt`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ systemPrompt: $("prompt").value, reset }),
  });
  await loadProjects();
  await route();
  $("prompt-status").textContent =
    `Saved · ${result.sessionsUpdated} session(s) updated` + (reset ? ", histories cleared" : "");
}

async function clearConversation() {
  const { project, sessionId } = shown;
  if (!confirm(`Clear the conversation of session ${sessionId}? Its system prompt stays.`)) return;
  await apiJson(`${projectPath(project)}/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE" });
  await loadProjects();
  await route();
}

/** Downloads need the token too, so they go through fetch and a blob rather than a plain link. */
async function exportProject(format) {
  const response = await apiFetch(`${projectPath(shown.project)}/export?format=${format}`);
  if (!response.ok)
    throw new Error((await response.json().catch(() => ({}))).error ?? `HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: `${shown.project}-conversations.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

/** Runs a handler, showing its failure in the banner instead of losing it. */
const guarded =
  (handler) =>
  async (...args) => {
    try {
      showError();
      await handler(...args);
    } catch (error) {
      showError(error);
    }
  };

$("prompt-form").addEventListener("submit", guarded(savePrompt));
$("clear").addEventListener("click", guarded(clearConversation));
$("more").addEventListener(
  "click",
  guarded(() => loadSessions(shown.project, true)),
);
for (const button of document.querySelectorAll("[data-format]"))
  button.addEventListener(
    "click",
    guarded(() => exportProject(button.dataset.format)),
  );
window.addEventListener("hashchange", guarded(route));
guarded(async () => {
  await loadProjects();
  await route();
})();
