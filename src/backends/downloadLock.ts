import { setTimeout as sleep } from "node:timers/promises";

/** A holder refreshes its lock every half of this; a lock older than this is taken over. */
const STALE_MS = 30_000;
/** How often a process waiting for another's download looks again. */
const POLL_MS = 1000;

export interface DownloadLockOptions {
  signal?: AbortSignal;
  /** Heard once, when another process holds the lock and this one starts waiting for it. */
  onWait: () => void;
  /** The lock was lost while held (its refresh failed for too long); the download carries on. */
  onLost: (error: Error) => void;
}

/** Gives the lock back; never rejects. */
export type ReleaseLock = () => Promise<void>;

/**
 * Takes the lock on `file` shared by every process using the same model cache, waiting while
 * another holds it, so two instances started together download a file once and never write one
 * `.part` file together. The lock is a directory `file.lock` (proper-lockfile): one left by a
 * killed process is taken over once it is older than 30 s.
 */
export async function lockDownload(file: string, options: DownloadLockOptions): Promise<ReleaseLock> {
  // Loaded on first use: the library hooks process exit to remove its locks.
  const { lock } = await import("proper-lockfile");
  let waiting = false;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const release = await lock(file, {
        realpath: false,
        stale: STALE_MS,
        onCompromised: options.onLost,
      });
      return () => release().catch(() => undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ELOCKED") throw error;
      if (!waiting) options.onWait();
      waiting = true;
      await sleep(POLL_MS, undefined, { signal: options.signal });
    }
  }
}
