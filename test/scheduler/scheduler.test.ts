import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Harness, scheduler, settle, submitAll } from "./harness.js";

describe("TurnScheduler ordering", () => {
  test("runs one session's 20 jobs one at a time, in submit order", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 4 });
    const jobs = Array.from({ length: 20 }, (_, i) => h.job("a", `a${i}`));
    submitAll(s, jobs);
    assert.equal(s.queued, 19);
    assert.equal(s.inFlight, 1);
    for (const job of jobs) {
      await settle();
      assert.equal(h.running, 1);
      assert.ok(job.started);
      job.finish();
    }
    await settle();
    assert.deepEqual(
      h.startOrder,
      jobs.map((j) => j.name),
    );
    assert.equal(h.maxRunningPerKey, 1);
    assert.equal(s.sessionsWaiting, 0);
    assert.equal(s.queued, 0);
    assert.equal(s.inFlight, 0);
  });

  test("runs different sessions in parallel up to the concurrency, never above", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 3 });
    const jobs = Array.from({ length: 10 }, (_, i) => h.job(`s${i}`, `s${i}`));
    submitAll(s, jobs);
    await settle();
    assert.equal(h.running, 3);
    assert.equal(s.inFlight, 3);
    assert.equal(s.queued, 7);
    assert.equal(s.sessionsWaiting, 10);
    while (h.startOrder.length < 10 || h.running > 0) {
      for (const job of jobs) if (job.started) job.finish();
      await settle();
    }
    assert.equal(h.maxRunning, 3);
    assert.deepEqual(
      h.startOrder,
      jobs.map((j) => j.name),
    );
  });

  test("setConcurrency grows at once and shrinks without aborting running jobs", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const jobs = Array.from({ length: 6 }, (_, i) => h.job(`s${i}`, `s${i}`));
    submitAll(s, jobs);
    await settle();
    assert.equal(h.running, 1);

    s.setConcurrency(4);
    await settle();
    assert.equal(s.concurrency, 4);
    assert.equal(h.running, 4);

    s.setConcurrency(1);
    jobs[0]!.finish();
    await settle();
    assert.equal(h.running, 3, "running jobs continue, nothing new starts");
    jobs[1]!.finish();
    jobs[2]!.finish();
    await settle();
    assert.equal(h.running, 1, "one finished, still at the limit: nothing starts");
    assert.equal(jobs[4]!.started, false);
    jobs[3]!.finish();
    await settle();
    assert.equal(h.running, 1);
    assert.ok(jobs[4]!.started);
  });

  test("rejects a negative or fractional concurrency", () => {
    assert.throws(() => scheduler({ concurrency: -1 }), RangeError);
    assert.throws(() => scheduler().setConcurrency(1.5), RangeError);
  });
});

describe("TurnScheduler fairness", () => {
  test("a session with 100 queued jobs delays another session's job by at most one round", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const busy = Array.from({ length: 100 }, (_, i) => h.job("busy", `busy${i}`));
    submitAll(s, busy);
    const other = h.job("other", "other");
    submitAll(s, [other]);
    await settle();
    busy[0]!.finish();
    await settle();
    assert.ok(other.started);
    assert.deepEqual(h.startOrder, ["busy0", "other"]);
  });

  test("ready sessions take slots round-robin", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const jobs = ["a", "b", "c"].flatMap((key) => [0, 1, 2].map((i) => h.job(key, `${key}${i}`)));
    submitAll(s, jobs);
    while (h.startOrder.length < jobs.length || h.running > 0) {
      for (const job of jobs) if (job.started) job.finish();
      await settle();
    }
    assert.deepEqual(h.startOrder, ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]);
  });
});

