import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Harness, scheduler, settle, submitAll, type TestJob } from "./harness.js";

/** A game-state job that aborts the running one it makes stale, as the maze's are. */
function superseding(h: Harness, sessionKey: string, name: string): TestJob {
  return Object.assign(h.job(sessionKey, name, "snapshot"), { supersedesRunning: true });
}

function named(job: TestJob, requestId: string): TestJob {
  return Object.assign(job, { requestId });
}

describe("TurnScheduler: a newer state supersedes the running one", () => {
  test("the running job's signal aborts, its slot goes to the newer job of its session", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const s1 = superseding(h, "m", "s1");
    const s2 = superseding(h, "m", "s2");
    submitAll(s, [s1]);
    await settle();
    assert.equal(s1.signal?.aborted, false);
    submitAll(s, [s2]);
    assert.equal(s1.signal?.reason, "superseded");
    assert.equal(s1.cancelled, undefined, "a started job is aborted, not cancelled");
    await settle();
    assert.deepEqual(h.startOrder, ["s1", "s2"]);
    assert.equal(s.inFlight, 1);
    assert.equal(s2.signal?.aborted, false);
  });

  test("the newest of several replaces the waiting one and the running one is aborted once", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const other = h.job("x", "x");
    const [s1, s2, s3] = ["s1", "s2", "s3"].map((name) => superseding(h, "m", name));
    submitAll(s, [s1!]);
    await settle();
    submitAll(s, [other, s2!]);
    assert.deepEqual(s.submit(s3!), { accepted: true, coalesced: true });
    assert.equal(s2!.cancelled, "superseded");
    assert.equal(s1!.signal?.reason, "superseded");
    await settle();
    // The other session became ready first and takes the freed slot first.
    other.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["s1", "x", "s3"]);
  });

  test("only a job with the same coalesce key and supersedesRunning aborts the running one", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 2 });
    const queuedOnly = h.job("q", "q1", "snapshot");
    const chat = h.job("m", "chat");
    submitAll(s, [queuedOnly, chat]);
    await settle();
    submitAll(s, [h.job("q", "q2", "snapshot"), superseding(h, "m", "s1")]);
    assert.equal(queuedOnly.signal?.aborted, false, "a project that only replaces waiting jobs");
    assert.equal(chat.signal?.aborted, false, "a chat turn is never stale");
  });

  test("a newer state refused by the rate limit aborts nothing", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1, rateLimitPerMinute: 1, now: () => 0 });
    const s1 = superseding(h, "m", "s1");
    submitAll(s, [s1]);
    await settle();
    assert.deepEqual(s.submit(superseding(h, "m", "s2")), { accepted: false, reason: "rate_limited" });
    assert.equal(s1.signal?.aborted, false);
  });
});

describe("TurnScheduler.cancel", () => {
  test("a waiting job is taken out and cancelled; its session goes on", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const [a1, a2, a3] = ["a1", "a2", "a3"].map((name) => named(h.job("a", name), name));
    submitAll(s, [a1!, a2!, a3!]);
    assert.equal(s.cancel("a", "a2"), 1);
    assert.equal(a2!.cancelled, "cancelled");
    assert.equal(s.queued, 1);
    a1!.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["a1", "a3"]);
  });

  test("a running job has its signal aborted and frees its slot for the next", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const a1 = named(h.job("a", "a1"), "r1");
    const b1 = h.job("b", "b1");
    submitAll(s, [a1, b1]);
    await settle();
    assert.equal(s.cancel("a", "r1"), 1);
    assert.equal(a1.signal?.reason, "cancelled");
    await settle();
    assert.deepEqual(h.startOrder, ["a1", "b1"]);
    assert.equal(s.cancel("a", "r1"), 0, "done already");
  });

  test("unknown sessions and request ids find nothing", () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    submitAll(s, [named(h.job("a", "a1"), "r1"), h.job("a", "a2")]);
    assert.equal(s.cancel("a", "nope"), 0);
    assert.equal(s.cancel("b", "r1"), 0);
    assert.equal(s.queued, 1);
  });

  test("cancelling the only waiting job of a ready session takes the session out of line", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const busy = h.job("x", "x1");
    const waiting = named(h.job("a", "a1"), "r1");
    submitAll(s, [busy, waiting]);
    assert.equal(s.cancel("a", "r1"), 1);
    assert.equal(s.queued, 0);
    busy.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["x1"]);
    assert.equal(s.sessionsWaiting, 0);
    // The scheduler is still whole: new work starts as usual.
    submitAll(s, [h.job("a", "a2")]);
    await settle();
    assert.deepEqual(h.startOrder, ["x1", "a2"]);
  });

  test("a control job left at the head of an idle session starts at once", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const busy = h.job("x", "x1");
    const control = h.job("a", "clear", "control");
    submitAll(s, [busy, named(h.job("a", "a1"), "r1"), control]);
    assert.equal(s.cancel("a", "r1"), 1);
    await settle();
    assert.deepEqual(h.startOrder, ["x1", "clear"]);
  });

  test("a drain waits for nothing that was cancelled", async () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1 });
    const a1 = named(h.job("a", "a1"), "r1");
    submitAll(s, [a1, named(h.job("a", "a2"), "r2")]);
    await settle();
    const drained = s.drain(60_000);
    s.cancel("a", "r2");
    s.cancel("a", "r1");
    await drained;
    assert.equal(s.queued + s.inFlight, 0);
  });
});

describe("TurnScheduler: jobs that expire while waiting", () => {
  test("are cancelled with expired instead of started; the next job takes the slot", async () => {
    let now = 0;
    const h = new Harness();
    const s = scheduler({ concurrency: 1, now: () => now });
    const running = h.job("x", "x1");
    const stale = Object.assign(h.job("a", "a1"), { expiresAt: 500 });
    const fresh = Object.assign(h.job("b", "b1"), { expiresAt: 5_000 });
    submitAll(s, [running, stale, fresh]);
    await settle();
    now = 1_000;
    running.finish();
    await settle();
    assert.equal(stale.cancelled, "expired");
    assert.equal(stale.started, false);
    assert.deepEqual(h.startOrder, ["x1", "b1"]);
    assert.equal(s.queued, 0);
  });

  test("a job of the same session behind an expired one still runs", async () => {
    let now = 0;
    const h = new Harness();
    const s = scheduler({ concurrency: 1, now: () => now });
    const running = h.job("x", "x1");
    submitAll(s, [running, Object.assign(h.job("a", "a1"), { expiresAt: 500 }), h.job("a", "a2")]);
    now = 1_000;
    running.finish();
    await settle();
    assert.deepEqual(h.startOrder, ["x1", "a2"]);
  });

  test("one already expired when submitted is cancelled at once", () => {
    const h = new Harness();
    const s = scheduler({ concurrency: 1, now: () => 1_000 });
    const job = Object.assign(h.job("a", "a1"), { expiresAt: 1_000 });
    submitAll(s, [job]);
    assert.equal(job.cancelled, "expired");
    assert.equal(s.inFlight + s.queued + s.sessionsWaiting, 0);
  });

  test("a running job never expires", async () => {
    let now = 0;
    const h = new Harness();
    const s = scheduler({ concurrency: 1, now: () => now });
    const job = Object.assign(h.job("a", "a1"), { expiresAt: 500 });
    submitAll(s, [job]);
    await settle();
    now = 1_000;
    submitAll(s, [h.job("a", "a2")]);
    job.finish();
    await settle();
    assert.equal(job.cancelled, undefined);
    assert.equal(job.signal?.aborted, false);
    assert.deepEqual(h.startOrder, ["a1", "a2"]);
  });
});
