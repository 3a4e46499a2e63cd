import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { newSessionRecord } from "../../src/sessions/record.js";
import { SqliteSessionStore } from "../../src/sessions/sqliteStore.js";
import type { StoredSession } from "../../src/sessions/types.js";
import { runNode } from "../support/processes.js";

const key = { project: "maze", sessionId: "s1" };
const limits = { maxSessions: 100, idleTimeoutSec: 3600 };

describe("SqliteSessionStore", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "llmqtt-sqlite-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("sessions and project prompts survive a stop and a new store on the same file", async () => {
    const path = join(dir, "restart.db");
    const record: StoredSession = {
      ...newSessionRecord(key, "system", 1_700_000_000_000),
      history: [
        { role: "user", content: "where now?" },
        { role: "assistant", content: '{"hint": "left"}' },
      ],
      projectState: { lastState: "[1, 2]", stateRepeatCount: 1, lastReply: "left", assistantRepeatCount: 0 },
      generation: 2,
      lastActiveAt: 1_700_000_123_456,
    };
    const first = new SqliteSessionStore({ ...limits, path });
    await first.start();
    await first.update(key, () => record);
    await first.setProjectPrompt("maze", "replaced");
    await first.stop();

    const second = new SqliteSessionStore({ ...limits, path });
    await second.start();
    try {
      assert.deepEqual(await second.update(key, () => undefined), record);
      assert.equal(await second.getProjectPrompt("maze"), "replaced");
    } finally {
      await second.stop();
    }
  });

  test("a record stored before project state was opaque keeps its maze counters as project state", async () => {
    const path = join(dir, "legacy.db");
    const counters = { lastState: "[1, 2]", stateRepeatCount: 1, lastReply: "left", assistantRepeatCount: 0 };
    const first = new SqliteSessionStore({ ...limits, path });
    await first.start();
    await first.update(key, () => ({
      ...newSessionRecord(key, "system", 1_700_000_000_000),
      projectState: counters,
    }));
    await first.stop();
    // As earlier versions wrote it: the counters under `maze`.
    const db = new Database(path);
    try {
      const { record } = db.prepare("SELECT record FROM sessions").get() as { record: string };
      const { projectState, ...rest } = JSON.parse(record) as StoredSession;
      db.prepare("UPDATE sessions SET record = ?").run(JSON.stringify({ ...rest, maze: projectState }));
    } finally {
      db.close();
    }
    const second = new SqliteSessionStore({ ...limits, path });
    await second.start();
    try {
      const read = await second.update(key, () => undefined);
      assert.deepEqual(read?.projectState, counters);
      assert.equal("maze" in (read ?? {}), false);
    } finally {
      await second.stop();
    }
  });

  test("creates its directory, runs in WAL mode with a schema version, and checkpoints on stop", async () => {
    const path = join(dir, "nested", "deeper", "sessions.db");
    const store = new SqliteSessionStore({ ...limits, path });
    await store.start();
    await store.update(key, () => newSessionRecord(key, "p", 0));
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.equal(db.pragma("user_version", { simple: true }), 1);
    } finally {
      db.close();
    }
    await store.stop();
    assert.ok(!existsSync(`${path}-wal`) || statSync(`${path}-wal`).size === 0, "the WAL is folded in");
  });

  test("two starts at once open one connection, which stop closes", async () => {
    const path = join(dir, "twice.db");
    const store = new SqliteSessionStore({ ...limits, path });
    await Promise.all([store.start(), store.start()]);
    await store.update(key, () => newSessionRecord(key, "p", 0));
    await store.stop();
    // A connection left open keeps the database file open in this process.
    const openFiles = readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false; // closed meanwhile (e.g. the fd of the directory listing itself)
      }
    });
    assert.deepEqual(openFiles, [], "every connection is closed");
  });

  test("a file it cannot open is an error naming sessions.sqlitePath", async () => {
    const notADirectory = join(dir, "plain-file");
    writeFileSync(notADirectory, "");
    const store = new SqliteSessionStore({ ...limits, path: join(notADirectory, "sessions.db") });
    await assert.rejects(
      store.start(),
      /cannot open the session database \(sessions\.sqlitePath = .*plain-file/,
    );
  });

  test("a database written by a newer llmqtt is refused, not changed", async () => {
    const path = join(dir, "future.db");
    const db = new Database(path);
    db.pragma("user_version = 99");
    db.close();
    const store = new SqliteSessionStore({ ...limits, path });
    await assert.rejects(
      store.start(),
      /sessions\.sqlitePath.*schema version 99 is newer than this llmqtt knows \(1\)/,
    );
    const untouched = new Database(path, { readonly: true });
    try {
      assert.equal(untouched.pragma("journal_mode", { simple: true }), "delete");
      assert.equal(untouched.pragma("user_version", { simple: true }), 99);
    } finally {
      untouched.close();
    }
  });

  test("the sweep deletes idle sessions from the file", async () => {
    const path = join(dir, "sweep.db");
    const clock = { now: 1_000_000 };
    const store = new SqliteSessionStore({ ...limits, idleTimeoutSec: 10, path, now: () => clock.now });
    await store.start();
    try {
      for (const sessionId of ["idle", "used"]) {
        const k = { project: "maze", sessionId };
        await store.update(k, () => newSessionRecord(k, "p", 0));
      }
      clock.now += 6_000;
      await store.update({ project: "maze", sessionId: "used" }, () => undefined);
      clock.now += 6_000;
      assert.equal(store.sweep(), 1);
      const db = new Database(path, { readonly: true });
      try {
        assert.deepEqual(db.prepare("SELECT session_id FROM sessions").pluck().all(), ["used"]);
      } finally {
        db.close();
      }
    } finally {
      await store.stop();
    }
  });

  test("two processes updating one session at once lose nothing", async () => {
    const path = join(dir, "shared.db");
    const store = new SqliteSessionStore({ ...limits, path });
    await store.start();
    await store.update(key, () => newSessionRecord(key, "p", 0));
    await store.stop();
    const moduleUrl = new URL("../../src/sessions/sqliteStore.js", import.meta.url).href;
    const writer = (tag: string) => `
      const { SqliteSessionStore } = await import(${JSON.stringify(moduleUrl)});
      const store = new SqliteSessionStore({ path: ${JSON.stringify(path)}, maxSessions: 100, idleTimeoutSec: 3600 });
      await store.start();
      const key = ${JSON.stringify(key)};
      for (let i = 0; i < 100; i++) {
        await store.update(key, (current) => ({
          ...current,
          history: [...current.history, { role: "user", content: "${tag}" + i }],
        }));
      }
      await store.stop();`;
    const runs = await Promise.all(
      ["a", "b"].map((tag) => runNode(["--input-type=module", "-e", writer(tag)])),
    );
    for (const run of runs) assert.equal(run.code, 0, run.stderr);

    const reopened = new SqliteSessionStore({ ...limits, path });
    await reopened.start();
    try {
      const history = (await reopened.update(key, () => undefined))!.history;
      assert.equal(history.length, 200);
      for (const tag of ["a", "b"]) {
        const own = history.filter((m) => m.content.startsWith(tag)).map((m) => m.content);
        assert.deepEqual(
          own,
          Array.from({ length: 100 }, (_, i) => `${tag}${i}`),
          "each writer's order kept",
        );
      }
    } finally {
      await reopened.stop();
    }
  });
});
