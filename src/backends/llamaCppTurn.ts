import { requestCancelled } from "./errors.js";
import { BackendError } from "./types.js";

/** Why a generation was stopped before it finished on its own. */
export type TurnStopKind = "cancelled" | "timeout" | "context_full";

/** The abort reason this module puts on its signal, so a stop can be told apart from a failure. */
export class TurnStop extends Error {
  constructor(readonly kind: TurnStopKind) {
    super(`generation stopped: ${kind}`);
    this.name = "TurnStop";
  }
}

/**
 * One abort signal for one chat call that fires for the caller's signal (cancelled), the per-turn
 * deadline (timeout), or a full context during generation (context_full), remembering which came first.
 */
export class TurnControl {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onCallerAbort: () => void;

  constructor(
    deadline: number,
    private readonly callerSignal: AbortSignal | undefined,
    now: () => number = Date.now,
  ) {
    this.onCallerAbort = () => this.stop("cancelled");
    if (callerSignal?.aborted) this.stop("cancelled");
    else callerSignal?.addEventListener("abort", this.onCallerAbort, { once: true });
    const remaining = deadline - now();
    if (remaining <= 0) this.stop("timeout");
    else if (!this.controller.signal.aborted) {
      this.timer = setTimeout(() => this.stop("timeout"), Math.min(remaining, 2 ** 31 - 1));
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** What stopped the turn, if anything did. */
  get stopped(): TurnStopKind | undefined {
    const reason: unknown = this.controller.signal.reason;
    return reason instanceof TurnStop ? reason.kind : undefined;
  }

  stop(kind: TurnStopKind): void {
    if (!this.controller.signal.aborted) this.controller.abort(new TurnStop(kind));
  }

  /** Throws the caller-facing error when the caller cancelled or the deadline passed. */
  throwIfCancelledOrTimedOut(): void {
    const kind = this.stopped;
    if (kind === "cancelled") throw requestCancelled();
    if (kind === "timeout") {
      throw new BackendError("timeout", "the in-process model did not answer before the turn's deadline");
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.callerSignal?.removeEventListener("abort", this.onCallerAbort);
  }
}
