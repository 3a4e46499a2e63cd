import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { DownloadProgress } from "./downloadProgress.js";

/** A file whose exact size and sha256 are known before it is fetched. */
export interface ExpectedFile {
  url: string;
  bytes: number;
  sha256: string;
}

export interface DownloadOptions {
  progress: DownloadProgress;
  signal?: AbortSignal;
  /** Attempts per start, each resuming where the last one stopped; default 5. */
  attempts?: number;
  /** Wait before the first retry, doubled for each further one; default 1000 ms. */
  retryDelayMs?: number;
  /** A connection that delivers nothing for this long is dropped and resumed; default 60 s. */
  stallTimeoutMs?: number;
}

/** A download that cannot succeed by trying again: wrong file, refused by the server, disk error. */
export class DownloadError extends Error {
  override readonly name = "DownloadError";
}

// Trying again cannot help with a full, read-only or forbidden disk.
const DISK_ERRORS = new Set(["ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EISDIR", "ENOTDIR"]);

/**
 * Fetches `file.url` into `destination`. The bytes go to `destination.part` first; an interrupted
 * transfer (a dropped connection, a stopped process) resumes from that file with an HTTP Range
 * request. Only a file with exactly the expected size and sha256 is renamed into place; one that
 * does not match is deleted.
 */
export async function downloadVerified(
  file: ExpectedFile,
  destination: string,
  options: DownloadOptions,
): Promise<void> {
  const part = `${destination}.part`;
  try {
    await fetchWithRetries(file, part, options);
  } finally {
    options.progress.end();
  }
  const digest = await sha256Of(part);
  if (digest !== file.sha256) {
    await rm(part, { force: true });
    throw new DownloadError(
      `checksum mismatch for ${file.url}: expected sha256 ${file.sha256}, got ${digest}; ` +
        "the downloaded file was deleted",
    );
  }
  await rename(part, destination);
}

/** Until `part` holds `file.bytes` bytes: a request, and after a failure that may pass, another. */
async function fetchWithRetries(file: ExpectedFile, part: string, options: DownloadOptions): Promise<void> {
  const attempts = options.attempts ?? 5;
  let delayMs = options.retryDelayMs ?? 1000;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      const received = await fetchOnce(file, part, options);
      if (received === file.bytes) return;
      if (received > file.bytes) {
        await rm(part, { force: true });
        throw new DownloadError(
          `${file.url} sent ${received} bytes, expected ${file.bytes}; the download was deleted`,
        );
      }
      // The server closed the body early without an error: resume like after a dropped connection.
      if (attempt >= attempts) throw new Error(`the transfer stopped at ${received} of ${file.bytes} bytes`);
    } catch (err) {
      if (err instanceof DownloadError || options.signal?.aborted || isDiskError(err)) throw err;
      if (attempt >= attempts) {
        throw new DownloadError(
          `downloading ${file.url} failed ${attempts} times (${errorText(err)}); ` +
            "the next start resumes it",
          { cause: err },
        );
      }
    }
    await sleep(delayMs, undefined, { signal: options.signal });
    delayMs *= 2;
  }
}

/** One HTTP request, continuing `part` if it holds a prefix. Returns the bytes `part` then holds. */
async function fetchOnce(file: ExpectedFile, part: string, options: DownloadOptions): Promise<number> {
  let offset = Math.min(await sizeOf(part), file.bytes);
  if (offset === file.bytes) return offset;
  const stall = new StallGuard(options.stallTimeoutMs ?? 60_000, options.signal);
  try {
    const response = await fetch(file.url, {
      headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
      signal: stall.signal,
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      const text = `${file.url} answered HTTP ${response.status}`;
      // Retry what may pass (overload, a server error, a range the server could not serve).
      if (response.status >= 500 || response.status === 429 || response.status === 408) throw new Error(text);
      if (response.status === 416) {
        await rm(part, { force: true });
        throw new Error(text);
      }
      throw new DownloadError(text);
    }
    if (response.status === 206 && !resumesAt(response, offset)) {
      await response.body.cancel();
      await rm(part, { force: true });
      throw new Error(`${file.url} answered a range other than the one asked for`);
    }
    if (response.status !== 206) offset = 0; // the server sent the whole file again
    checkLength(response, file, offset);
    options.progress.begin(file.bytes, offset);
    let received = offset;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        stall.touch();
        received += chunk.length;
        options.progress.advance(received);
        done(null, chunk);
      },
    });
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      counter,
      createWriteStream(part, { flags: offset > 0 ? "a" : "w" }),
      { signal: stall.signal },
    );
    return received;
  } catch (err) {
    throw stall.explain(err);
  } finally {
    stall.dispose();
  }
}

function resumesAt(response: Response, offset: number): boolean {
  const range = /^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "");
  return range !== null && Number(range[1]) === offset;
}

/** A server offering another size serves another file: fail before writing any of it. */
function checkLength(response: Response, file: ExpectedFile, offset: number): void {
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (Number.isFinite(length) && offset + length !== file.bytes) {
    throw new DownloadError(
      `${file.url} offers ${offset + length} bytes, expected ${file.bytes}: not the file llmqtt knows`,
    );
  }
}

/** Aborts a request that has delivered nothing for `timeoutMs`, or when `outer` aborts. */
class StallGuard {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private stalled = false;
  private readonly onOuterAbort = () => this.controller.abort(this.outer?.reason);

  constructor(
    private readonly timeoutMs: number,
    private readonly outer: AbortSignal | undefined,
  ) {
    outer?.addEventListener("abort", this.onOuterAbort, { once: true });
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.stalled = true;
      this.controller.abort(new Error(`no data for ${this.timeoutMs / 1000} s`));
    }, this.timeoutMs);
  }

  explain(err: unknown): unknown {
    return this.stalled ? new Error(`no data for ${this.timeoutMs / 1000} s`, { cause: err }) : err;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.outer?.removeEventListener("abort", this.onOuterAbort);
  }
}

async function sizeOf(file: string): Promise<number> {
  const info = await stat(file).catch(() => undefined);
  return info?.isFile() ? info.size : 0;
}

/** Hashes the file as it is on disk, so the check covers exactly what will be loaded. */
export async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function isDiskError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && DISK_ERRORS.has(code);
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return err.message + cause;
}
