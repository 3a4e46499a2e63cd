import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { get as httpGet, request as httpRequest } from "node:http";
import { startAedes, type TestBroker } from "../support/brokers.js";
import { startRig, type Rig } from "../support/harness.js";
import { redisAvailable, startRedis, type TestRedis } from "../support/redis.js";

/**
 * The console's JSON API against a running gateway: sessions made by real turns over MQTT, read,
 * paged, cleared and exported over HTTP; the prompt set over HTTP taking the MQTT template's path.
 */

interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

describe("console API", () => {
  let broker: TestBroker;
  let rig: Rig;

  before(async () => {
    broker = await startAedes();
    // maze as a plain chat project: the fake's replies are not the hints its schema asks for.
    rig = await startRig(broker, {
      projects: ["general", { name: "maze", responseSchema: false }],
      limits: { maxPayloadBytes: 2048 },
    });
  });
  after(async () => {
    await rig?.stop();
    await broker?.stop();
  });

  async function call(method: string, path: string, body?: unknown, headers = {}): Promise<Answer> {
    const response = await fetch(`${rig.gateway.httpUrl}${path}`, {
      method,
      headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  }

  async function turn(project: string, sessionId: string, message: string): Promise<void> {
    await rig.game.publish(`${project}/user_input`, { sessionId, message });
    await rig.game.next(`${project}/assistant_response/${sessionId}`);
  }

  test("projects list their prompt, sessions, turns and estimated tokens", async () => {
    await turn("general", "alice", "hello there");
    await turn("general", "alice", "and again");
    await turn("general", "bob", "hi");
    const { status, body, headers } = await call("GET", "/api/projects");
    assert.equal(status, 200);
    assert.match(headers.get("content-type") ?? "", /^application\/json/);
    const general = body.projects.find((p: { name: string }) => p.name === "general");
    assert.equal(general.sessions, 2);
    assert.equal(general.turns, 3);
    assert.equal(typeof general.systemPrompt, "string");
    assert.ok(general.tokensIn > 0 && general.tokensOut > general.tokensIn, JSON.stringify(general));
    const maze = body.projects.find((p: { name: string }) => p.name === "maze");
    assert.deepEqual([maze.sessions, maze.turns, maze.tokensIn, maze.tokensOut], [0, 0, 0, 0]);
  });

  test("one conversation as stored; a missing session or project is a JSON 404", async () => {
    const { status, body } = await call("GET", "/api/projects/general/sessions/alice");
    assert.equal(status, 200);
    assert.equal(body.id, "alice");
    assert.equal(body.turns, 2);
    assert.deepEqual(body.history, [
      { role: "user", content: "hello there" },
      { role: "assistant", content: "reply to: hello there" },
      { role: "user", content: "and again" },
      { role: "assistant", content: "reply to: and again" },
    ]);
    assert.match(body.lastActiveAt, /^\d{4}-\d\d-\d\dT/);
    const missing = await call("GET", "/api/projects/general/sessions/nobody");
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /no session "nobody"/);
    const project = await call("GET", "/api/projects/nope/sessions");
    assert.equal(project.status, 404);
    assert.deepEqual(project.body.projects, ["general", "maze"]);
    assert.equal((await call("GET", "/api/nothing")).status, 404);
  });

  test("sessions come in pages, in id order, with a cursor to the next page", async () => {
    for (const id of ["p3", "p1", "p5", "p2", "p4"]) await turn("maze", id, `turn of ${id}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const { status, body } = await call("GET", `/api/projects/maze/sessions?limit=2${query}`);
      assert.equal(status, 200);
      assert.equal(body.total, 5);
      assert.ok(body.sessions.length <= 2);
      seen.push(...body.sessions.map((s: { id: string }) => s.id));
      assert.equal(body.sessions[0].turns, 1);
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    assert.deepEqual(seen, ["p1", "p2", "p3", "p4", "p5"]);
    assert.equal(pages, 3);

    for (const [query, expected] of [
      ["?offset=2", /offset/],
      ["?limit=0", /limit/],
      ["?limit=many", /limit/],
      ["?cursor=%25%25", /cursor/],
    ] as const) {
      const { status, body } = await call("GET", `/api/projects/maze/sessions${query}`);
      assert.equal(status, 400, query);
      assert.match(body.error, expected, query);
    }
  });

  test("DELETE clears a conversation and keeps its prompt", async () => {
    const cleared = await call("DELETE", "/api/projects/maze/sessions/p1");
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body.cleared, true);
    const { body } = await call("GET", "/api/projects/maze/sessions/p1");
    assert.deepEqual(body.history, []);
    assert.ok(body.systemPrompt.length > 0);
    assert.equal((await call("DELETE", "/api/projects/maze/sessions/never")).status, 404);
  });

  test("PUT prompt acts like a project-wide template: existing and new sessions get it", async () => {
    const put = await call("PUT", "/api/projects/general/prompt", {
      systemPrompt: "  You speak like a pirate.  ",
      reset: false,
    });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, {
      project: "general",
      systemPrompt: "You speak like a pirate.",
      reset: false,
      sessionsUpdated: 2,
    });
    const alice = (await call("GET", "/api/projects/general/sessions/alice")).body;
    assert.equal(alice.systemPrompt, "You speak like a pirate.");
    assert.equal(alice.turns, 2, "reset false keeps the history");
    await turn("general", "newcomer", "ahoy");
    assert.equal(rig.model.requests.at(-1)?.body.messages[0].content, "You speak like a pirate.");
    assert.equal(
      (await call("GET", "/api/projects/general/prompt")).body.systemPrompt,
      "You speak like a pirate.",
    );

    const reset = await call("PUT", "/api/projects/general/prompt", { systemPrompt: "Be brief." });
    assert.equal(reset.body.reset, true, "reset defaults to true, as for a template");
    assert.equal((await call("GET", "/api/projects/general/sessions/alice")).body.turns, 0);
  });

  test("bad requests get clear JSON errors: 400, 405, 413, 415", async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ["PUT", "/api/projects/general/prompt", { systemPrompt: " " }, 400, /systemPrompt: must not be empty/],
      ["PUT", "/api/projects/general/prompt", { systemPrompt: "x", reset: "yes" }, 400, /reset/],
      ["PUT", "/api/projects/general/prompt", { systemPrompt: "x", extra: 1 }, 400, /extra/],
      ["PUT", "/api/projects/general/prompt", "{not json", 400, /not valid JSON/],
      ["PUT", "/api/projects/general/prompt", { systemPrompt: "x".repeat(4000) }, 413, /over 2048 bytes/],
      ["POST", "/api/projects/general/prompt", { systemPrompt: "x" }, 405, /use GET, PUT/],
      ["PUT", "/api/projects", { systemPrompt: "x" }, 405, /use GET/],
      ["GET", "/api/projects/general/sessions/%E0%A4%A", undefined, 400, /percent-encoding/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const answer = await call(method, path, body);
      assert.equal(answer.status, status, `${method} ${path} ${answer.text}`);
      assert.match(answer.body.error, message, `${method} ${path}`);
    }
    const form = await call("PUT", "/api/projects/general/prompt", "systemPrompt=x", {
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(form.status, 415);
    assert.equal((await call("POST", "/api/projects")).headers.get("allow"), "GET");
    const rebound = await new Promise<number>((resolve, reject) =>
      httpGet(`${rig.gateway.httpUrl}/api/projects`, { headers: { host: "attacker.example" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject),
    );
    assert.equal(rebound, 403, "a page on another host name, rebound to 127.0.0.1, reads nothing");
    assert.equal((await call("GET", "/healthz")).status, 200, "the gateway is still serving");
  });

  test("a streamed body over the limit is refused as it arrives, and nothing changes", async () => {
    const before = await rig.gateway.sessions.projectPrompt("general");
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${rig.gateway.httpUrl}/api/projects/general/prompt`, {
        method: "PUT",
        headers: { "content-type": "application/json" }, // no content-length: chunked
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write('{"systemPrompt": "');
      for (let i = 0; i < 8; i++) req.write("x".repeat(1000));
      req.end('"}');
    });
    assert.equal(status, 413);
    assert.equal(await rig.gateway.sessions.projectPrompt("general"), before);
  });

  test("export streams every conversation as JSON lines or quoted CSV", async () => {
    const tricky = 'a "quoted", multi-line\nmessage';
    await turn("maze", "tricky", tricky);
    const jsonl = await call("GET", "/api/projects/maze/export?format=jsonl");
    assert.equal(jsonl.status, 200);
    assert.match(jsonl.headers.get("content-type") ?? "", /^application\/x-ndjson/);
    assert.match(jsonl.headers.get("content-disposition") ?? "", /maze-conversations\.jsonl/);
    const lines = jsonl.text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      lines.map((l) => l.sessionId),
      ["p1", "p2", "p3", "p4", "p5", "tricky"],
    );
    assert.equal(lines.at(-1).history[0].content, tricky);

    const csv = await call("GET", "/api/projects/maze/export?format=csv");
    assert.match(csv.headers.get("content-type") ?? "", /^text\/csv/);
    const rows = csv.text.split("\r\n");
    assert.equal(rows[0], "project,session_id,message,role,content,images,last_active_at");
    assert.ok(csv.text.includes(`maze,tricky,1,user,"a ""quoted"", multi-line\nmessage",0,`));
    assert.ok(csv.text.includes(`maze,tricky,2,assistant,"reply to: a ""quoted"", multi-line\nmessage",0,`));
    assert.equal((await call("GET", "/api/projects/maze/export?format=xml")).status, 400);
  });

  test("an export larger than one store batch arrives whole", async () => {
    await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        rig.gateway.sessions.setSessionPrompt({ project: "general", sessionId: `bulk-${i}` }, "p", false),
      ),
    );
    const { text } = await call("GET", "/api/projects/general/export");
    const ids = text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line).sessionId as string);
    assert.equal(ids.filter((id) => id.startsWith("bulk-")).length, 120);
    assert.equal(new Set(ids).size, ids.length);
  });
});

