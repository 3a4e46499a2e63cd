import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { freePort, mosquittoAvailable, startAedes, startMosquitto } from "../support/brokers.js";
import { FakeModelServer } from "../support/fakeModelServer.js";
import { GameClient } from "../support/gameClient.js";
import { spawnGateway, uniqueClientId, type GatewayProcess } from "../support/gatewayProcess.js";

const GRACE_SEC = 1;
/** Far beyond the grace period plus the few seconds shutdown may take: only a hang gets here. */
const HANG_MS = (GRACE_SEC + 30) * 1000;
const NO_MOSQUITTO = mosquittoAvailable() || process.env.CI === "true" ? false : "mosquitto is not installed";

/** Sends SIGTERM and waits for the exit status; prints how long it took. */
async function terminate(
  gateway: GatewayProcess,
  what: string,
  alongside?: () => void,
): Promise<number | null> {
  const started = Date.now();
  gateway.signal("SIGTERM");
  alongside?.();
  const ended = await Promise.race([gateway.exited, delay(HANG_MS).then(() => "still running")]);
  assert.notEqual(ended, "still running", gateway.output());
  console.log(`${what}: exited ${String(ended)} after ${Date.now() - started} ms (grace ${GRACE_SEC} s)`);
  return ended as number | null;
}

/** A model server that accepts connections and never answers: not even its health check. */
async function startSilentServer(): Promise<{ url: string; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, sockets };
}

describe("shutdown ends within the grace period plus a few seconds", () => {
  let model: FakeModelServer;

  before(async () => {
    model = await FakeModelServer.start({
      handler: (req) => {
        const messages = req.body.messages as { content: string }[];
        return messages[messages.length - 1]?.content === "hang" ? { hang: true } : {};
      },
    });
  });
  after(() => model.stop());

  const serve = (brokerUrl: string, modelUrl = model.url) =>
    spawnGateway([
      ...["--mqtt-url", brokerUrl, "--mqtt-client-id", uniqueClientId("shutdown")],
      ...["--server-url", modelUrl, "--shutdown-grace", String(GRACE_SEC)],
    ]);

  for (const brokerSignal of ["SIGTERM", "SIGKILL"] as const) {
    test(
      `SIGTERM to llmqtt and ${brokerSignal} to Mosquitto at the same moment, a turn in flight`,
      { skip: NO_MOSQUITTO },
      async () => {
        const broker = await startMosquitto();
        const gateway = serve(broker.url);
        let game: GameClient | undefined;
        try {
          await gateway.waitForLog((line) => line.msg === "llmqtt ready");
          game = await GameClient.connect(broker.url);
          await game.publish("general/user_input", { sessionId: "s", message: "hang" });
          await gateway.waitForLog(() => model.inFlight === 1);
          const pid = broker.pid!;
          const status = await terminate(gateway, `Mosquitto ${brokerSignal}`, () =>
            process.kill(pid, brokerSignal),
          );
          assert.equal(status, 0, gateway.output());
          assert.ok(gateway.logs().some((line) => line.msg === "llmqtt stopped"));
        } finally {
          await game?.close();
          await gateway.kill();
          await broker.stop();
        }
      },
    );
  }

  test("SIGTERM with a turn hanging on the model and the broker gone", async () => {
    const broker = await startAedes();
    const gateway = serve(broker.url);
    const game = await GameClient.connect(broker.url);
    try {
      await gateway.waitForLog((line) => line.msg === "llmqtt ready");
      await game.publish("general/user_input", { sessionId: "gone", message: "hang" });
      await gateway.waitForLog(() => model.inFlight === 1);
      await game.close();
      await broker.stop();
      await gateway.waitForLog((line) => line.msg === "MQTT broker unreachable; retrying");
      assert.equal(await terminate(gateway, "hanging model, broker gone"), 0, gateway.output());
      await gateway.waitForLog(() => model.inFlight === 0);
    } finally {
      await gateway.kill();
    }
  });

  test("SIGTERM while starting: a model server that never answers and no broker", async () => {
    const silent = await startSilentServer();
    const gateway = serve(`mqtt://127.0.0.1:${await freePort()}`, silent.url);
    try {
      await gateway.waitForLog(() => silent.sockets.size > 0);
      assert.equal(await terminate(gateway, "silent model, no broker"), 0, gateway.output());
    } finally {
      await gateway.kill();
      for (const socket of silent.sockets) socket.destroy();
      await new Promise((resolve) => silent.server.close(resolve));
    }
  });
});