describe("TurnScheduler admission", () => {
  test("rejects with overloaded once the queue is full, but admits jobs that start at once", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 2, maxQueue: 2 });
    const running = h.job("a", "a0");
    submitAll(s, [running, h.job("a", "a1"), h.job("a", "a2")]);
    assert.equal(s.queued, 2);
    assert.deepEqual(s.submit(h.job("a", "a3")), { accepted: false, reason: "overloaded" });
    assert.deepEqual(s.submit(h.job("a", "ctl", "control")), { accepted: false, reason: "overloaded" });
    // A free slot and an idle session: starts now, so the full queue does not matter.
    submitAll(s, [h.job("b", "b0")]);
    assert.deepEqual(s.submit(h.job("c", "c0")), { accepted: false, reason: "overloaded" });
    // A control job of an idle session takes no slot and starts now.
    submitAll(s, [h.job("d", "d-ctl", "control")]);
    assert.equal(s.queued, 2);
    await settle();
    assert.deepEqual(h.startOrder, ["a0", "b0", "d-ctl"]);
  });

  test("rate limit: at most N admitted per session in any sliding minute", () => {
    let now = 0;
    const h = new Harness();
    const s = scheduler({ rateLimitPerMinute: 2, now: () => now });
    const submit = (key = "a") => s.submit(h.job(key, "x"));
    const limited = { accepted: false, reason: "rate_limited" };
    assert.equal(submit().accepted, true);
    now = 30_000;
    assert.equal(submit().accepted, true);
    now = 50_000;
    assert.deepEqual(submit(), limited);
    assert.equal(submit("b").accepted, true, "other sessions are independent");
    assert.equal(s.submit(h.job("a", "ctl", "control")).accepted, true, "control jobs are not limited");
    now = 59_999;
    assert.deepEqual(submit(), limited);
    now = 60_000; // the hit at 0 leaves the window
    assert.equal(submit().accepted, true);
    now = 70_000; // hits at 30 000 and 60 000 are inside
    assert.deepEqual(submit(), limited);
    now = 90_000;
    assert.equal(submit().accepted, true);
  });

  test("rate limit 0 means unlimited", () => {
    const h = new Harness();
    const s = scheduler({ rateLimitPerMinute: 0, now: () => 0 });
    for (let i = 0; i < 500; i++) assert.equal(s.submit(h.job("a", `a${i}`)).accepted, true);
  });

  test("rejected submits do not use up the rate limit", () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1, maxQueue: 0, rateLimitPerMinute: 2, now: () => 0 });
    submitAll(s, [h.job("other", "other")]);
    assert.deepEqual(s.submit(h.job("a", "a0")), { accepted: false, reason: "overloaded" });
    assert.deepEqual(s.submit(h.job("a", "a1")), { accepted: false, reason: "overloaded" });
    s.setConcurrency(2);
    assert.equal(s.submit(h.job("a", "a2")).accepted, true);
  });
});

describe("TurnScheduler coalescing (game-state snapshots)", () => {
  test("a new snapshot replaces the waiting one, never the running one", async () => {
    const h = new Harness();
    const s = scheduler();
    const s1 = h.job("m", "s1", "snapshot");
    const s2 = h.job("m", "s2", "snapshot");
    const s3 = h.job("m", "s3", "snapshot");
    submitAll(s, [s1, s2]);
    await settle();
    assert.deepEqual(s.submit(s3), { accepted: true, coalesced: true });
    assert.equal(s2.cancelled, "superseded");
    assert.equal(s1.cancelled, undefined);
    assert.equal(s.queued, 1);
    s1.finish();
    await settle();
    s3.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["s1", "s3"]);
    assert.equal(s2.started, false);
  });

  test("a snapshot submitted while only one runs is queued, not coalesced", async () => {
    const h = new Harness();
    const s = scheduler();
    submitAll(s, [h.job("m", "s1", "snapshot"), h.job("m", "s2", "snapshot")]);
    assert.equal(s.queued, 1);
  });

  test("never coalesces across a chat turn or a control job", async () => {
    const h = new Harness();
    const s = scheduler();
    const s2 = h.job("m", "s2", "snapshot");
    submitAll(s, [h.job("m", "s1", "snapshot"), s2, h.job("m", "t", "turn"), h.job("m", "s3", "snapshot")]);
    const s4 = h.job("m", "s4", "snapshot");
    submitAll(s, [h.job("m", "c", "control"), s4]);
    assert.equal(s.queued, 5);
    assert.equal(s2.cancelled, undefined);
    // Only a snapshot at the very end of the waiting line is replaced.
    assert.deepEqual(s.submit(h.job("m", "s5", "snapshot")), { accepted: true, coalesced: true });
    assert.equal(s.queued, 5);
    assert.equal(s4.cancelled, "superseded");
  });

  test("coalescing is neither rate limited nor counted", () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1, rateLimitPerMinute: 2, now: () => 0 });
    submitAll(s, [h.job("m", "s1", "snapshot"), h.job("m", "s2", "snapshot")]);
    assert.deepEqual(s.submit(h.job("m", "s3", "snapshot")), { accepted: true, coalesced: true });
    assert.deepEqual(s.submit(h.job("m", "t", "turn")), { accepted: false, reason: "rate_limited" });
  });

  test("coalescing works even when the queue is full", () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1, maxQueue: 1 });
    submitAll(s, [h.job("m", "s1", "snapshot"), h.job("m", "s2", "snapshot")]);
    assert.deepEqual(s.submit(h.job("m", "s3", "snapshot")), { accepted: true, coalesced: true });
  });
});

