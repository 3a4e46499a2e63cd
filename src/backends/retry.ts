import type { ClassifiedError } from "./errors.js";
import { BackendError, type BackendErrorCode } from "./types.js";

export interface RetryPolicy {
  /** Attempts in total, the first one included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 2000 };

// A timeout is not here: it means the deadline has passed, so there is no time left to retry in.
const RETRYABLE = new Set<BackendErrorCode>(["unreachable", "rate_limited", "server_error"]);

// setTimeout fires at once for delays above 2^31-1 ms; a far deadline must not become an instant one.
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RetryOptions {
  /** Absolute epoch milliseconds; no attempt starts or runs past it. */
  deadline: number;
  now: () => number;
  /** The caller's signal: aborting it ends everything with `cancelled`. */
  signal?: AbortSignal;
  policy: RetryPolicy;
  classify(err: unknown): ClassifiedError;
  onRetry?(error: BackendError, attempt: number, delayMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or runs out of attempts or time. Each attempt
 * gets one signal that fires at the deadline or when the caller aborts, whichever comes first.
 */
export async function withRetries<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const { deadline, now, policy } = options;
  const attempts = new AbortController();
  const timeout = setTimeout(() => attempts.abort(), Math.min(MAX_TIMER_MS, Math.max(0, deadline - now())));
  const unfollow = options.signal ? follow(options.signal, attempts) : undefined;
  const signal = attempts.signal;
  const stopped = (): BackendError | undefined => {
    if (options.signal?.aborted) return new BackendError("cancelled", "request cancelled");
    if (signal.aborted || now() >= deadline) {
      return new BackendError("timeout", "the model server did not answer before the deadline");
    }
    return undefined;
  };

  try {
    for (let n = 1; ; n++) {
      const stop = stopped();
      if (stop) throw stop;
      try {
        return await attempt(signal);
      } catch (err) {
        // An aborted attempt fails with whatever the HTTP stack makes of the abort; the reason is ours.
        const abort = stopped();
        if (abort) throw abort;
        const { error, retryAfterMs, final } = options.classify(err);
        if (final || !RETRYABLE.has(error.code) || n >= policy.maxAttempts) throw error;
        const delay = retryAfterMs ?? backoffDelay(n, policy);
        if (now() + delay >= deadline) throw error;
        options.onRetry?.(error, n, delay);
        await sleep(delay, signal);
      }
    }
  } finally {
    clearTimeout(timeout);
    unfollow?.();
  }
}

/** The calls in progress under each caller's signal, all aborted by one listener on it. */
const followers = new WeakMap<AbortSignal, Set<AbortController>>();

/**
 * Aborts `controller` when `signal` aborts, until the returned function is called. Rather than
 * AbortSignal.any (twice the CPU per call) or a listener per call (a caller's signal, such as the
 * gateway's shutdown signal, is shared by every call in flight): one listener per caller's signal.
 */
function follow(signal: AbortSignal, controller: AbortController): () => void {
  let calls = followers.get(signal);
  if (!calls) {
    const created = new Set<AbortController>();
    signal.addEventListener("abort", () => created.forEach((call) => call.abort()), { once: true });
    followers.set(signal, created);
    calls = created;
  }
  calls.add(controller);
  return () => calls.delete(controller);
}

/** Exponential backoff with "equal jitter": between half and all of base × 2^(n-1), capped. */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const full = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(full / 2 + (random() * full) / 2);
}

/** Resolves after `ms` or as soon as `signal` aborts; the caller checks why it woke up. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
