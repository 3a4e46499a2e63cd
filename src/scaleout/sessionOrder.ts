import type { Redis } from "ioredis";
import type { Logger } from "../observability/logger.js";

/** A place in one session's order across every instance of a share group. */
export interface Ticket {
  /** Resolves when every earlier ticket of the session has finished (or its holder died). */
  readonly ready: Promise<void>;
  /**
   * Aborted with the reason "superseded" when a later ticket of the session entered with the
   * same supersede key, on any instance: this request is stale.
   */
  readonly superseded: AbortSignal;
  /** Hands the session to the next ticket. Safe to call more than once, and before `ready`. */
  finish(): Promise<void>;
}

/** Orders the work of each session across instances; `enter` resolves once the place is taken. */
export interface SessionOrder {
  /** With a `supersedeKey`, the ticket supersedes the session's earlier tickets of the same key. */
  enter(sessionKey: string, supersedeKey?: string): Promise<Ticket>;
  /** Tickets taken here and not finished, waiting or running. */
  readonly held: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisSessionOrderOptions {
  /** Opens a Redis connection; two are used: commands, and finish notifications (subscribe mode). */
  connect: (name: string) => Promise<Redis>;
  keyPrefix: string;
  /** Who holds a ticket, for operators reading Redis. */
  instanceId: string;
  /** A ticket whose instance stopped renewing it for this long is skipped. */
  holdTtlMs: number;
  /** Keys of a session nobody used for this long disappear. */
  idleTtlMs: number;
  logger: Logger;
}

// KEYS: seq, hold prefix, done. ARGV: instance, hold ttl, idle ttl, and for a superseding
// ticket: channel, session key, supersede key. A session whose counter had expired starts over
// at 1, so a `done` left from before must go too. The notice goes out with the number taken, so
// no instance can see the ticket without it.
const ENTER = `
local t = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if t == 1 then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[2] .. t, ARGV[1], 'PX', ARGV[2])
if ARGV[4] then redis.call('PUBLISH', ARGV[4], cjson.encode({ARGV[5], t, ARGV[6]})) end
return t`;

// KEYS: done, hold prefix. ARGV: ticket, idle ttl. Skips tickets whose holder is gone. Returns
// 1 when the ticket's turn has come, 2 when it was itself skipped (its hold lapsed while it
// waited), 0 to wait.
const IS_TURN = `
local t = tonumber(ARGV[1])
local d = tonumber(redis.call('GET', KEYS[1]) or '0')
while d + 1 < t and redis.call('EXISTS', KEYS[2] .. (d + 1)) == 0 do d = d + 1 end
redis.call('SET', KEYS[1], d, 'PX', ARGV[2])
if d + 1 == t then return 1 end
if d >= t then return 2 end
return 0`;

// KEYS: done, hold prefix. ARGV: ticket, idle ttl, channel, session key. Returns 1 when the
// session was handed on, 2 when the ticket left before its turn (it is skipped when reached),
// 0 when it had already been skipped as dead.
const FINISH = `
local t = tonumber(ARGV[1])
local d = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[2] .. t)
local outcome = 0
if d + 1 == t then
  redis.call('SET', KEYS[1], t, 'PX', ARGV[2])
  outcome = 1
elseif d + 1 < t then
  outcome = 2
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return outcome`;

interface Waiter {
  ticket: number;
  resolve: () => void;
}

/** A ticket of this instance not finished yet. */
interface Held {
  supersedeKey: string | undefined;
  superseded: AbortController;
}

/**
 * Per-session order across instances with Redis tickets: each request takes the next number of
 * its session (INCR, in the order this instance received it), runs when the session's `done`
 * counter reaches the number before it, and sets `done` to its own when finished. A ticket's
 * holder renews a short-lived hold key; when an instance dies its tickets' holds lapse and the
 * next ticket skips them, so a session is blocked for at most `holdTtlMs` plus one poll.
 */
export class RedisSessionOrder implements SessionOrder {
  /** Tickets of this instance not finished yet, per session: renewed together. */
  private readonly mine = new Map<string, Map<number, Held>>();
  /** Waiters per session, oldest ticket first. */
  private readonly waiting = new Map<string, Waiter[]>();
  private readonly channel: string;
  /** Where a superseding ticket is announced to every instance. */
  private readonly supersedeChannel: string;
  private readonly log: Logger;
  private heldCount = 0;
  private renewTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private connections?: { redis: Redis; subscriber: Redis };

