// setTimeout fires at once for delays above 2^31-1 ms; a far deadline must not become an instant one.
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface CallSignalOptions {
  /** Epoch milliseconds: the call is aborted with a TimeoutError then. */
  deadline?: number;
  /** Signals that abort the call with their reason (a cancel, the shutdown). */
  sources?: readonly (AbortSignal | undefined)[];
}

/**
 * The AbortSignal of one call: aborted when one of its sources aborts or when its deadline
 * passes, whichever comes first. `dispose()` once the call is over.
 *
 * Not `AbortSignal.any([...sources, AbortSignal.timeout(ms)])`: a source such as the shutdown
 * signal outlives every call, and on Node 20 `AbortSignal.any` keeps each signal it makes
 * reachable from its long-lived sources, so a gateway would grow with every call it ever made;
 * and a timeout signal keeps its timer until the deadline, long after the call has ended. Here the
 * timer is cleared and the listeners taken off the sources as soon as the call is over.
 */
export class CallSignal {
  private readonly controller = new AbortController();
  private readonly sources: AbortSignal[];
  private timer: NodeJS.Timeout | undefined;
  private deadlinePassed = false;

  constructor(options: CallSignalOptions) {
    this.sources = (options.sources ?? []).filter((s): s is AbortSignal => s !== undefined);
    const aborted = this.sources.find((source) => source.aborted);
    if (aborted) {
      this.controller.abort(aborted.reason);
      return;
    }
    for (const source of this.sources) source.addEventListener("abort", this.onSourceAbort);
    if (options.deadline === undefined) return;
    const delay = options.deadline - Date.now();
    if (delay <= 0) {
      this.expire();
    } else if (delay <= MAX_TIMER_MS) {
      this.timer = setTimeout(() => this.expire(), delay);
      // A call in flight keeps the process alive through its socket, not through its deadline.
      this.timer.unref();
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** A source aborted (a cancel, the shutdown) before the call was over. */
  get cancelled(): boolean {
    return this.controller.signal.aborted && !this.deadlinePassed;
  }

  /** The deadline passed before the call was over. */
  get expired(): boolean {
    return this.deadlinePassed;
  }

  /** The call is over: its timer and its listeners on the sources go. */
  dispose(): void {
    clearTimeout(this.timer);
    for (const source of this.sources) source.removeEventListener("abort", this.onSourceAbort);
  }

  private readonly onSourceAbort = (event: Event): void => {
    this.dispose();
    this.controller.abort((event.target as AbortSignal).reason);
  };

  private expire(): void {
    this.dispose();
    this.deadlinePassed = true;
    this.controller.abort(new DOMException("the call's deadline passed", "TimeoutError"));
  }
}
