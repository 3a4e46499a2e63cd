import { Fifo } from "./fifo.js";
import { SlidingWindowLimiter } from "./rateLimiter.js";

export type JobKind = "turn" | "control";
export type CancelReason = "superseded" | "shutdown";

export interface ScheduledJob {
  /** Jobs with the same key run one at a time, in submit order; e.g. `${project}\u0000${sessionId}`. */
  sessionKey: string;
  /**
   * "control" jobs (clear/template of one session) keep per-session order but take no global slot
   * and are not rate limited.
   */
  kind: JobKind;
  /**
   * Jobs of one session with the same coalesce key replace each other while waiting: a newer one
   * takes the place of the newest waiting one when that has the same key (only the newest game
   * state matters). The replaced job is cancelled with "superseded".
   */
  coalesceKey?: string;
  /** This job's limit per session per minute (e.g. its project's); default: the scheduler's. */
  rateLimitPerMinute?: number;
  /**
   * Must not throw; if it does, the scheduler moves on silently (reporting is the job's business).
   * A "turn" job holds its slot until the returned promise settles.
   */
  run(): Promise<void>;
  /** Called instead of run() when the job will never run. */
  cancel(reason: CancelReason): void;
}

export type Admission =
  | { accepted: true; coalesced: boolean }
  | { accepted: false; reason: "overloaded" | "rate_limited" | "shutting_down" };

export interface SchedulerOptions {
  /** Slots: "turn" jobs run at once, at most. */
  concurrency: number;
  /** Jobs waiting, all kinds, all sessions. */
  maxQueue: number;
  /** Admitted "turn" jobs per session key in any sliding minute; 0 = unlimited. */
  rateLimitPerMinute: number;
  now?: () => number;
}

interface Session {
  key: string;
  /** Jobs not yet started, in submit order. The running job is not in here. */
  waiting: Fifo<ScheduledJob>;
  running: boolean;
}

const ACCEPTED: Admission = { accepted: true, coalesced: false };
const COALESCED: Admission = { accepted: true, coalesced: true };

/**
 * Admission and ordering of model work (DESIGN invariants 1, 3, 4).
 *
 * A session is *ready* when its head job needs a slot and nothing of it runs; ready sessions wait
 * in one FIFO and take free slots in the order they became ready. A session whose job finishes
 * rejoins at the back, so a busy session takes turns with the others instead of starving them.
 * Every decision touches only the session concerned and the head of the ready FIFO.
 */
export class TurnScheduler {
  private readonly sessions = new Map<string, Session>();
  private readonly ready = new Fifo<Session>();
  private readonly limiter: SlidingWindowLimiter;
  private readonly now: () => number;
  private readonly maxQueue: number;
  private slots: number;
  private waitingJobs = 0;
  private slotsTaken = 0;
  /** Every running job, whether it holds a slot or not: drain waits for them all. */
  private jobsRunning = 0;
  private draining?: { promise: Promise<void>; resolve: () => void; timer?: NodeJS.Timeout };

  constructor(options: SchedulerOptions) {
    this.slots = checkCount("concurrency", options.concurrency);
    this.maxQueue = checkCount("maxQueue", options.maxQueue);
    this.limiter = new SlidingWindowLimiter(checkCount("rateLimitPerMinute", options.rateLimitPerMinute));
    this.now = options.now ?? Date.now;
  }

  get queued(): number {
    return this.waitingJobs;
  }

  /** Jobs holding a slot: their model calls are in progress. */
  get inFlight(): number {
    return this.slotsTaken;
  }

  get concurrency(): number {
    return this.slots;
  }

  get sessionsWaiting(): number {
    return this.sessions.size;
  }

  /** Follows backend capacity. Shrinking never aborts running jobs; it only delays new starts. */
  setConcurrency(n: number): void {
    this.slots = checkCount("concurrency", n);
    this.pump();
  }

