import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createLogger } from "../../src/observability/logger.js";
import { RedisSessionOrder, type Ticket } from "../../src/scaleout/sessionOrder.js";
import { connectRedis } from "../../src/sessions/redisConnection.js";
import { redisAvailable, startRedis, type TestRedis } from "../support/redis.js";
import { eventually } from "../support/wait.js";

const skip = redisAvailable() || process.env.CI === "true" ? false : "redis-server is not installed";
const logger = createLogger("silent");

describe("RedisSessionOrder", { skip }, () => {
  let redis: TestRedis;
  let prefix = 0;
  const orders: RedisSessionOrder[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(orders.map((order) => order.stop()));
    await redis.stop();
  });

  /** An instance's view of the order; instances made in one test share its key prefix. */
  async function instance(name: string, holdTtlMs = 2000): Promise<RedisSessionOrder> {
    const order = new RedisSessionOrder({
      connect: (connection) => connectRedis({ url: redis.url, keyPrefix: "" }, logger, connection),
      keyPrefix: `test${prefix}:`,
      instanceId: name,
      holdTtlMs,
      idleTtlMs: 60_000,
      logger,
    });
    await order.start();
    orders.push(order);
    return order;
  }

  function isReady(ticket: Ticket): Promise<boolean> {
    return Promise.race([
      ticket.ready.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 50)),
    ]);
  }

  test("tickets of one session go one at a time, in the order taken, across instances", async () => {
    prefix++;
    const a = await instance("a");
    const b = await instance("b");
    const t1 = await a.enter("s");
    const t2 = await b.enter("s");
    const t3 = await a.enter("s");
    const other = await b.enter("other");
    assert.equal(await isReady(t1), true);
    assert.equal(await isReady(other), true, "another session does not wait");
    assert.equal(await isReady(t2), false);
    assert.equal(await isReady(t3), false);
    await t1.finish();
    await t2.ready;
    assert.equal(await isReady(t3), false);
    await t2.finish();
    await t3.ready;
    await t3.finish();
    await other.finish();
    assert.equal(a.held + b.held, 0);
  });

  test("many requests from two instances run strictly one after another, none skipped", async () => {
    prefix++;
    const instances = [await instance("a"), await instance("b")];
    const ran: number[] = [];
    let running = 0;
    let overlap = 0;
    const work = Array.from({ length: 40 }, async (_, i) => {
      const ticket = await instances[i % 2]!.enter("busy");
      await ticket.ready;
      running++;
      if (running > 1) overlap++;
      ran.push(i);
      await new Promise((r) => setImmediate(r));
      running--;
      await ticket.finish();
    });
    await Promise.all(work);
    assert.equal(overlap, 0);
    assert.equal(ran.length, 40);
  });

  test("a ticket left before its turn (cancelled) does not block the ones after it", async () => {
    prefix++;
    const a = await instance("a");
    const t1 = await a.enter("s");
    const t2 = await a.enter("s");
    const t3 = await a.enter("s");
    await t2.finish(); // e.g. answered "shutting down" while waiting
    await t1.finish();
    await t3.ready;
    await t3.finish();
  });

  test("a ticket entered with a supersede key makes the earlier ones of that key stale, on every instance", async () => {
    prefix++;
    const a = await instance("a");
    const b = await instance("b");
    const oldState = await a.enter("s", "state");
    const chat = await a.enter("s", "chat");
    const plain = await b.enter("s");
    const otherSession = await b.enter("t", "state");
    const newState = await b.enter("s", "state");
    await eventually(() => oldState.superseded.aborted);
    assert.equal(oldState.superseded.reason, "superseded");
    for (const ticket of [chat, plain, otherSession, newState])
      assert.equal(ticket.superseded.aborted, false, "another key, no key, another session, or itself");
    // A superseded ticket keeps its place until it is finished, like any other.
    assert.equal(await isReady(oldState), true);
    for (const ticket of [oldState, chat, plain, newState, otherSession]) await ticket.finish();
    assert.equal(a.held + b.held, 0);
  });

  test("a dead instance's tickets are skipped once their hold lapses", async () => {
    prefix++;
    const doomed = await instance("doomed", 300);
    const survivor = await instance("survivor", 300);
    await doomed.enter("s"); // running when its instance dies
    await doomed.enter("s"); // waiting when its instance dies
    const mine = await survivor.enter("s");
    await doomed.stop(); // no more renewals: as if the process had been killed
    assert.equal(await isReady(mine), false, "not before the holds lapse");
    await eventually(() => isReady(mine), 5000);
    await mine.finish();
  });
});
