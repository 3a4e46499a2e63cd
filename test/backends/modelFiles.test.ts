import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaCppBackend } from "../../src/backends/llamaCppBackend.js";
import {
  catalogModelUrl,
  downloadRefusal,
  MODEL_CATALOG,
  resolveModelFile,
  type CatalogModel,
  type ModelFileOptions,
} from "../../src/backends/modelFiles.js";
import { captureLogs } from "../support/logCapture.js";
import { startModelFileServer, type ModelFileServer } from "../support/modelFileServer.js";
import { eventually } from "../support/wait.js";
import { request, silent } from "./helpers.js";

// Downloads go to a local HTTP server serving the tiny test model: nothing leaves the machine.

const TINY = fileURLToPath(new URL("../../../../shared/models/stories260K-qwen3-chat.gguf", import.meta.url));
const tinyBytes = await readFile(TINY);
const TINY_MODEL: CatalogModel = {
  alias: "tiny-qwen3",
  description: "the test model",
  repo: "test/tiny-GGUF",
  revision: "0123456789abcdef0123456789abcdef01234567",
  file: "tiny-qwen3.gguf",
  bytes: tinyBytes.length,
  sha256: createHash("sha256").update(tinyBytes).digest("hex"),
};
const FAST = { attempts: 3, retryDelayMs: 10, stallTimeoutMs: 10_000 };

let cacheDir: string;
const servers: ModelFileServer[] = [];

async function serve(body: Buffer = tinyBytes, options = {}): Promise<ModelFileServer> {
  const server = await startModelFileServer(body, options);
  servers.push(server);
  return server;
}

function optionsFor(server: ModelFileServer, overrides: Partial<ModelFileOptions> = {}): ModelFileOptions {
  return {
    cacheDir,
    allowDownload: true,
    interactive: false,
    hfEndpoint: server.url,
    logger: silent,
    catalog: [TINY_MODEL],
    download: FAST,
    ...overrides,
  };
}

const cached = () => path.join(cacheDir, TINY_MODEL.file);

before(async () => {
  assert.ok(existsSync(TINY), `test model missing: ${TINY}`);
});

describe("model aliases", () => {
  test("every alias names one pinned file with its size and sha256", () => {
    assert.equal(new Set(MODEL_CATALOG.map((m) => m.alias)).size, MODEL_CATALOG.length);
    assert.equal(new Set(MODEL_CATALOG.map((m) => m.file)).size, MODEL_CATALOG.length);
    for (const model of MODEL_CATALOG) {
      assert.match(model.sha256, /^[0-9a-f]{64}$/);
      assert.match(model.revision, /^[0-9a-f]{40}$/);
      assert.ok(model.bytes > 100e6 && model.file.endsWith(".gguf"), model.alias);
    }
    const qwen = MODEL_CATALOG.find((m) => m.alias === "qwen3-0.6b");
    assert.equal(
      qwen && catalogModelUrl(qwen),
      "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/23749fefcc72300e3a2ad315e1317431b06b590a/Qwen3-0.6B-Q8_0.gguf",
    );
    assert.equal(
      qwen && catalogModelUrl(qwen, "http://mirror.local/hf/"),
      "http://mirror.local/hf/Qwen/Qwen3-0.6B-GGUF/resolve/23749fefcc72300e3a2ad315e1317431b06b590a/Qwen3-0.6B-Q8_0.gguf",
    );
  });

  test("consent: an alias downloads from a terminal or with allowDownload, never with allowDownload false", () => {
    assert.equal(downloadRefusal(TINY_MODEL, true, false), undefined);
    assert.equal(downloadRefusal(TINY_MODEL, undefined, true), undefined);
    assert.match(
      downloadRefusal(TINY_MODEL, undefined, false) ?? "",
      /not started from a terminal.*--allow-download/,
    );
    assert.match(downloadRefusal(TINY_MODEL, false, true) ?? "", /downloads are switched off/);
  });
});

