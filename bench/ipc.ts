/**
 * The bench runs the system under test, the fake model server and the Aedes broker each in a
 * child process of its own, so none of them shares an event loop with the load generator. This
 * is the little request/response protocol over Node's IPC channel between them.
 */
import { fork, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { constants as perfConstants, PerformanceObserver } from "node:perf_hooks";

interface Request {
  id: number;
  command: string;
  args: unknown;
}

type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

type Ready = { ready: true; info: unknown } | { ready: false; error: string };

/** Parent side: one child, started with `fork`, answering commands. */
export class Child<Info = unknown> {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Promise<void>;

  private constructor(
    private readonly process: ChildProcess,
    readonly info: Info,
  ) {
    process.on("message", (message: Response) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(message.error));
    });
    this.exited = new Promise((resolve) => {
      if (process.exitCode !== null) return resolve();
      process.once("exit", () => {
        for (const waiter of this.pending.values()) waiter.reject(new Error("child exited"));
        this.pending.clear();
        resolve();
      });
    });
  }

  /** Forks `module` and waits for its ready message (which carries `info`, e.g. a port). */
  static async start<Info>(
    module: URL,
    args: unknown,
    options: { execArgv?: string[]; env?: NodeJS.ProcessEnv } = {},
  ): Promise<Child<Info>> {
    const child = fork(module, [JSON.stringify(args)], {
      execArgv: options.execArgv ?? [],
      env: options.env ?? process.env,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "advanced",
    });
    const ready = await new Promise<Ready>((resolve) => {
      child.once("message", (message: Ready) => resolve(message));
      child.once("exit", (code) => resolve({ ready: false, error: `exited with code ${code}` }));
    });
    if (!ready.ready) throw new Error(`${module.pathname} failed to start: ${ready.error}`);
    return new Child<Info>(child, ready.info as Info);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  request<T = unknown>(command: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.process.send({ id, command, args } satisfies Request);
    });
  }

  /** Asks the child to stop (it exits by itself, so that e.g. --cpu-prof writes its profile). */
  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.connected) {
      await this.request("stop").catch(() => undefined);
    }
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 15_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export type Handlers = Record<string, (args: never) => unknown>;

/** What `profileStart` turns on; `profileStop` writes each to its file. */
export interface ProfileFiles {
  /** V8 CPU profile (.cpuprofile). */
  cpu?: string;
  /**
   * Sampled allocations that survived a young-generation collection (.heapprofile): the bytes the
   * scavenger had to copy and promote, by the function that allocated them.
   */
  promoted?: string;
}

const PROFILE_INTERVAL_US = 100;

/**
 * Profiling of just the measured part of a run (not start-up or warm-up): `profileStart` with
 * the files to come, then `profileStop` with the same files.
 */
function profilingHandlers(): Handlers {
  let session: Session | undefined;
  return {
    profileStart: async (files: ProfileFiles) => {
      session = new Session();
      session.connect();
      if (files.cpu) {
        await session.post("Profiler.enable");
        // V8's default of one sample per millisecond is under one sample per turn: too coarse to compare.
        await session.post("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
        await session.post("Profiler.start");
      }
      if (files.promoted) {
        await session.post("HeapProfiler.enable");
        // @types/node does not list the two include… flags yet; V8 in Node 20 takes them.
        await session.post("HeapProfiler.startSampling", {
          samplingInterval: 512,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: false,
        } as { samplingInterval: number });
      }
    },
    profileStop: async (files: ProfileFiles) => {
      if (!session) throw new Error("profileStop without profileStart");
      if (files.cpu) {
        const { profile } = await session.post("Profiler.stop");
        await writeFile(files.cpu, JSON.stringify(profile));
      }
      if (files.promoted) {
        const { profile } = await session.post("HeapProfiler.stopSampling");
        await writeFile(files.promoted, JSON.stringify(profile));
      }
      session.disconnect();
      session = undefined;
    },
  };
}

/** What the `cpu` command answers: the process's resource usage and its garbage-collection pauses so far. */
export interface ProcessUsage {
  resources: NodeJS.ResourceUsage;
  /** Main-thread pauses, milliseconds, and how many: young-generation (scavenges) and the rest. */
  gc: { minorMs: number; minor: number; majorMs: number; major: number };
}

/** `cpu`: counted from the start, so the parent takes the difference over what it measures. */
function usageHandlers(): Handlers {
  const gc = { minorMs: 0, minor: 0, majorMs: 0, major: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minorMs += entry.duration;
        gc.minor++;
      } else {
        gc.majorMs += entry.duration;
        gc.major++;
      }
    }
  }).observe({ entryTypes: ["gc"] });
  return { cpu: (): ProcessUsage => ({ resources: process.resourceUsage(), gc: { ...gc } }) };
}

/**
 * Child side: report ready with `info`, then answer commands with `handlers` (and the profiling
 * and `cpu` commands). The command `stop` runs `handlers.stop` (if any), answers, and exits the
 * process.
 */
export function serve(info: unknown, ownHandlers: Handlers): void {
  const handlers = { ...profilingHandlers(), ...usageHandlers(), ...ownHandlers };
  process.on("message", (message: Request) => {
    answer(message).catch((error: unknown) => console.error("bench child: cannot answer", error));
  });
  async function answer(message: Request): Promise<void> {
    let response: Response;
    try {
      const handler = handlers[message.command];
      if (!handler && message.command !== "stop") throw new Error(`unknown command ${message.command}`);
      const result = handler ? await handler(message.args as never) : undefined;
      response = { id: message.id, ok: true, result };
    } catch (error) {
      response = { id: message.id, ok: false, error: String((error as Error)?.stack ?? error) };
    }
    process.send!(response, undefined, undefined, () => {
      if (message.command === "stop") {
        process.disconnect();
        // Exit normally (not by a signal) so that --cpu-prof writes its profile.
        setImmediate(() => process.exit(0));
      }
    });
  }
  // The parent going away ends the child too.
  process.on("disconnect", () => setTimeout(() => process.exit(0), 100).unref());
  process.send!({ ready: true, info } satisfies Ready);
}

/** In a child: report a start-up failure and exit. */
export function failStart(error: unknown): never {
  process.send?.({ ready: false, error: String((error as Error)?.stack ?? error) } satisfies Ready);
  process.exit(1);
}

/** In a child: the JSON argument the parent passed to `Child.start`. */
export function childArgs<T>(): T {
  return JSON.parse(process.argv[2] ?? "{}") as T;
}