describe("TurnScheduler control jobs", () => {
  test("keep per-session order and take no slot", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const other = h.job("x", "x0");
    const turn = h.job("a", "turn");
    const control = h.job("a", "control", "control");
    const solo = h.job("b", "b-control", "control");
    submitAll(s, [other, turn, control, solo]);
    await settle();
    assert.deepEqual(h.startOrder, ["x0", "b-control"], "control of an idle session runs despite full slots");
    assert.equal(s.inFlight, 1);
    assert.equal(control.started, false, "waits behind its session's turn");
    other.finish();
    await settle();
    assert.equal(turn.started, true);
    assert.equal(control.started, false);
    turn.finish();
    await settle();
    assert.equal(control.started, true);
    assert.equal(s.inFlight, 0, "a running control job holds no slot");
    assert.equal(s.sessionsWaiting, 2, "but it still occupies its session");
  });

  test("a control job runs while every slot is busy and is followed by its session's turn", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const control = h.job("a", "ctl", "control");
    const turn = h.job("a", "turn");
    const other = h.job("x", "x0");
    submitAll(s, [other, control, turn]);
    await settle();
    assert.ok(control.started);
    control.finish();
    await settle();
    assert.equal(turn.started, false, "needs a slot");
    other.finish();
    await settle();
    assert.ok(turn.started);
  });
});

describe("TurnScheduler slots", () => {
  test("a job holds its slot until its run() settles", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const first = h.job("a", "a0");
    const other = h.job("b", "b0");
    submitAll(s, [first, other]);
    await settle();
    assert.deepEqual(h.startOrder, ["a0"]);
    assert.equal(s.inFlight, 1);
    first.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["a0", "b0"], "the slot went to the next ready session");
    assert.equal(s.inFlight, 1);
    other.finish();
    await settle();
    assert.equal(s.inFlight, 0);
  });
});

describe("TurnScheduler failures", () => {
  test("a rejecting or throwing run() does not stall its session", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const rejects = h.job("a", "rejects", "turn", "reject");
    const throws = h.job("a", "throws", "turn", "throw");
    const next = h.job("a", "next");
    submitAll(s, [rejects, throws, next]);
    await settle();
    rejects.finish();
    await settle();
    assert.ok(next.started);
    assert.equal(s.inFlight, 1);
  });

  test("a throwing cancel() does not break the scheduler", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const first = h.job("m", "s1", "snapshot");
    const bad = h.job("m", "s2", "snapshot");
    bad.cancel = () => {
      throw new Error("cancel threw");
    };
    const last = h.job("m", "s3", "snapshot");
    submitAll(s, [first, bad]);
    assert.equal(s.submit(last).accepted, true);
    first.finish();
    await settle();
    assert.ok(last.started);
  });
});

describe("TurnScheduler drain", () => {
  test("running jobs finish, queued jobs are cancelled, later submits are rejected", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const running = h.job("a", "a0");
    const queuedSame = h.job("a", "a1");
    const queuedOther = h.job("b", "b0");
    submitAll(s, [running, queuedSame, queuedOther]);
    await settle();
    let drained = false;
    const done = s.drain(0).then(() => (drained = true));
    assert.equal(queuedSame.cancelled, "shutdown");
    assert.equal(queuedOther.cancelled, "shutdown");
    assert.equal(running.cancelled, undefined);
    assert.equal(s.queued, 0);
    assert.deepEqual(s.submit(h.job("c", "c0")), { accepted: false, reason: "shutting_down" });
    await settle();
    assert.equal(drained, false, "waits for the running job");
    running.finish();
    await done;
    assert.deepEqual(h.startOrder, ["a0"]);
    assert.equal(s.sessionsWaiting, 0);
  });

  test("queued jobs still start during the grace period", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const jobs = [h.job("a", "a0"), h.job("a", "a1"), h.job("b", "b0")];
    submitAll(s, jobs);
    const done = s.drain(60_000);
    while (h.startOrder.length < jobs.length || h.running > 0) {
      for (const job of jobs) if (job.started) job.finish();
      await settle();
    }
    await done; // resolves as soon as all work is done, without waiting for the grace timer
    assert.deepEqual(h.startOrder, ["a0", "b0", "a1"]);
    assert.ok(jobs.every((job) => job.cancelled === undefined));
  });

  test("resolves at once when idle and returns the same promise when called twice", async () => {
    const s = scheduler();
    const first = s.drain(1000);
    assert.equal(s.drain(0), first);
    await first;
  });
});
