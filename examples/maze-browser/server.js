/* global process, console, URL */
// Serves the maze example: the page, the llmqtt client's browser modules (llmqtt/client) and
// MQTT.js's browser build, which the page's import map names "mqtt". No bundler needed.
//
//   node examples/maze-browser/server.js [port]     then open http://localhost:8000/?broker=ws://localhost:9001

import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const clientDir = dirname(fileURLToPath(import.meta.resolve("llmqtt/client")));
const mqttDir = join(dirname(createRequire(import.meta.url).resolve("mqtt/package.json")), "dist");

function fileFor(path) {
  if (path === "/") return join(here, "index.html");
  if (path === "/maze.js") return join(here, "maze.js");
  if (path === "/mqtt.esm.js") return join(mqttDir, "mqtt.esm.js");
  const module = /^\/llmqtt\/client\/([\w-]+\.js)$/.exec(path);
  return module ? join(clientDir, module[1]) : undefined;
}

/** Resolves once listening; `close()` stops it. */
export async function startExampleServer(port = 8000, host = "127.0.0.1") {
  const server = createServer(async (req, res) => {
    const file = fileFor(new URL(req.url ?? "/", "http://x").pathname);
    try {
      if (file === undefined) throw new Error("not found");
      const body = await readFile(file);
      const type = file.endsWith(".html") ? "text/html" : "text/javascript";
      res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const { port: bound } = server.address();
  return {
    url: `http://${host}:${bound}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startExampleServer(Number(process.argv[2] ?? 8000));
  console.log(`maze example on ${url}?broker=ws://localhost:9001`);
}
