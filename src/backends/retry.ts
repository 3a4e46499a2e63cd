import { setTimeout } from "node:timers/promises";
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
  onRetry?(error: BackendError, attempt: number, delayMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or runs out of attempts or time. An attempt
 * must itself end by the deadline and when the caller's signal aborts; its failure then counts as
 * `timeout` or `cancelled`, whatever the HTTP stack made of it.
 */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { deadline, now, policy, signal } = options;
  const stopped = (): BackendError | undefined => {
    if (signal?.aborted) return requestCancelled();
    if (now() >= deadline) return missedDeadline();
    return undefined;
  };
  for (let n = 1; ; n++) {
    const stop = stopped();
    if (stop) throw stop;
    try {
      return await attempt();
    } catch (err) {
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
async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  await setTimeout(ms, undefined, { signal }).catch(() => {});
}
