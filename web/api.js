/* global document, fetch, sessionStorage, Headers */
// Calls to the gateway's /api for the pages. When the gateway has an access token (--http-token),
// the first call answered 401 asks for it, once per browser tab (sessionStorage), and every call
// then carries it as Authorization: Bearer.

const TOKEN_KEY = "llmqtt.httpToken";
let asking; // the open token prompt, shared by calls that were refused meanwhile

/** fetch() for /api paths, with the token; asks for it (again) whenever the gateway refuses. */
export async function apiFetch(path, init = {}) {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = new Headers(init.headers);
    if (token) headers.set("authorization", `Bearer ${token}`);
    const response = await fetch(path, { cache: "no-store", ...init, headers });
    if (response.status !== 401) return response;
    if (token) sessionStorage.removeItem(TOKEN_KEY);
    await askForToken(token ? "That token was not accepted." : "");
  }
}

/** The JSON of a successful answer; otherwise an Error with the API's own message. */
export async function apiJson(path, init) {
  const response = await apiFetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

function askForToken(problem) {
  asking ??= new Promise((resolve) => {
    const input = Object.assign(document.createElement("input"), {
      type: "password",
      required: true,
      autocomplete: "current-password",
    });
    input.dataset.testid = "token-input";
    const note = Object.assign(document.createElement("p"), { className: "muted", textContent: problem });
    const button = Object.assign(document.createElement("button"), { type: "submit", textContent: "Unlock" });
    const heading = Object.assign(document.createElement("h2"), { textContent: "Access token" });
    const help = Object.assign(document.createElement("p"), {
      textContent: "This gateway needs its access token (--http-token). It is kept in this tab only.",
    });
    const label = Object.assign(document.createElement("label"), { textContent: "Token" });
    label.append(input);
    const form = Object.assign(document.createElement("form"), { method: "dialog" });
    form.append(heading, help, label, note, button);
    const dialog = document.createElement("dialog");
    dialog.dataset.testid = "token-dialog";
    dialog.className = "card token-dialog";
    dialog.append(form);
    // Escape would close the dialog with nothing to retry with; the pages need the token.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      dialog.close();
      dialog.remove();
      asking = undefined;
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
  return asking;
}
