/* global document, location, URLSearchParams */
// The maze hint flow with llmqtt/client: every move publishes the game state on maze/state and
// the hint that comes back (JSON: a hint, plus actions when the gateway offers the maze tools)
// is shown. The broker is the page's ?broker= (MQTT over WebSocket, e.g. llmqtt's embedded
// broker on ws://localhost:9001).

import { connect } from "/llmqtt/client/index.js";

const SIZE = 7;
const WALLS = new Set(["1,1", "1,2", "1,3", "3,3", "4,3", "5,3", "3,5", "4,5", "5,1"]);
const EXIT = [6, 6];
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const brokerUrl = params.get("broker") ?? `ws://${location.hostname}:9001`;
let player = [0, 0];
let client;
/** Only the hint for the newest state is shown; older ones are dropped when they arrive late. */
let latest = 0;

function draw() {
  $("maze").replaceChildren(
    ...Array.from({ length: SIZE * SIZE }, (_, i) => {
      const [x, y] = [i % SIZE, Math.floor(i / SIZE)];
      const cell = document.createElement("div");
      if (WALLS.has(`${x},${y}`)) cell.className = "wall";
      if (x === player[0] && y === player[1]) cell.textContent = "🙂";
      else if (x === EXIT[0] && y === EXIT[1]) cell.textContent = "🚪";
      return cell;
    }),
  );
}

/** What the player can see: the cells around them, 1 for a wall and 0 for a path. */
function state() {
  const visible = [];
  for (let y = player[1] - 1; y <= player[1] + 1; y++) {
    const row = [];
    for (let x = player[0] - 1; x <= player[0] + 1; x++) {
      const inside = x >= 0 && y >= 0 && x < SIZE && y < SIZE;
      row.push(!inside || WALLS.has(`${x},${y}`) ? 1 : 0);
    }
    visible.push(row);
  }
  return {
    player_pos: { x: player[0], y: player[1] },
    exit_pos: { x: EXIT[0], y: EXIT[1] },
    visible_map: visible,
  };
}

function showHint(text, failed) {
  const entry = document.createElement("pre");
  entry.dataset.testid = failed ? "hint-error" : "hint";
  try {
    entry.textContent = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    entry.textContent = text;
  }
  $("hints").prepend(entry);
}

async function askForHint() {
  const mine = ++latest;
  try {
    const reply = await client.askState("maze", state(), { timeoutMs: 30_000 });
    if (mine === latest) showHint(reply.text, false);
  } catch (error) {
    if (mine === latest) showHint(`${error.code}: ${error.message}`, true);
  }
}

function move(dx, dy) {
  const [x, y] = [player[0] + dx, player[1] + dy];
  if (x < 0 || y < 0 || x >= SIZE || y >= SIZE || WALLS.has(`${x},${y}`)) return;
  player = [x, y];
  draw();
  void askForHint();
}

const KEYS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
document.addEventListener("keydown", (event) => {
  const step = KEYS[event.key];
  if (step && client) move(...step);
});

draw();
try {
  client = await connect(brokerUrl, { sessionId: params.get("session") ?? undefined });
  $("status").textContent = "connected";
  $("send").disabled = false;
  $("send").addEventListener("click", () => void askForHint());
} catch (error) {
  $("status").textContent = `no broker: ${error.message}`;
}
