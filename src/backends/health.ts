import type { Logger } from "pino";
import type { BackendHealth } from "./types.js";

export type HealthProbe = (signal: AbortSignal) => Promise<BackendHealth>;

export interface HealthMonitorOptions {
  intervalMs: number;
  /** How soon to re-probe after a request found the server unreachable. */
  quickRetryMs?: number;
  logger: Logger;
  /** The server as users know it (no credentials), for log lines. */
  server: string;
}

/**
 * Keeps the latest health of one model server: probes at start and then periodically, lets
 * real requests report what they saw, and tells listeners about every change.
 */
export class HealthMonitor {
  private current: Readonly<BackendHealth> = { healthy: false, detail: "not probed yet" };
  private reported = false;
  private readonly listeners: ((health: Readonly<BackendHealth>) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private nextProbeAt = Infinity;
  private probing: Promise<void> | undefined;
  private running: AbortController | undefined;

  constructor(
    private readonly probe: HealthProbe,
    private readonly options: HealthMonitorOptions,
  ) {}

  /** Probes once and keeps probing; resolves after the first probe, whatever it found. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = new AbortController();
    await this.probeNow();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running?.abort();
    this.running = undefined;
  }

  /** The stored value itself (asked for on every turn): it is replaced on change, never modified. */
  health(): Readonly<BackendHealth> {
    return this.current;
  }

  onChange(listener: (health: Readonly<BackendHealth>) => void): void {
    this.listeners.push(listener);
  }

  /** A request got an answer, so the server is up whatever the last probe said. */
  markHealthy(): void {
    if (this.current.healthy) return;
    this.set({ healthy: true });
    // Only a probe learns the slot count.
    this.schedule(this.quickRetryMs());
  }

  /** A request could not connect; the next probe comes soon so recovery is noticed quickly. */
  markUnreachable(detail: string): void {
    this.set({ healthy: false, detail });
    this.schedule(this.quickRetryMs());
  }

  private quickRetryMs(): number {
    return this.options.quickRetryMs ?? Math.min(1000, this.options.intervalMs);
  }

  private probeNow(): Promise<void> {
    this.probing ??= this.runProbe().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  private async runProbe(): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.nextProbeAt = Infinity;
    try {
      let health = await this.probe(running.signal);
      // A server that was up is declared down only when a second probe, made at once, agrees:
      // one failure may be a blip (a kept-alive connection the server had just closed), and
      // while a server is down its turns are refused without being tried.
      if (!health.healthy && this.current.healthy && !running.signal.aborted) {
        health = await this.probe(running.signal);
      }
      if (!running.signal.aborted) this.set(health);
    } catch (err) {
      // Probes report failures as unhealthy results; reaching this is a bug worth seeing, not a crash.
      this.options.logger.error({ err }, "health probe failed unexpectedly");
    }
    this.schedule(this.options.intervalMs);
  }

  /** Probes after `ms` unless a probe is already due sooner. */
  private schedule(ms: number): void {
    if (!this.running || Date.now() + ms >= this.nextProbeAt) return;
    clearTimeout(this.timer);
    this.nextProbeAt = Date.now() + ms;
    this.timer = setTimeout(() => void this.probeNow(), ms);
    // Probing alone must never keep the process alive.
    this.timer.unref();
  }

  private set(next: BackendHealth): void {
    const prev = this.current;
    const changed =
      !this.reported ||
      prev.healthy !== next.healthy ||
      prev.slots !== next.slots ||
      prev.contextTokens !== next.contextTokens ||
      prev.detail !== next.detail;
    if (!changed) return;
    this.reported = true;
    this.current = { ...next };
    this.log(prev, next);
    for (const listener of this.listeners) listener(this.health());
  }

  private log(prev: BackendHealth, next: BackendHealth): void {
    const { logger, server } = this.options;
    if (!next.healthy) {
      logger.warn(
        { server, detail: next.detail },
        `model server at ${server} is unavailable: ${next.detail}`,
      );
    } else if (!prev.healthy) {
      logger.info({ server, slots: next.slots }, `model server at ${server} is available`);
    } else {
      logger.info({ server, slots: next.slots }, `model server at ${server} now reports ${next.slots} slots`);
    }
  }
}