  constructor(private readonly options: RedisSessionOrderOptions) {
    this.channel = `${options.keyPrefix}turn-finished`;
    this.supersedeChannel = `${options.keyPrefix}turn-superseded`;
    this.log = options.logger.child({ module: "session-order" });
  }

  get held(): number {
    return this.heldCount;
  }

  async start(): Promise<void> {
    const { connect, holdTtlMs } = this.options;
    const redis = await connect("session-order");
    const subscriber = await connect("session-order-events");
    this.connections = { redis, subscriber };
    subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.channel) void this.check(message);
      else this.supersede(message);
    });
    await subscriber.subscribe(this.channel, this.supersedeChannel);
    // A dead holder publishes nothing: waiters look again now and then to skip its tickets.
    this.renewTimer = setInterval(() => void this.renew(), holdTtlMs / 3);
    this.pollTimer = setInterval(() => this.checkAll(), holdTtlMs / 4);
    this.renewTimer.unref();
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer);
    clearInterval(this.pollTimer);
    const connections = this.connections;
    this.connections = undefined;
    if (!connections) return;
    const { redis, subscriber } = connections;
    await Promise.all([redis, subscriber].map((connection) => connection.quit().catch(() => undefined)));
  }

  private get redis(): Redis {
    if (!this.connections) throw new Error("session order used before start()");
    return this.connections.redis;
  }

  async enter(sessionKey: string, supersedeKey?: string): Promise<Ticket> {
    const { instanceId, holdTtlMs, idleTtlMs } = this.options;
    const redis = this.redis;
    const notice = supersedeKey === undefined ? [] : [this.supersedeChannel, sessionKey, supersedeKey];
    const ticket = Number(
      await redis.eval(
        ENTER,
        3,
        this.key("seq", sessionKey),
        this.holdPrefix(sessionKey),
        this.key("done", sessionKey),
        instanceId,
        holdTtlMs,
        idleTtlMs,
        ...notice,
      ),
    );
    let tickets = this.mine.get(sessionKey);
    if (!tickets) this.mine.set(sessionKey, (tickets = new Map()));
    const superseded = new AbortController();
    tickets.set(ticket, { supersedeKey, superseded });
    this.heldCount++;

    let finished = false;
    const ready = new Promise<void>((resolve) => {
      const queue = this.waiting.get(sessionKey) ?? [];
      queue.push({ ticket, resolve });
      queue.sort((a, b) => a.ticket - b.ticket);
      this.waiting.set(sessionKey, queue);
    });
    void this.check(sessionKey);
    return {
      ready,
      superseded: superseded.signal,
      finish: async () => {
        if (finished) return;
        finished = true;
        this.forget(sessionKey, ticket);
        const skipped = await this.finishInRedis(sessionKey, ticket);
        if (skipped) {
          this.log.warn(
            { sessionKey: printable(sessionKey), ticket },
            "a session turn outlived its hold: the next turn may have started before it finished",
          );
        }
      },
    };
  }

  /** Lets the oldest local waiter of a session go if its turn has come. Never rejects: it logs. */
  private async check(sessionKey: string): Promise<void> {
    const head = this.waiting.get(sessionKey)?.[0];
    if (!head) return;
    const { idleTtlMs } = this.options;
    let turn: unknown;
    try {
      // Inside the try: a notification or poll arriving after stop() finds no connection.
      turn = await this.redis.eval(
        IS_TURN,
        2,
        this.key("done", sessionKey),
        this.holdPrefix(sessionKey),
        head.ticket,
        idleTtlMs,
      );
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "cannot read session order; trying again shortly");
      return;
    }
    const queue = this.waiting.get(sessionKey);
    if (turn === 0 || queue?.[0] !== head) return;
    if (turn === 2) {
      // Better late than never: waiting on would block this request for good.
      this.log.warn(
        { sessionKey: printable(sessionKey), ticket: head.ticket },
        "a waiting turn lost its hold and was passed over; it runs now, after later ones",
      );
    }
    queue.shift();
    if (queue.length === 0) this.waiting.delete(sessionKey);
    head.resolve();
  }

  /** A notice that a ticket superseded the earlier ones of its session with the same key. */
  private supersede(message: string): void {
    let notice: unknown;
    try {
      notice = JSON.parse(message);
    } catch {
      return this.log.warn({ message }, "unreadable supersede notice ignored");
    }
    if (!Array.isArray(notice)) return;
    const [sessionKey, newer, supersedeKey] = notice as unknown[];
    const tickets = typeof sessionKey === "string" ? this.mine.get(sessionKey) : undefined;
    if (!tickets || typeof newer !== "number") return;
    for (const [ticket, held] of tickets) {
      if (ticket < newer && held.supersedeKey === supersedeKey) held.superseded.abort("superseded");
    }
  }

  private checkAll(): void {
    for (const sessionKey of this.waiting.keys()) void this.check(sessionKey);
  }

  /** True when the ticket had been skipped as dead while it was still at work. Never rejects: it logs. */
  private async finishInRedis(sessionKey: string, ticket: number): Promise<boolean> {
    const { idleTtlMs } = this.options;
    try {
      const outcome = await this.redis.eval(
        FINISH,
        2,
        this.key("done", sessionKey),
        this.holdPrefix(sessionKey),
        ticket,
        idleTtlMs,
        this.channel,
        sessionKey,
      );
      return outcome === 0;
    } catch (error) {
      // Its hold lapses on its own; the next ticket then goes after holdTtlMs.
      this.log.warn(
        { err: (error as Error).message, ticket },
        "cannot hand the session on; it frees itself when the hold lapses",
      );
      return false;
    }
  }

  private forget(sessionKey: string, ticket: number): void {
    const tickets = this.mine.get(sessionKey);
    if (!tickets?.delete(ticket)) return;
    this.heldCount--;
    if (tickets.size === 0) this.mine.delete(sessionKey);
    const queue = this.waiting.get(sessionKey);
    const index = queue?.findIndex((waiter) => waiter.ticket === ticket) ?? -1;
    if (queue && index >= 0) {
      queue.splice(index, 1);
      if (queue.length === 0) this.waiting.delete(sessionKey);
    }
  }

  /** Never rejects: a failure is logged and the holds are renewed on the next tick. */
  private async renew(): Promise<void> {
    if (this.mine.size === 0 || !this.connections) return;
    const pipeline = this.connections.redis.pipeline();
    const { holdTtlMs } = this.options;
    const renewed: Array<[string, number]> = [];
    for (const [sessionKey, tickets] of this.mine) {
      for (const ticket of tickets.keys()) {
        pipeline.pexpire(this.holdPrefix(sessionKey) + ticket, holdTtlMs);
        renewed.push([sessionKey, ticket]);
      }
    }
    try {
      const results = (await pipeline.exec()) ?? [];
      results.forEach(([, alive], i) => {
        if (alive === 0) {
          const [sessionKey, ticket] = renewed[i]!;
          this.log.warn(
            { sessionKey: printable(sessionKey), ticket },
            "a session hold lapsed before it was renewed",
          );
        }
      });
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "cannot renew session holds");
    }
  }

  private key(kind: string, sessionKey: string): string {
    return `${this.options.keyPrefix}order:${kind}:${sessionKey}`;
  }

  private holdPrefix(sessionKey: string): string {
    return `${this.key("hold", sessionKey)}:`;
  }
}

/** Session keys join project and session id with NUL; logs show a slash instead. */
function printable(sessionKey: string): string {
  return sessionKey.replace("\u0000", "/");
}
