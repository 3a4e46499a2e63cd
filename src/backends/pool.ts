import type { Logger } from "pino";
import { missedDeadline, requestCancelled, withPartialText } from "./errors.js";
import {
  BackendError,
  type BackendErrorCode,
  type BackendHealth,
  type ChatRequest,
  type ChatResult,
  type ModelBackend,
} from "./types.js";

export interface PoolMember {
  backend: ModelBackend;
  /** Share of the traffic relative to the other members; default 1. */
  weight?: number;
  /** Parallel calls this member takes, overriding what it reports (configured `slots`). */
  slots?: number;
}

export interface PoolOptions {
  /** Parallel calls for a member that neither has a `slots` override nor reports its slots. */
  defaultSlots: number;
  /** How long a member that failed is left out, at least; default 5000. */
  cooldownMs?: number;
  logger: Logger;
  /** Clock, epoch milliseconds. */
  now?: () => number;
  /** How many affinity keys are remembered (least recently used go first); default 10,000. */
  maxAffinityKeys?: number;
  /**
   * When a stream breaks after text was delivered, continue on another member by sending the
   * delivered text as the start of the assistant's answer (llama-server continues a final
   * assistant message). Default true; when false, such a failure is final.
   */
  continueBrokenStreams?: boolean;
}

export interface MemberStatus {
  name: string;
  healthy: boolean;
  coolingDown: boolean;
  /** Capacity: the configured override, else the server's own count, else the default. */
  slots: number;
  inFlight: number;
  served: number;
  failed: number;
}

const DEFAULT_COOLDOWN_MS = 5000;
const DEFAULT_MAX_AFFINITY_KEYS = 10_000;
// Failures that say something about this server rather than the request: another may do better.
const FAILOVER_CODES = new Set<BackendErrorCode>(["unreachable", "server_error", "rate_limited"]);
// setTimeout fires at once for delays above 2^31-1 ms; a far deadline must not become an instant one.
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Member {
  readonly backend: ModelBackend;
  readonly index: number;
  readonly weight: number;
  readonly slots: number | undefined;
  inFlight: number;
  served: number;
  failed: number;
  /** While cooling down: the earliest time it may end (it also waits for the server to be healthy). */
  coolUntil: number | undefined;
  coolReason: string;
  coolTimer: NodeJS.Timeout | undefined;
}

/**
 * Several model servers behind one ModelBackend. A call goes to a member with a free slot,
 * preferring the member that last served the same conversation; a member that fails for reasons
 * of its own cools down while the call moves on to another member within the same deadline.
 *
 * The pool keeps no waiting line: the scheduler runs no more calls than the usable members have
 * slots, so a free slot is normally there. When none is (a failover, or capacity that just
 * shrank), the call goes to the least-loaded usable member it has not tried: llama-server queues
 * a request it has no free slot for, and the turn's deadline still bounds the wait.
 */
export class BackendPool implements ModelBackend {
  readonly name: string;
  private readonly members: Member[];
  private readonly defaultSlots: number;
  private readonly cooldownMs: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxAffinityKeys: number;
  private readonly continueBrokenStreams: boolean;
  private readonly affinity = new Map<string, Member>();
  private readonly listeners: ((health: Readonly<BackendHealth>) => void)[] = [];
  private reported: BackendHealth;
  /** Where the round-robin among equally good members continues. */
  private cursor = 0;

  constructor(members: PoolMember[], options: PoolOptions) {
    if (members.length === 0) throw new RangeError("a backend pool needs at least one member");
    this.members = members.map((m, index) => {
      const weight = m.weight ?? 1;
      if (!(weight > 0 && Number.isFinite(weight))) {
        throw new RangeError(`pool member ${m.backend.name}: weight must be a positive number`);
      }
      if (m.slots !== undefined && !(Number.isInteger(m.slots) && m.slots > 0)) {
        throw new RangeError(`pool member ${m.backend.name}: slots must be a positive integer`);
      }
      return {
        backend: m.backend,
        index,
        weight,
        slots: m.slots,
        inFlight: 0,
        served: 0,
        failed: 0,
        coolUntil: undefined,
        coolReason: "",
        coolTimer: undefined,
      };
    });
    this.name = `pool(${members.length} server${members.length === 1 ? "" : "s"})`;
    this.defaultSlots = options.defaultSlots;
    this.cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.maxAffinityKeys = options.maxAffinityKeys ?? DEFAULT_MAX_AFFINITY_KEYS;
    this.continueBrokenStreams = options.continueBrokenStreams ?? true;
    for (const member of this.members) member.backend.onHealthChange(() => this.refresh());
    this.reported = this.health();
  }

