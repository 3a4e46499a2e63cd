import assert from "node:assert/strict";
import {
  TurnScheduler,
  type CancelReason,
  type JobKind,
  type ScheduledJob,
  type SchedulerOptions,
} from "../../src/scheduler/scheduler.js";

/** A job whose completion the test controls, recording what happened to it. */
export interface TestJob extends ScheduledJob {
  name: string;
  started: boolean;
  cancelled?: CancelReason;
  /** The signal its run() got, once started. */
  signal?: AbortSignal;
  finish(): void;
}

/** Records start order and running counts across every job it makes. */
export class Harness {
  readonly startOrder: string[] = [];
  running = 0;
  maxRunning = 0;
  private readonly runningPerKey = new Map<string, number>();
  maxRunningPerKey = 0;

  /** "snapshot": a turn with a coalesce key, as game-state snapshots are. */
  job(
    sessionKey: string,
    name: string,
    kind: JobKind | "snapshot" = "turn",
    fail?: "reject" | "throw",
  ): TestJob {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const job: TestJob = {
      sessionKey,
      kind: kind === "snapshot" ? "turn" : kind,
      ...(kind === "snapshot" ? { coalesceKey: "state" } : {}),
      name,
      started: false,
      finish: () => resolve(),
      cancel: (reason) => {
        job.cancelled = reason;
      },
      run: (signal) => {
        job.started = true;
        job.signal = signal;
        this.startOrder.push(name);
        this.enter(sessionKey);
        if (fail === "throw") {
          this.leave(sessionKey);
          throw new Error("run threw");
        }
        // A job ends when it is done, or (as a real one should) as soon as its signal aborts.
        const aborted = new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
        return Promise.race([done, aborted]).then(() => {
          this.leave(sessionKey);
          if (fail === "reject") throw new Error("run rejected");
        });
      },
    };
    return job;
  }

  private enter(key: string): void {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const perKey = (this.runningPerKey.get(key) ?? 0) + 1;
    this.runningPerKey.set(key, perKey);
    this.maxRunningPerKey = Math.max(this.maxRunningPerKey, perKey);
  }

  private leave(key: string): void {
    this.running--;
    this.runningPerKey.set(key, this.runningPerKey.get(key)! - 1);
  }
}

/** Lets every pending promise continuation run (no wall-clock time involved). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function scheduler(options: Partial<SchedulerOptions> = {}): TurnScheduler {
  return new TurnScheduler({ concurrency: 2, maxQueue: 1000, rateLimitPerMinute: 0, ...options });
}

export function submitAll(s: TurnScheduler, jobs: TestJob[]): void {
  for (const job of jobs) assert.deepEqual(s.submit(job), { accepted: true, coalesced: false });
}
