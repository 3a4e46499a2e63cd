import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, Socket, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";

/** A broker the tests talk to exactly as a game would: over TCP on loopback. */
export interface TestBroker {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startAedes(): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name: "aedes",
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function mosquittoAvailable(): boolean {
  return spawnSync("sh", ["-c", "command -v mosquitto || test -x /usr/sbin/mosquitto"]).status === 0;
}

export interface MosquittoOptions {
  /** Listen here instead of a free port (e.g. to start it again where it was). */
  port?: number;
  /**
   * Keep sessions and queued messages in this directory across a stop and start (saved on
   * SIGTERM), as a production broker does; default: no persistence.
   */
  persistenceDir?: string;
  /** Lines appended to the generated config, after the listener (TLS, ACLs, password files). */
  extraConfig?: string;
  /** Replaces the whole listener block (e.g. a TLS listener); `{port}` is filled in. */
  listener?: string;
  /** URL scheme the tests use to reach it; default mqtt. */
  scheme?: string;
}

export interface RestartableBroker extends TestBroker {
  /** Starts it again on the same port with the same config (after stop()). */
  restart(): Promise<void>;
  /** The broker's process while it runs (the bench reads its CPU time). */
  readonly pid: number | undefined;
}

/** Real Mosquitto on a free loopback port, with a config of our own (no system service needed). */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<RestartableBroker> {
  const chosen = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "llmqtt-mosquitto-"));
  const config = join(dir, "mosquitto.conf");
  const listener = (options.listener ?? "listener {port} 127.0.0.1\nallow_anonymous true").replaceAll(
    "{port}",
    String(chosen),
  );
  // Started as root, Mosquitto drops to its own user, which must be able to write there.
  if (options.persistenceDir) chmodSync(options.persistenceDir, 0o777);
  const persistence = options.persistenceDir
    ? `persistence true\npersistence_location ${options.persistenceDir}/\nautosave_interval 1\n`
    : "persistence false\n";
  writeFileSync(config, `${listener}\n${persistence}set_tcp_nodelay true\n${options.extraConfig ?? ""}\n`);
  const binary =
    spawnSync("sh", ["-c", "command -v mosquitto"]).stdout.toString().trim() || "/usr/sbin/mosquitto";
  let child: ChildProcess;
  const launch = async () => {
    child = spawn(binary, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    await waitForPort(
      chosen,
      () => child.exitCode !== null,
      () => stderr,
    );
  };
  await launch();
  return {
    name: "mosquitto",
    url: `${options.scheme ?? "mqtt"}://127.0.0.1:${chosen}`,
    port: chosen,
    restart: launch,
    get pid() {
      return ended(child) ? undefined : child.pid;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (ended(child)) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Exited by itself or killed by a signal (then its exitCode stays null). */
export function ended(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function waitForPort(port: number, exited: () => boolean, output: () => string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (exited()) throw new Error(`server exited: ${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => (socket.destroy(), resolve(true)));
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1");
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listened on ${port}: ${output()}`);
}
