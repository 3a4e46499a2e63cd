import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type Database from "better-sqlite3";
import { parseStoredRecord } from "./record.js";
import {
  DELETE_SESSION,
  SessionStoreUnavailable,
  type SessionChange,
  type SessionKey,
  type SessionStore,
  type StoredSession,
} from "./types.js";

export interface SqliteSessionStoreOptions {
  /** The database file; its directory is created if missing. */
  path: string;
  maxSessions: number;
  idleTimeoutSec: number;
  now?: () => number;
}

/** Schema changes in order; PRAGMA user_version counts those a database has had. */
const MIGRATIONS = [
  `CREATE TABLE sessions (
     project TEXT NOT NULL,
     session_id TEXT NOT NULL,
     record TEXT NOT NULL, -- the whole session as JSON
     used_at REAL NOT NULL, -- last read or change, ms since the epoch
     PRIMARY KEY (project, session_id)
   ) WITHOUT ROWID;
   CREATE INDEX sessions_by_use ON sessions (used_at);
   CREATE TABLE project_prompts (project TEXT PRIMARY KEY, prompt TEXT NOT NULL) WITHOUT ROWID;`,
];

/** SQLite result codes (extended ones start the same) that another try may not meet. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|READONLY|IOERR|FULL|CANTOPEN|PERM)/;

type Statement<Params extends unknown[], Result = unknown> = Database.Statement<Params, Result>;

/** Everything that exists only while the database is open. */
interface OpenDatabase {
  db: Database.Database;
  update: (key: SessionKey, change: SessionChange) => StoredSession | undefined;
  peek: Statement<[string, string, number], string>;
  list: Statement<[string, number], string>;
  count: Statement<[number], number>;
  sweep: Statement<[number]>;
  getPrompt: Statement<[string], string>;
  setPrompt: Statement<[string, string]>;
}

/**
 * Sessions in one SQLite file (WAL): they survive restarts. Each update is one `BEGIN IMMEDIATE`
 * transaction, so processes sharing the file never lose each other's changes. Sessions idle longer
 * than the timeout are ignored at once and deleted by a periodic sweep; beyond maxSessions the
 * least recently used go.
 */
export class SqliteSessionStore implements SessionStore {
  private open?: OpenDatabase;
  private readonly idleMs: number;
  private readonly now: () => number;
  private lastUse = 0;
  private sweepTimer?: NodeJS.Timeout;

  constructor(private readonly options: SqliteSessionStoreOptions) {
    this.idleMs = options.idleTimeoutSec * 1000;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    // The native module is loaded only by gateways that keep their sessions in SQLite. Before the
    // check: nothing may wait between it and opening, or two starts would open twice.
    const { default: Sqlite } = await import("better-sqlite3");
    if (this.open) return;
    this.open = this.prepare(openDatabase(Sqlite, this.options.path));
    this.sweepTimer = setInterval(
      () => {
        try {
          this.sweep();
        } catch {
          // The database was busy with another process for too long: the next sweep catches up.
        }
      },
      Math.min(this.idleMs, 60_000),
    );
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    // Closing the last connection checkpoints the WAL into the database file and removes it.
    this.open?.db.close();
    this.open = undefined;
  }

  async update(key: SessionKey, change: SessionChange): Promise<StoredSession | undefined> {
    return this.call((database) => database.update(key, change));
  }

  async peek(key: SessionKey): Promise<StoredSession | undefined> {
    const record = this.database.peek.get(key.project, key.sessionId, this.idleCutoff());
    return record === undefined ? undefined : (JSON.parse(record) as StoredSession);
  }

  async list(project: string): Promise<string[]> {
    return this.call((database) => database.list.all(project, this.idleCutoff()));
  }

  async size(): Promise<number> {
    return this.call((database) => database.count.get(this.idleCutoff())!);
  }

  async getProjectPrompt(project: string): Promise<string | undefined> {
    return this.call((database) => database.getPrompt.get(project));
  }

  async setProjectPrompt(project: string, prompt: string): Promise<void> {
    this.call((database) => database.setPrompt.run(project, prompt));
  }

  /** Deletes idle sessions; returns how many. Runs on the timer, callable directly. */
  sweep(): number {
    return this.database.sweep.run(this.idleCutoff()).changes;
  }

