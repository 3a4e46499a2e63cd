import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { routeTopic, subscriptionTopics } from "../../src/protocol/topics.js";

describe("subscriptionTopics", () => {
  test("covers input, template, clear and delete of each project, then maze/state, then cancel", () => {
    assert.deepEqual(subscriptionTopics(["maze", "general"]), [
      "maze/user_input",
      "maze/template/#",
      "maze/clear_history/#",
      "maze/delete_session/#",
      "general/user_input",
      "general/template/#",
      "general/clear_history/#",
      "general/delete_session/#",
      "maze/state",
      "maze/cancel",
      "general/cancel",
    ]);
  });

  test("has no maze/state without maze, and no duplicates", () => {
    assert.deepEqual(subscriptionTopics(["general", "general"]), [
      "general/user_input",
      "general/template/#",
      "general/clear_history/#",
      "general/delete_session/#",
      "general/cancel",
    ]);
  });
});

describe("routeTopic", () => {
  const projects = new Set(["maze", "prompt_portal", "games/racing"]);

  test("routes chat and maze state", () => {
    assert.deepEqual(routeTopic("prompt_portal/user_input", projects), {
      kind: "user_input",
      project: "prompt_portal",
    });
    assert.deepEqual(routeTopic("maze/state", projects), { kind: "state", project: "maze" });
    assert.equal(routeTopic("maze/state", new Set(["general"])), undefined);
  });

  test("routes cancel for every project, exact topic only", () => {
    assert.deepEqual(routeTopic("prompt_portal/cancel", projects), {
      kind: "cancel",
      project: "prompt_portal",
    });
    assert.deepEqual(routeTopic("games/racing/cancel", projects), {
      kind: "cancel",
      project: "games/racing",
    });
    assert.equal(routeTopic("maze/cancel/s1", projects), undefined);
  });

  test("routes commands with and without a topic session id", () => {
    assert.deepEqual(routeTopic("maze/template", projects), { kind: "template", project: "maze" });
    assert.deepEqual(routeTopic("maze/template/", projects), { kind: "template", project: "maze" });
    assert.deepEqual(routeTopic("maze/template/s1", projects), {
      kind: "template",
      project: "maze",
      topicSessionId: "s1",
    });
    assert.deepEqual(routeTopic("prompt_portal/delete_session/a/b", projects), {
      kind: "delete_session",
      project: "prompt_portal",
      topicSessionId: "a/b",
    });
    assert.deepEqual(routeTopic("maze/clear_history/x", projects), {
      kind: "clear_history",
      project: "maze",
      topicSessionId: "x",
    });
  });

  test("handles project names containing /", () => {
    assert.deepEqual(routeTopic("games/racing/user_input", projects), {
      kind: "user_input",
      project: "games/racing",
    });
  });

  test("ignores topics that are not ours", () => {
    for (const topic of [
      "general/user_input",
      "maze/user_input/extra",
      "maze/templates",
      "maze/assistant_response/s1",
      "maze/hint/s1",
      "maze/state/x",
      "maze",
      "",
    ]) {
      assert.equal(routeTopic(topic, projects), undefined, topic);
    }
  });
});

describe("subscriptionTopics in a share group", () => {
  test("every filter but cancel is shared under the group, the plain ones otherwise", () => {
    const plain = subscriptionTopics(["maze", "general"]);
    const shared = subscriptionTopics(["maze", "general"], "llmqtt");
    assert.ok(plain.includes("maze/state") && plain.includes("general/user_input"));
    // Only the instance holding a turn can cancel it, so every instance hears every cancel.
    assert.deepEqual(
      shared,
      plain.map((topic) => (topic.endsWith("/cancel") ? topic : `$share/llmqtt/${topic}`)),
    );
  });
});
