import type { Logger } from "pino";

/** Told how far a download has got; `begin` again after a resumed connection. */
export interface DownloadProgress {
  begin(totalBytes: number, alreadyBytes: number): void;
  advance(receivedBytes: number): void;
  /** The download finished or failed. */
  end(): void;
}

export interface TerminalStream {
  write(text: string): boolean;
  columns?: number;
}

const REDRAW_MS = 100;
const BAR_WIDTH = 30;

/** One line redrawn in place on a terminal: name, bar, percentage, megabytes and speed. */
export function terminalProgress(stream: TerminalStream, label: string, now = Date.now): DownloadProgress {
  let total = 0;
  let drawnAt = 0;
  let startedAt = 0;
  let startBytes = 0;
  let lineOpen = false;
  const draw = (received: number) => {
    const share = total > 0 ? received / total : 0;
    const filled = Math.round(share * BAR_WIDTH);
    const seconds = (now() - startedAt) / 1000;
    const speed = seconds > 0 ? (received - startBytes) / seconds : 0;
    const line =
      `${label} [${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ` +
      `${Math.floor(share * 100)}% ${megabytes(received)}/${megabytes(total)} MB ${megabytes(speed)} MB/s`;
    const width = stream.columns ?? 80;
    stream.write(`\r${line.slice(0, width - 1).padEnd(width - 1)}`);
    lineOpen = true;
  };
  return {
    begin(totalBytes, alreadyBytes) {
      total = totalBytes;
      startedAt = now();
      startBytes = alreadyBytes;
      drawnAt = startedAt;
      draw(alreadyBytes);
    },
    advance(received) {
      const at = now();
      if (received < total && at - drawnAt < REDRAW_MS) return;
      drawnAt = at;
      draw(received);
    },
    // Whatever is written next (the error of a failed download, a log line) starts on a line of its own.
    end() {
      if (lineOpen) stream.write("\n");
      lineOpen = false;
    },
  };
}

/** Without a terminal: a log line at the start and at every tenth of the file. */
export function logProgress(logger: Logger, label: string): DownloadProgress {
  let total = 0;
  let loggedTenth = 0;
  return {
    begin(totalBytes, alreadyBytes) {
      total = totalBytes;
      loggedTenth = Math.floor((alreadyBytes / totalBytes) * 10);
      const at = alreadyBytes > 0 ? ` from ${megabytes(alreadyBytes)} MB (resumed)` : "";
      logger.info({ file: label, bytes: totalBytes, resumedAt: alreadyBytes }, `downloading ${label}${at}`);
    },
    advance(received) {
      const tenth = Math.floor((received / total) * 10);
      if (tenth <= loggedTenth) return;
      loggedTenth = tenth;
      logger.info(
        { file: label, received, bytes: total },
        `downloading ${label}: ${tenth * 10}% (${megabytes(received)}/${megabytes(total)} MB)`,
      );
    },
    end() {},
  };
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes < 10e6 ? 1 : 0);
}