  /**
   * Runs a database operation; the file being locked by another process for longer than the busy
   * timeout, read-only, full or failing is SessionStoreUnavailable (a retryable error reply).
   */
  private call<T>(operation: (database: OpenDatabase) => T): T {
    const database = this.database;
    try {
      return operation(database);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== "string" || !UNAVAILABLE.test(code)) throw error;
      throw new SessionStoreUnavailable(
        `session store: SQLite ${this.options.path} failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  private get database(): OpenDatabase {
    if (!this.open) throw new Error("the SQLite session store is not started");
    return this.open;
  }

  /** Sessions last used before this are idle. */
  private idleCutoff(now = this.now()): number {
    return now - this.idleMs;
  }

  /** Strictly increasing, so uses within one millisecond keep their LRU order. */
  private useStamp(now: number): number {
    this.lastUse = now > this.lastUse ? now : this.lastUse + 0.001;
    return this.lastUse;
  }

  private prepare(db: Database.Database): OpenDatabase {
    const select = db.prepare<[string, string], { record: string; used_at: number }>(
      "SELECT record, used_at FROM sessions WHERE project = ? AND session_id = ?",
    );
    const touch = db.prepare<[number, string, string]>(
      "UPDATE sessions SET used_at = ? WHERE project = ? AND session_id = ?",
    );
    const upsert = db.prepare<[string, string, string, number]>(
      `INSERT INTO sessions (project, session_id, record, used_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (project, session_id) DO UPDATE SET record = excluded.record, used_at = excluded.used_at`,
    );
    const remove = db.prepare<[string, string]>("DELETE FROM sessions WHERE project = ? AND session_id = ?");
    const keepNewest = db.prepare<[number]>(
      `DELETE FROM sessions WHERE (project, session_id) IN
         (SELECT project, session_id FROM sessions ORDER BY used_at DESC LIMIT -1 OFFSET ?)`,
    );
    const update = db.transaction((key: SessionKey, change: SessionChange): StoredSession | undefined => {
      const { project, sessionId } = key;
      const now = this.now();
      const row = select.get(project, sessionId);
      const current = row && row.used_at >= this.idleCutoff(now) ? parseStoredRecord(row.record) : undefined;
      const next = change(current);
      if (next === DELETE_SESSION) {
        remove.run(project, sessionId);
        return undefined;
      }
      if (next === undefined) {
        if (current) touch.run(this.useStamp(now), project, sessionId);
        return current;
      }
      upsert.run(project, sessionId, JSON.stringify(next), this.useStamp(now));
      if (!row) keepNewest.run(this.options.maxSessions);
      return next;
    });
    return {
      db,
      update: update.immediate,
      peek: db
        .prepare<[string, string, number], string>(
          "SELECT record FROM sessions WHERE project = ? AND session_id = ? AND used_at >= ?",
        )
        .pluck(),
      list: db
        .prepare<[string, number], string>(
          "SELECT session_id FROM sessions WHERE project = ? AND used_at >= ?",
        )
        .pluck(),
      count: db.prepare<[number], number>("SELECT count(*) FROM sessions WHERE used_at >= ?").pluck(),
      sweep: db.prepare<[number]>("DELETE FROM sessions WHERE used_at < ?"),
      getPrompt: db.prepare<[string], string>("SELECT prompt FROM project_prompts WHERE project = ?").pluck(),
      setPrompt: db.prepare<[string, string]>(
        `INSERT INTO project_prompts (project, prompt) VALUES (?, ?)
         ON CONFLICT (project) DO UPDATE SET prompt = excluded.prompt`,
      ),
    };
  }
}

/** Opens (creating if needed) and migrates the database; errors name the setting to fix. */
function openDatabase(Sqlite: typeof Database, path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true });
    db = new Sqlite(path);
    // First, so that a database this version does not know is left exactly as it was.
    migrate(db);
    db.pragma("journal_mode = WAL");
    // In WAL mode NORMAL loses at most the last transactions on power loss, never consistency.
    db.pragma("synchronous = NORMAL");
    return db;
  } catch (error) {
    db?.close();
    throw new Error(
      `cannot open the session database (sessions.sqlitePath = ${path}): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

function migrate(db: Database.Database): void {
  // Immediate: of two processes starting at once, the second sees the first one's migrations.
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`its schema version ${version} is newer than this llmqtt knows (${MIGRATIONS.length})`);
    }
    for (const sql of MIGRATIONS.slice(version)) db.exec(sql);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
