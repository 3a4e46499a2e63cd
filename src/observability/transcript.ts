import { closeSync, existsSync, fstatSync, openSync, renameSync, writeSync } from "node:fs";

/** One turn as seen by the model: written only when debug transcripts are switched on. */
export interface TranscriptEntry {
  ts: string;
  project: string;
  sessionId: string;
  requestId?: string;
  messages: readonly unknown[];
  reply?: string;
  error?: string;
  latencyMs: number;
  usage?: unknown;
}

/**
 * Appends JSON lines to a file and rotates it by size: `file` → `file.1` → … → `file.<keep-1>`,
 * the oldest dropped, so a long debug session cannot fill the disk. Writes are synchronous on
 * purpose: one line per turn is cheap, and a rename can never race a stream still opening.
 */
export class TranscriptWriter {
  private fd: number;
  private bytes: number;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    this.fd = openSync(path, "a");
    this.bytes = fstatSync(this.fd).size;
  }

  write(entry: TranscriptEntry): void {
    const line = Buffer.from(JSON.stringify(entry) + "\n");
    if (this.bytes > 0 && this.bytes + line.length > this.maxBytes) this.rotate();
    writeSync(this.fd, line);
    this.bytes += line.length;
  }

  async close(): Promise<void> {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = i === 1 ? this.path : `${this.path}.${i - 1}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i}`);
    }
    this.fd = openSync(this.path, "w");
    this.bytes = 0;
  }
}