  async start(): Promise<void> {
    await Promise.all(this.members.map((m) => m.backend.start()));
    this.refresh();
  }

  async stop(): Promise<void> {
    for (const member of this.members) {
      clearTimeout(member.coolTimer);
      member.coolTimer = undefined;
    }
    await Promise.all(this.members.map((m) => m.backend.stop()));
  }

  health(): BackendHealth {
    let slots = 0;
    let anyUsable = false;
    // A turn may go to any member: the smallest context is the one every prompt must fit.
    let contextTokens: number | undefined;
    for (const member of this.members) {
      if (!this.usable(member)) continue;
      anyUsable = true;
      slots += this.capacity(member);
      const context = member.backend.health().contextTokens;
      if (context !== undefined) contextTokens = Math.min(context, contextTokens ?? context);
    }
    if (!anyUsable) return { healthy: false, detail: this.unavailableDetail() };
    return contextTokens === undefined ? { healthy: true, slots } : { healthy: true, slots, contextTokens };
  }

  onHealthChange(listener: (health: Readonly<BackendHealth>) => void): void {
    this.listeners.push(listener);
  }

  status(): MemberStatus[] {
    return this.members.map((m) => ({
      name: m.backend.name,
      healthy: m.backend.health().healthy,
      coolingDown: this.coolingDown(m),
      slots: this.capacity(m),
      inFlight: m.inFlight,
      served: m.served,
      failed: m.failed,
    }));
  }

  async chat(request: ChatRequest, signal?: AbortSignal): Promise<ChatResult> {
    // Members that failed this call.
    const tried = new Set<Member>();
    // Everything delivered to the caller so far, across members.
    let delivered = "";
    const onDelta = request.onDelta;
    const deliver = onDelta
      ? (text: string): void => {
          delivered += text;
          onDelta(text);
        }
      : undefined;
    const failed = (error: BackendError): BackendError =>
      delivered ? withPartialText(error, delivered) : error;
    let lastError: BackendError | undefined;
    for (;;) {
      if (signal?.aborted) throw failed(requestCancelled());
      if (this.now() >= request.deadline) throw failed(missedDeadline());
      const member = this.pick(tried, request.affinityKey);
      if (!member) throw failed(lastError ?? this.noServer());
      const before = delivered;
      const attempt: ChatRequest = {
        ...request,
        // Continues an answer of which `before` has already been sent.
        messages: before ? [...request.messages, { role: "assistant", content: before }] : request.messages,
        onDelta: deliver,
        // The last server left keeps its own retries: a passing fault (a reset connection) must
        // not leave the pool with no server at all.
        singleAttempt: this.members.some((m) => m !== member && !tried.has(m) && this.usable(m)),
      };
      member.inFlight++;
      try {
        const result = await member.backend.chat(attempt, signal);
        member.served++;
        this.remember(request.affinityKey, member);
        return before ? { ...result, text: before + result.text } : result;
      } catch (err) {
        // Anything else (the caller's onDelta throwing, say) says nothing about the server.
        if (!(err instanceof BackendError)) throw err;
        if (err.code !== "cancelled") member.failed++;
        if (!FAILOVER_CODES.has(err.code)) throw failed(err);
        tried.add(member);
        this.coolDown(member, err);
        if (delivered && !this.continueBrokenStreams) throw failed(err);
        lastError = err;
      } finally {
        member.inFlight--;
      }
    }
  }

  /**
   * The member for a call among the usable ones it has not tried: the one that last served its
   * conversation if it has a free slot, else the one with the most free slots by weight (ties
   * take turns, from `cursor` on); when none has a free slot, the least loaded for its capacity.
   */
  private pick(tried: ReadonlySet<Member>, affinityKey: string | undefined): Member | undefined {
    const n = this.members.length;
    // Every member once, starting at the cursor, so that ties take turns.
    const candidates = Array.from({ length: n }, (_, k) => this.members[(this.cursor + k) % n]!).filter(
      (m) => !tried.has(m) && this.usable(m),
    );
    if (candidates.length === 0) return undefined;
    const preferred = affinityKey === undefined ? undefined : this.affinity.get(affinityKey);
    if (preferred && candidates.includes(preferred) && this.freeSlots(preferred) > 0) return preferred;
    const withFreeSlot = candidates.filter((m) => this.freeSlots(m) > 0);
    const best = withFreeSlot.length
      ? maxBy(withFreeSlot, (m) => this.freeSlots(m) * m.weight)
      : maxBy(candidates, (m) => -m.inFlight / (this.capacity(m) * m.weight));
    this.cursor = (best.index + 1) % n;
    return best;
  }