describe(
  "console API with a failing session store",
  { skip: redisAvailable() ? false : "no redis-server" },
  () => {
    let broker: TestBroker;
    let redis: TestRedis;
    let rig: Rig;

    before(async () => {
      broker = await startAedes();
      redis = await startRedis();
      rig = await startRig(broker, {
        projects: ["general"],
        sessions: { store: "redis", redis: { url: redis.url } },
      });
    });
    after(async () => {
      await rig?.stop();
      await redis?.stop();
      await broker?.stop();
    });

    test("Redis gone: 503 with a JSON error on every route, and the gateway keeps serving", async () => {
      const base = rig.gateway.httpUrl;
      assert.equal((await fetch(`${base}/api/projects`)).status, 200);
      await redis.stop();
      // Each request waits out the store's own retries; all at once, so the test takes that once.
      const prompt = { systemPrompt: "x" };
      const requests: [string, string, object?][] = [
        ["GET", "/api/projects"],
        ["GET", "/api/projects/general/sessions"],
        ["GET", "/api/projects/general/sessions/x"],
        ["DELETE", "/api/projects/general/sessions/x"],
        ["GET", "/api/projects/general/export?format=csv"],
        ["PUT", "/api/projects/general/prompt", prompt],
      ];
      const answers = await Promise.all(
        requests.map(async ([method, path, body]) => {
          const response = await fetch(`${base}${path}`, {
            method,
            headers: { "content-type": "application/json" },
            body: body && JSON.stringify(body),
          });
          return {
            method,
            path,
            status: response.status,
            body: (await response.json()) as { error: string },
          };
        }),
      );
      for (const { method, path, status, body } of answers) {
        assert.equal(status, 503, `${method} ${path}`);
        assert.match(body.error, /session store is not available/, `${method} ${path}`);
      }
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
    });
  },
);
