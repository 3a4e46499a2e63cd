import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ProjectCatalog } from "../../src/config/projects.js";
import type { SettingsInput } from "../../src/config/load.js";
import { testSettings } from "../support/settings.js";

const catalog = (input: SettingsInput) => new ProjectCatalog(testSettings(input));

const QUIZ = {
  type: "object",
  properties: { question: { type: "string" }, answers: { type: "array", items: { type: "string" } } },
  required: ["question", "answers"],
  additionalProperties: false,
};

describe("project reply schemas (PROTOCOL C7)", () => {
  test("the maze preset answers {hint, suggestion} while its tools are off", () => {
    const maze = catalog({ projects: ["maze", "general"] }).get("maze").replySchema;
    assert.equal(maze?.name, "maze_reply");
    assert.equal(maze?.strict, true);
    assert.equal(maze?.problem('{"hint": "go", "suggestion": "left"}'), undefined);
    assert.notEqual(maze?.problem('{"hint": "go"}'), undefined);
    assert.equal(catalog({ projects: ["general"] }).get("general").replySchema, undefined);
    assert.equal(catalog({ projects: ["maze"], mazeTools: true }).get("maze").replySchema, undefined);
    const some = catalog({ projects: [{ name: "maze", mazeTools: ["break_wall"] }] });
    assert.equal(some.get("maze").replySchema, undefined);
  });

  test("a project's own schema, json_object, or false for none", () => {
    const projects = catalog({
      projects: [
        { name: "quiz", responseSchema: QUIZ },
        { name: "free", responseSchema: "json_object" },
        { name: "maze", responseSchema: false },
      ],
    });
    assert.deepEqual(projects.get("quiz").replySchema?.schema, QUIZ);
    assert.equal(projects.get("quiz").replySchema?.name, "quiz_reply");
    assert.deepEqual(projects.get("free").replySchema?.schema, { type: "object" });
    assert.equal(projects.get("maze").replySchema, undefined);
  });

  test("an unusable schema, or one beside tools, stops the start with the setting's name", () => {
    assert.throws(
      () => catalog({ projects: [{ name: "quiz", responseSchema: { type: "strng" } }] }),
      /projects\.quiz\.responseSchema: schema\/type must be/,
    );
    assert.throws(
      () => catalog({ projects: [{ name: "maze", mazeTools: true, responseSchema: QUIZ }] }),
      /projects\.maze\.responseSchema: the project's tools are on/,
    );
    // Unlike a client's, the operator's schema may use regular expressions.
    const word = { type: "object", properties: { w: { type: "string", pattern: "^[a-z]+$" } } };
    assert.ok(catalog({ projects: [{ name: "words", responseSchema: word }] }).get("words").replySchema);
  });
});

describe("per-project maxTokens (issue 28.5)", () => {
  test("game presets keep replies short, the others take the global default", () => {
    const projects = catalog({
      projects: ["maze", "driving", "bloodcell", "racing", "prompt_portal", "general"],
    });
    const maxTokens = Object.fromEntries(
      projects.names.map((name) => [name, projects.get(name).sampling.maxTokens]),
    );
    assert.deepEqual(maxTokens, {
      maze: 160,
      driving: 160,
      bloodcell: 96,
      racing: 96,
      prompt_portal: 512,
      general: 512,
    });
    assert.equal(
      catalog({ projects: ["quiz"], sampling: { maxTokens: 300 } }).get("quiz").sampling.maxTokens,
      300,
    );
  });

  test("the config file's project setting wins over the preset", () => {
    const maze = catalog({ projects: [{ name: "maze", maxTokens: 400 }] }).get("maze");
    assert.equal(maze.sampling.maxTokens, 400);
  });
});
