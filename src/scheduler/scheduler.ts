import { Fifo } from "./fifo.js";
import { SlidingWindowLimiter } from "./rateLimiter.js";

export type JobKind = "turn" | "control";
/**
 * Why a job ends without running to its end: replaced by a newer one of its session, the
 * scheduler draining, cancelled by its requester, or expired while waiting.
 */
export type CancelReason = "superseded" | "shutdown" | "cancelled" | "expired";

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
  /**
   * With `coalesceKey`: this job, once admitted, also aborts its session's running job when that
   * has the same key (its answer would be stale); the running job's signal aborts with "superseded".
   */
  supersedesRunning?: boolean;
  /** Names the job for cancel(), within its session (the request id). */
  requestId?: string;
  /** When still waiting at this time (the scheduler's clock, ms), the job is cancelled with "expired". */
  expiresAt?: number;
  /** This job's limit per session per minute (e.g. its project's); default: the scheduler's. */
  rateLimitPerMinute?: number;
  /**
   * Must not throw; if it does, the scheduler moves on silently (reporting is the job's business).
   * A "turn" job holds its slot until the returned promise settles. `signal` aborts, with the
   * CancelReason as its reason, when the job is cancelled or superseded while it runs; the job
   * should then end as soon as it can.
   */
  run(signal: AbortSignal): Promise<void>;
  /** Called instead of run() when the job will never run (never once it has started). */
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
  running?: { job: ScheduledJob; abort: AbortController };
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
    if (this.isExpired(job)) {
      safeCancel(job, "expired");
      return ACCEPTED;
    }
    const session = this.sessions.get(job.sessionKey);

    const newestWaiting = session?.waiting.peekLast();
    if (job.coalesceKey !== undefined && newestWaiting?.coalesceKey === job.coalesceKey) {
      // Replacing in place adds no work, so it is neither rate limited nor counted against the queue.
      const superseded = newestWaiting;
      session!.waiting.replaceLast(job);
      safeCancel(superseded, "superseded");
      this.supersedeRunning(session!, job);
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
    this.supersedeRunning(target, job);
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
   * Cancels the jobs of a session named `requestId`: waiting ones are taken out and cancelled
   * with "cancelled", a running one has its signal aborted. Returns how many were found.
   */
  cancel(sessionKey: string, requestId: string): number {
    const session = this.sessions.get(sessionKey);
    if (!session) return 0;
    const running = session.running;
    const runs = running?.job.requestId === requestId && !running.abort.signal.aborted;
    if (runs) running.abort.abort("cancelled" satisfies CancelReason);
    const removed = session.waiting.remove((job) => job.requestId === requestId);
    this.waitingJobs -= removed.length;
    if (removed.length > 0 && !session.running) this.requeue(session);
    for (const job of removed) safeCancel(job, "cancelled");
    this.settleDrain();
    return removed.length + (runs ? 1 : 0);
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
    const session: Session = { key, waiting: new Fifo() };
    this.sessions.set(key, session);
    return session;
  }

  /**
   * Starts a job: the counters are updated now, so the next submit sees them; run() itself starts
   * a microtask later, which keeps a job that submits from inside run() from re-entering the
   * scheduler mid-update.
   */
  private start(session: Session, job: ScheduledJob): void {
    const abort = new AbortController();
    session.running = { job, abort };
    this.jobsRunning++;
    if (holdsSlot(job)) this.slotsTaken++;
    void this.run(session, job, abort.signal); // run() catches the job's failure (the job reports it itself)
  }

  private async run(session: Session, job: ScheduledJob, signal: AbortSignal): Promise<void> {
    await Promise.resolve();
    try {
      await job.run(signal);
    } catch {
      // The job owns its error reporting (see ScheduledJob.run).
    }
    session.running = undefined;
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

  /**
   * A session that lost waiting jobs while nothing of it ran: out of the ready FIFO unless its
   * head still needs a slot (then it keeps its place), and on as advance() says otherwise.
   */
  private requeue(session: Session): void {
    const head = session.waiting.peek();
    if (head && holdsSlot(head)) return;
    this.ready.remove((s) => s === session);
    this.advance(session);
  }

  /** Hands free slots to ready sessions, oldest-ready first; jobs expired meanwhile are cancelled. */
  private pump(): void {
    while (this.slotsTaken < this.slots && this.ready.length > 0) {
      const session = this.ready.shift()!;
      const job = session.waiting.shift()!;
      this.waitingJobs--;
      if (this.isExpired(job)) {
        safeCancel(job, "expired");
        this.advance(session);
      } else {
        this.start(session, job);
      }
    }
  }

  private isExpired(job: ScheduledJob): boolean {
    return job.expiresAt !== undefined && job.expiresAt <= this.now();
  }

  /** A newer job of the session aborts the running one it makes stale (ScheduledJob.supersedesRunning). */
  private supersedeRunning(session: Session, job: ScheduledJob): void {
    const running = session.running;
    if (!job.supersedesRunning || job.coalesceKey === undefined || !running) return;
    if (running.job.coalesceKey !== job.coalesceKey || running.abort.signal.aborted) return;
    running.abort.abort("superseded" satisfies CancelReason);
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
