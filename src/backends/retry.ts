import { missedDeadline, requestCancelled, type ClassifiedError } from "./errors.js";
import type { BackendError, BackendErrorCode } from "./types.js";

export interface RetryPolicy {
  /** Attempts in total, the first one included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: 2000 };

// A timeout is not here: it means the deadline has passed, so there is no time left to retry in.
const RETRYABLE = new Set<BackendErrorCode>(["unreachable", "rate_limited", "server_error"]);

export interface RetryOptions {
  /** Absolute epoch milliseconds: no attempt starts after it, and none is waited for past it. */
  deadline: number;
  now: () => number;
  /** The caller's signal: once it has aborted, the call ends with `cancelled`. */
  signal?: AbortSignal;
  policy: RetryPolicy;
  classify(err: unknown): ClassifiedError;
  /** True when no attempt may follow, whatever the failure (the caller was told the server answered). */
  exhausted?(): boolean;
  onRetry?(error: BackendError, attempt: number, delayMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or runs out of attempts or time. An attempt
 * must itself end by the deadline and when the caller's signal aborts (httpFetch's CallLimits
 * do both); its failure then counts as `timeout` or `cancelled`, whatever the HTTP stack made of
 * it.
 *
 * A chain of promises rather than an async loop: a model call is in flight for most of a turn,
 * and an awaiting async function holds its whole frame meanwhile (~0.4 KB more than a pending
 * `.then`), which young-generation collections copy again and again under load.
 */
export function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { deadline, now, policy, signal } = options;
  const stopped = (): BackendError | undefined => {
    if (signal?.aborted) return requestCancelled();
    if (now() >= deadline) return missedDeadline();
    return undefined;
  };
  const run = (n: number): Promise<T> => {
    const stop = stopped();
    if (stop) return Promise.reject(stop);
    let pending: Promise<T>;
    try {
      pending = attempt();
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.catch((err: unknown) => {
      const abort = stopped();
      if (abort) throw abort;
      const { error, retryAfterMs, final } = options.classify(err);
      if (final || !RETRYABLE.has(error.code) || n >= policy.maxAttempts || options.exhausted?.())
        throw error;
      const delay = retryAfterMs ?? backoffDelay(n, policy);
      if (now() + delay >= deadline) throw error;
      options.onRetry?.(error, n, delay);
      return sleep(delay, signal).then(() => run(n + 1));
    });
  };
  return run(1);
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
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!signal) return void setTimeout(resolve, ms);
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
