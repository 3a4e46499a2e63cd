import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { CallSignal } from "../../src/backends/callSignal.js";

test("the deadline aborts the call with a TimeoutError", async () => {
  const call = new CallSignal({ deadline: Date.now() + 10 });
  await sleep(40);
  assert.equal(call.signal.aborted, true);
  assert.equal((call.signal.reason as Error).name, "TimeoutError");
  assert.equal(call.expired, true);
  assert.equal(call.cancelled, false);
});

test("a deadline already past aborts at once", () => {
  const call = new CallSignal({ deadline: Date.now() - 1 });
  assert.equal(call.signal.aborted, true);
  assert.equal(call.expired, true);
});

test("any source's abort aborts the call with that source's reason", () => {
  const cancel = new AbortController();
  const shutdown = new AbortController();
  const call = new CallSignal({
    deadline: Date.now() + 60_000,
    sources: [cancel.signal, undefined, shutdown.signal],
  });
  const reason = new Error("shutting down");
  shutdown.abort(reason);
  assert.equal(call.signal.aborted, true);
  assert.equal(call.signal.reason, reason);
  assert.equal(call.cancelled, true);
  assert.equal(call.expired, false);
  assert.equal(getEventListeners(cancel.signal, "abort").length, 0, "the other source is let go");
});

test("a source aborted before the call starts aborts it at once", () => {
  const cancel = new AbortController();
  cancel.abort();
  const call = new CallSignal({ deadline: Date.now() + 60_000, sources: [cancel.signal] });
  assert.equal(call.signal.aborted, true);
  assert.equal(call.cancelled, true);
  assert.equal(getEventListeners(cancel.signal, "abort").length, 0);
});

test("dispose takes the listener off a source that outlives the calls", () => {
  const shutdown = new AbortController();
  for (let i = 0; i < 1000; i++) {
    new CallSignal({ deadline: Date.now() + 60_000, sources: [shutdown.signal] }).dispose();
  }
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 0);
  const open = new CallSignal({ sources: [shutdown.signal] });
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 1);
  open.dispose();
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 0);
});

test("dispose clears the deadline: a finished call is never aborted later", async () => {
  const call = new CallSignal({ deadline: Date.now() + 10 });
  call.dispose();
  await sleep(40);
  assert.equal(call.signal.aborted, false);
  assert.equal(call.expired, false);
});
