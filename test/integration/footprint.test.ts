import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAedes } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import type { Footprint } from "../support/footprintProbe.js";
import { runNode } from "../support/processes.js";

const PROBE = fileURLToPath(new URL("../support/footprintProbe.js", import.meta.url));

/** Starts a gateway in a process of its own and returns what it holds that it might not need. */
async function footprint(input: object): Promise<Footprint> {
  const run = await runNode([PROBE, JSON.stringify(input)]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Footprint;
}

describe("what a gateway holds", () => {
  test("only the packages of the features it uses, and no cache of MQTT message ids", async () => {
    const broker = await startAedes();
    const model = await FakeModelServer.start();
    const dir = await mkdtemp(join(tmpdir(), "llmqtt-footprint-"));
    try {
      const common = { mqtt: { url: broker.url }, server: { url: model.url }, http: { enabled: false } };
      const plain = await footprint({ ...common, logging: { level: "silent", format: "json" } });
      assert.deepEqual(plain.loaded, []);
      // MQTT.js would otherwise keep a Buffer for each of the 65,536 message ids (~6 MB of heap).
      assert.equal(plain.messageIdBuffers, 0);
      // The same probe sees a package as soon as a feature needs it.
      const withFeatures = await footprint({
        ...common,
        logging: { level: "silent", format: "pretty" },
        sessions: { store: "sqlite", sqlitePath: join(dir, "sessions.db") },
      });
      assert.deepEqual(withFeatures.loaded, ["better-sqlite3", "pino-pretty"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await model.stop();
      await broker.stop();
    }
  });
});
