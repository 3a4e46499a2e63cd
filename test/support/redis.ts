import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { ended, freePort, waitForPort } from "./brokers.js";

export interface TestRedis {
  readonly url: string;
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop()); its data is gone. */
  restart(): Promise<void>;
}

export function redisAvailable(): boolean {
  return spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;
}

/** A throwaway redis-server on a free loopback port: no persistence, nothing on disk. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess;
  const launch = async () => {
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await waitForPort(
      port,
      () => child.exitCode !== null,
      () => stderr,
    );
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    restart: launch,
    stop: () =>
      new Promise<void>((resolve) => {
        if (ended(child)) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
