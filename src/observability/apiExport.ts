import type { ServerResponse } from "node:http";
import type { StoredSession } from "../sessions/types.js";
import { iso } from "./conversations.js";

export type ExportFormat = "jsonl" | "csv";

export const EXPORT_TYPES: Record<ExportFormat, string> = {
  jsonl: "application/x-ndjson; charset=utf-8",
  csv: "text/csv; charset=utf-8; header=present",
};

const CSV_COLUMNS = ["project", "session_id", "message", "role", "content", "images", "last_active_at"];

/** The text that starts an export: the CSV header row; JSON lines have none. */
export function exportHeader(format: ExportFormat): string {
  return format === "csv" ? csvRow(CSV_COLUMNS) : "";
}

/**
 * One session in the export format. JSON lines: one object per session, the conversation exactly
 * as stored. CSV (RFC 4180): one row per message, the session's system prompt first as message 0;
 * images are counted, not included.
 */
export function exportSession(record: StoredSession, format: ExportFormat): string {
  const { project, sessionId, systemPrompt, history } = record;
  const lastActiveAt = iso(record.lastActiveAt);
  if (format === "jsonl") {
    const createdAt = iso(record.createdAt);
    return JSON.stringify({ project, sessionId, systemPrompt, createdAt, lastActiveAt, history }) + "\n";
  }
  const rows = [csvRow([project, sessionId, "0", "system", systemPrompt, "0", lastActiveAt])];
  history.forEach((message, i) => {
    const images = String(message.images?.length ?? 0);
    rows.push(
      csvRow([project, sessionId, String(i + 1), message.role, message.content, images, lastActiveAt]),
    );
  });
  return rows.join("");
}

/** Fields with a quote, comma, line break or edge space are quoted, quotes doubled; CRLF ends rows. */
function csvRow(fields: readonly string[]): string {
  return fields.map(csvField).join(",") + "\r\n";
}

function csvField(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Writes `text`, waiting while the client's socket buffer is full; false once the client is gone,
 * so an export to a reader that left stops instead of filling memory.
 */
export async function writeChunk(res: ServerResponse, text: string): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(text)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => () => {
      res.off("drain", drained);
      res.off("close", closed);
      resolve(ok);
    };
    const drained = done(true);
    const closed = done(false);
    res.once("drain", drained);
    res.once("close", closed);
  });
}