  submit(job: ScheduledJob): Admission {
    if (this.draining) return { accepted: false, reason: "shutting_down" };
    const session = this.sessions.get(job.sessionKey);

    const newestWaiting = session?.waiting.peekLast();
    if (job.coalesceKey !== undefined && newestWaiting?.coalesceKey === job.coalesceKey) {
      // Replacing in place adds no work, so it is neither rate limited nor counted against the queue.
      const superseded = newestWaiting;
      session!.waiting.replaceLast(job);
      safeCancel(superseded, "superseded");
      return COALESCED;
    }

    const usesSlot = holdsSlot(job);
    const now = this.now();
    if (usesSlot && !this.limiter.allows(job.sessionKey, now, job.rateLimitPerMinute)) {
      return { accepted: false, reason: "rate_limited" };
    }
    const sessionIdle = !session || (!session.running && session.waiting.length === 0);
    const startsNow = sessionIdle && (!usesSlot || this.slotsTaken < this.slots);
    if (!startsNow && this.waitingJobs >= this.maxQueue) {
      return { accepted: false, reason: "overloaded" };
    }
    if (usesSlot) this.limiter.record(job.sessionKey, now, job.rateLimitPerMinute);

    const target = session ?? this.newSession(job.sessionKey);
    if (startsNow) {
      this.start(target, job);
    } else {
      target.waiting.push(job);
      this.waitingJobs++;
      if (sessionIdle) this.ready.push(target); // idle + needs a slot + none free
    }
    return ACCEPTED;
  }

  /**
   * Stops admission, lets queued jobs start while slots free up for `graceMs`, then cancels what
   * is still queued with "shutdown". Resolves once nothing runs; running jobs are never aborted
   * here (the caller aborts them through their own signals if it cannot wait).
   */
  drain(graceMs: number): Promise<void> {
    if (this.draining) return this.draining.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.draining = { promise, resolve };
    if (graceMs <= 0) this.cancelWaiting();
    else this.draining.timer = setTimeout(() => this.cancelWaiting(), graceMs);
    this.settleDrain();
    return promise;
  }

  private newSession(key: string): Session {
    const session: Session = { key, waiting: new Fifo(), running: false };
    this.sessions.set(key, session);
    return session;
  }

  /**
   * Starts a job: the counters are updated now, so the next submit sees them; run() itself starts
   * a microtask later, which keeps a job that submits from inside run() from re-entering the
   * scheduler mid-update.
   */
  private start(session: Session, job: ScheduledJob): void {
    session.running = true;
    this.jobsRunning++;
    if (holdsSlot(job)) this.slotsTaken++;
    void this.run(session, job); // run() catches the job's failure (the job reports it itself)
  }

  private async run(session: Session, job: ScheduledJob): Promise<void> {
    await Promise.resolve();
    try {
      await job.run();
    } catch {
      // The job owns its error reporting (see ScheduledJob.run).
    }
    session.running = false;
    this.jobsRunning--;
    if (holdsSlot(job)) this.slotsTaken--;
    this.advance(session);
    this.pump();
    this.settleDrain();
  }

  /** Decides what a session whose job just finished does next. */
  private advance(session: Session): void {
    const head = session.waiting.peek();
    if (!head) {
      this.sessions.delete(session.key);
    } else if (head.kind === "control") {
      session.waiting.shift();
      this.waitingJobs--;
      this.start(session, head);
    } else {
      this.ready.push(session);
    }
  }

  /** Hands free slots to ready sessions, oldest-ready first. */
  private pump(): void {
    while (this.slotsTaken < this.slots && this.ready.length > 0) {
      const session = this.ready.shift()!;
      const job = session.waiting.shift()!;
      this.waitingJobs--;
      this.start(session, job);
    }
  }

  private cancelWaiting(): void {
    this.ready.takeAll();
    for (const session of [...this.sessions.values()]) {
      const jobs = session.waiting.takeAll();
      this.waitingJobs -= jobs.length;
      if (!session.running) this.sessions.delete(session.key);
      for (const job of jobs) safeCancel(job, "shutdown");
    }
    this.settleDrain();
  }

  private settleDrain(): void {
    const drain = this.draining;
    if (!drain || this.jobsRunning + this.waitingJobs > 0) return;
    clearTimeout(drain.timer);
    drain.resolve();
  }
}

/** Control jobs keep per-session order but take no model slot. */
function holdsSlot(job: ScheduledJob): boolean {
  return job.kind !== "control";
}

function checkCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/** A job's cancel hook failing must not leave the scheduler half-updated. */
function safeCancel(job: ScheduledJob, reason: CancelReason): void {
  try {
    job.cancel(reason);
  } catch {
    // The job owns its error reporting, as for run().
  }
}
