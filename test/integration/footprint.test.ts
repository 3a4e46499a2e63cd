import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { runNode } from "../support/processes.js";

const PROBE = fileURLToPath(new URL("../support/footprintProbe.js", import.meta.url));

/** Starts a gateway in a process of its own and returns the optional packages it loaded. */
async function optionalPackagesLoaded(input: object): Promise<string[]> {
  const run = await runNode([PROBE, JSON.stringify(input)]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as string[];
}

describe("what a gateway loads", () => {
  test("only the packages of the features it uses: none of the optional ones with an external broker and memory sessions", async () => {
    const broker = await startAedes();
    const model = await FakeModelServer.start();
    const dir = await mkdtemp(join(tmpdir(), "llmqtt-footprint-"));
    try {
      const common = {
        mqtt: { url: broker.url },
        server: { url: model.url },
        http: { enabled: false },
        logging: { level: "silent" },
      };
      assert.deepEqual(
        await optionalPackagesLoaded({ ...common, logging: { level: "silent", format: "json" } }),
        [],
      );
      // The same probe sees a package as soon as a feature needs it.
      assert.deepEqual(
        await optionalPackagesLoaded({
          ...common,
          logging: { level: "silent", format: "pretty" },
          sessions: { store: "sqlite", sqlitePath: join(dir, "sessions.db") },
        }),
        ["better-sqlite3", "pino-pretty"],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
      await model.stop();
      await broker.stop();
    }
  });
});