  private freeSlots(member: Member): number {
    return this.capacity(member) - member.inFlight;
  }

  private remember(affinityKey: string | undefined, member: Member): void {
    // With one server there is no choice to remember; the map would only cost memory per session.
    if (affinityKey === undefined || this.members.length === 1) return;
    this.affinity.delete(affinityKey);
    this.affinity.set(affinityKey, member);
    if (this.affinity.size > this.maxAffinityKeys) {
      const oldest = this.affinity.keys().next();
      if (!oldest.done) this.affinity.delete(oldest.value);
    }
  }

  private capacity(member: Member): number {
    return member.slots ?? member.backend.health().slots ?? this.defaultSlots;
  }

  private usable(member: Member): boolean {
    return member.backend.health().healthy && !this.coolingDown(member);
  }

  private coolingDown(member: Member): boolean {
    if (member.coolUntil === undefined) return false;
    return this.now() < member.coolUntil || !member.backend.health().healthy;
  }

  /**
   * Leaves a failed member out for `cooldownMs` and until it is healthy. With a single member
   * there is nobody to steer traffic to, so it stays in: its own retries are all there is.
   */
  private coolDown(member: Member, error: BackendError): void {
    if (this.members.length < 2) return;
    const starting = member.coolUntil === undefined;
    member.coolUntil = this.now() + this.cooldownMs;
    member.coolReason = error.message;
    this.scheduleCoolEnd(member);
    if (starting) {
      const others = this.members.some((m) => m !== member && this.usable(m));
      this.logger.warn(
        { server: member.backend.name, code: error.code, status: error.status, cooldownMs: this.cooldownMs },
        `model server at ${member.backend.name} failed (${error.message}); left out for at least ` +
          `${this.cooldownMs / 1000}s${others ? ", using the other servers" : ""}`,
      );
    }
    this.refresh();
  }

  /** Re-checks the member when its cooldown time is up (its health may keep it out longer). */
  private scheduleCoolEnd(member: Member): void {
    clearTimeout(member.coolTimer);
    if (member.coolUntil === undefined) return;
    member.coolTimer = setTimeout(
      () => {
        member.coolTimer = undefined;
        if (member.coolUntil !== undefined && this.now() < member.coolUntil) this.scheduleCoolEnd(member);
        else this.refresh();
      },
      Math.min(MAX_TIMER_MS, Math.max(1, member.coolUntil - this.now())),
    );
    // A cooldown alone must never keep the process alive.
    member.coolTimer.unref();
  }

  /** Ends cooldowns that are over and tells listeners about a changed aggregate. */
  private refresh(): void {
    for (const member of this.members) {
      if (member.coolUntil !== undefined && !this.coolingDown(member)) {
        member.coolUntil = undefined;
        clearTimeout(member.coolTimer);
        member.coolTimer = undefined;
        this.logger.info(
          { server: member.backend.name },
          `model server at ${member.backend.name} is back in the pool`,
        );
      }
    }
    const next = this.health();
    const prev = this.reported;
    if (
      next.healthy !== prev.healthy ||
      next.slots !== prev.slots ||
      next.contextTokens !== prev.contextTokens ||
      next.detail !== prev.detail
    ) {
      this.reported = next;
      for (const listener of this.listeners) listener({ ...next });
    }
  }

  private unavailableDetail(): string {
    const why = this.members.map((m) => {
      const reason = this.coolingDown(m)
        ? `cooling down after: ${m.coolReason}`
        : (m.backend.health().detail ?? "unavailable");
      return `${m.backend.name}: ${reason}`;
    });
    return `no model server available: ${why.join("; ")}`;
  }

  private noServer(): BackendError {
    return new BackendError("unreachable", this.unavailableDetail());
  }
}

/** The first item with the highest score. */
function maxBy<T>(items: readonly T[], score: (item: T) => number): T {
  return items.reduce((best, item) => (score(item) > score(best) ? item : best));
}