describe("downloading a model alias", () => {
  before(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), "llmqtt-models-"));
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
    await rm(cacheDir, { recursive: true, force: true });
  });
  const clearCache = () => rm(cached(), { force: true }).then(() => rm(`${cached()}.part`, { force: true }));

  test("fetches the pinned URL once, logs progress, and later starts use the cache without a request", async () => {
    await clearCache();
    const server = await serve();
    const logs = captureLogs("info");
    const file = cached();
    assert.equal(await resolveModelFile("tiny-qwen3", optionsFor(server, { logger: logs.logger })), file);
    assert.deepEqual(await readFile(file), tinyBytes);
    assert.deepEqual(server.requests, [
      { path: `/test/tiny-GGUF/resolve/${TINY_MODEL.revision}/tiny-qwen3.gguf`, range: undefined },
    ]);
    const percents = logs
      .lines()
      .map((line) => /: (\d+)% \(/.exec(String(line["msg"]))?.[1])
      .filter((p) => p !== undefined)
      .map(Number);
    assert.ok(percents.length >= 2, logs.text());
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => a - b),
    );
    assert.equal(percents.at(-1), 100);
    assert.match(logs.text(), /checksum verified/);

    // Even with downloads switched off, the cached file is used and nothing is requested.
    assert.equal(await resolveModelFile("tiny-qwen3", optionsFor(server, { allowDownload: false })), file);
    assert.equal(server.requests.length, 1);
  });

  test("on a terminal the progress is one line redrawn in place", async () => {
    await clearCache();
    const server = await serve();
    let drawn = "";
    const terminal = { columns: 100, write: (text: string) => ((drawn += text), true) };
    const logs = captureLogs("info");
    await resolveModelFile(
      "tiny-qwen3",
      optionsFor(server, { interactive: true, terminal, logger: logs.logger }),
    );
    assert.match(drawn, /^\rtiny-qwen3\.gguf \[/);
    assert.match(drawn, /\rtiny-qwen3\.gguf \[#{30}\] 100% 1\.2\/1\.2 MB [\d.]+ MB\/s +\n$/);
    assert.doesNotMatch(logs.text(), /% \(/, "no progress log lines besides the bar");
  });

  test("a file whose checksum does not match is deleted with a clear error", async () => {
    await clearCache();
    const corrupt = Buffer.from(tinyBytes);
    const middle = corrupt.length >> 1;
    corrupt.writeUInt8(corrupt.readUInt8(middle) ^ 0xff, middle);
    const server = await serve(corrupt);
    await assert.rejects(resolveModelFile("tiny-qwen3", optionsFor(server)), (err: Error) => {
      assert.match(
        err.message,
        /checksum mismatch for http:.*tiny-qwen3\.gguf: expected sha256 [0-9a-f]{64}, got/,
      );
      assert.match(err.message, /the downloaded file was deleted/);
      return true;
    });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  test("a server offering another size is refused before anything is written", async () => {
    await clearCache();
    const server = await serve(tinyBytes.subarray(0, 1000));
    await assert.rejects(
      resolveModelFile("tiny-qwen3", optionsFor(server)),
      /offers 1000 bytes, expected \d+/,
    );
    assert.deepEqual(await readdir(cacheDir), []);
  });

  test("a dropped connection is resumed with a Range request", async () => {
    await clearCache();
    const cutAt = 400_000;
    const server = await serve(tinyBytes, { cutFirstAt: cutAt });
    assert.equal(await resolveModelFile("tiny-qwen3", optionsFor(server)), cached());
    assert.deepEqual(await readFile(cached()), tinyBytes);
    assert.equal(server.requests.length, 2);
    assert.equal(server.requests[0]?.range, undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]?.range ?? "")?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= cutAt, `resumed at ${resumedAt}`);
  });

  test("a connection that stops delivering is dropped and resumed", async () => {
    await clearCache();
    const server = await serve(tinyBytes, { holdFirstAt: 300_000 });
    const options = optionsFor(server, { download: { ...FAST, stallTimeoutMs: 300 } });
    assert.equal(await resolveModelFile("tiny-qwen3", options), cached());
    assert.deepEqual(await readFile(cached()), tinyBytes);
    assert.deepEqual(
      server.requests.map((r) => r.range),
      [undefined, "bytes=300000-"],
    );
  });

  test("stopping llmqtt stops a download and keeps the partial file for the next start", async () => {
    await clearCache();
    const server = await serve(tinyBytes, { holdFirstAt: 300_000 });
    const stopping = new AbortController();
    const download = resolveModelFile("tiny-qwen3", optionsFor(server, { signal: stopping.signal }));
    const part = `${cached()}.part`;
    await eventually(async () => (await stat(part).catch(() => undefined))?.size === 300_000);
    stopping.abort(new Error("stopping"));
    await assert.rejects(download, /download of model tiny-qwen3 stopped; the next start resumes it/);
    assert.equal((await stat(part)).size, 300_000);
    assert.equal(existsSync(cached()), false);
  });

  // A server with Range support continues the partial file; one without sends the whole file again.
  for (const ignoreRange of [false, true]) {
    test(`a partial file left by an earlier start is ${ignoreRange ? "replaced" : "continued"} (ignoreRange: ${ignoreRange})`, async () => {
      await clearCache();
      const partial = ignoreRange ? Buffer.alloc(500_000, 7) : tinyBytes.subarray(0, 500_000);
      await writeFile(`${cached()}.part`, partial);
      const server = await serve(tinyBytes, { ignoreRange });
      assert.equal(await resolveModelFile("tiny-qwen3", optionsFor(server)), cached());
      assert.deepEqual(await readFile(cached()), tinyBytes);
      assert.deepEqual(
        server.requests.map((r) => r.range),
        ["bytes=500000-"],
      );
    });
  }

  test("two starts at once share one download: the second waits for the first's lock", async () => {
    await clearCache();
    // The first transfer stalls half-way and is resumed, so the second start comes while it runs.
    const server = await serve(tinyBytes, { holdFirstAt: 300_000 });
    const slow = { ...FAST, stallTimeoutMs: 500 };
    const first = resolveModelFile("tiny-qwen3", optionsFor(server, { download: slow }));
    await eventually(async () => (await stat(`${cached()}.part`).catch(() => undefined))?.size === 300_000);
    const logs = captureLogs("info");
    const second = resolveModelFile(
      "tiny-qwen3",
      optionsFor(server, { logger: logs.logger, download: slow }),
    );
    assert.deepEqual(await Promise.all([first, second]), [cached(), cached()]);
    assert.deepEqual(await readFile(cached()), tinyBytes);
    assert.deepEqual(
      server.requests.map((r) => r.range),
      [undefined, "bytes=300000-"],
      "one download, resumed once; none by the second start",
    );
    assert.match(logs.text(), /another process is downloading model tiny-qwen3/);
    assert.equal(existsSync(`${cached()}.lock`), false, "the lock is given back");
  });

  test("a lock left by a killed process is taken over once it is stale", async () => {
    await clearCache();
    const server = await serve();
    await mkdir(`${cached()}.lock`);
    const longAgo = new Date(Date.now() - 120_000);
    await utimes(`${cached()}.lock`, longAgo, longAgo);
    assert.equal(await resolveModelFile("tiny-qwen3", optionsFor(server)), cached());
    assert.deepEqual(await readFile(cached()), tinyBytes);
    assert.equal(existsSync(`${cached()}.lock`), false);
  });

  test("stopping llmqtt while it waits for another process's download ends the wait", async () => {
    await clearCache();
    const server = await serve();
    await mkdir(`${cached()}.lock`); // fresh: its holder is alive
    try {
      const logs = captureLogs("info");
      const stopping = new AbortController();
      const waiting = resolveModelFile(
        "tiny-qwen3",
        optionsFor(server, { logger: logs.logger, signal: stopping.signal }),
      );
      await eventually(() => /waiting for it/.test(logs.text()));
      stopping.abort(new Error("stopping"));
      await assert.rejects(waiting, /download of model tiny-qwen3 stopped/);
      assert.equal(server.requests.length, 0);
    } finally {
      await rm(`${cached()}.lock`, { recursive: true, force: true });
    }
  });

  test("a missing file (HTTP 404) fails at once, without retrying", async () => {
    await clearCache();
    const server = await serve(tinyBytes, { status: 404 });
    await assert.rejects(resolveModelFile("tiny-qwen3", optionsFor(server)), /answered HTTP 404/);
    assert.equal(server.requests.length, 1);
  });

  test("no download without consent: not from a terminal and not allowed, or switched off", async () => {
    await clearCache();
    const server = await serve();
    await assert.rejects(
      resolveModelFile("tiny-qwen3", optionsFor(server, { allowDownload: undefined, interactive: false })),
      /model tiny-qwen3 \(tiny-qwen3\.gguf, 1 MB\) is not in the model cache and llmqtt was not started from a terminal; allow it with --allow-download/,
    );
    await assert.rejects(
      resolveModelFile("tiny-qwen3", optionsFor(server, { allowDownload: false, interactive: true })),
      /downloads are switched off/,
    );
    assert.equal(server.requests.length, 0);
    assert.deepEqual(await readdir(cacheDir), []);
  });

  test("the backend refuses to start rather than download without consent", async () => {
    await clearCache();
    const server = await serve();
    const backend = new LlamaCppBackend(
      { modelPath: "tiny-qwen3", modelCacheDir: cacheDir, hfEndpoint: server.url },
      silent,
      { modelFiles: { catalog: [TINY_MODEL], interactive: false } },
    );
    await assert.rejects(backend.start(), /not started from a terminal; allow it with --allow-download/);
    assert.equal(backend.health().healthy, false);
    assert.equal(server.requests.length, 0);
  });

  test("a name that is neither a file nor an alias lists the aliases", async () => {
    const server = await serve();
    await assert.rejects(
      resolveModelFile("qwen9-99b", optionsFor(server)),
      /model file not found: .*qwen9-99b \(nor is it a model llmqtt can download: tiny-qwen3\)/,
    );
  });
});

// node-llama-cpp is an optional dependency: without it the real load is skipped, except in CI.
const unavailable = await import("node-llama-cpp").then(
  () => undefined,
  (err: unknown) => `node-llama-cpp is not installed (${err instanceof Error ? err.message : String(err)})`,
);
if (unavailable && process.env["CI"] === "true") {
  test("in-process llama.cpp is available in CI", () => assert.fail(unavailable));
}

describe("--model <alias> in the in-process backend", { skip: unavailable ?? false }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "llmqtt-models-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const backendFor = (server: ModelFileServer) =>
    new LlamaCppBackend(
      {
        modelPath: "tiny-qwen3",
        slots: 1,
        threads: 1,
        contextSize: 2048,
        modelCacheDir: dir,
        hfEndpoint: server.url,
      },
      silent,
      // Started "from a terminal": that alone is consent to download an alias.
      {
        modelFiles: {
          catalog: [TINY_MODEL],
          interactive: true,
          terminal: { write: () => true },
          download: FAST,
        },
      },
    );

  test("downloads, verifies and loads the model; the next start loads it from the cache", async () => {
    const server = await startModelFileServer(tinyBytes);
    try {
      const first = backendFor(server);
      await first.start();
      try {
        assert.equal(first.health().healthy, true, first.health().detail);
        const reply = await first.chat(
          request({ messages: [{ role: "user", content: "Tell me about a cat." }], maxTokens: 8 }),
        );
        assert.ok(reply.text.length > 0);
      } finally {
        await first.stop();
      }
      assert.equal(server.requests.length, 1);

      const second = backendFor(server);
      await second.start();
      await second.stop();
      assert.equal(server.requests.length, 1, "the second start made no request");
    } finally {
      await server.close();
    }
  });
});
