import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * The package as a user gets it: `npm pack` (its prepack builds dist/ from a clean slate), the
 * tarball unpacked into a fresh project's node_modules/llmqtt, then both entry points imported
 * and type-checked from there.
 *
 * npm cannot install here: offline it lacks the registry metadata of the dependencies, and tests
 * may not download. So the install is what npm does with a tarball — unpack it as
 * node_modules/<name> — with the dependencies reached through a link inside the unpacked package
 * to this repository's node_modules. (Letting npm reify a node_modules that links into a shared
 * one prunes the linked packages for real.)
 */

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);
const SOURCES = ["package.json", "tsconfig.json", "tsconfig.base.json", "README.md", "src", "web"];

describe("the packed package", { timeout: 240_000 }, () => {
  let dir: string;
  let app: string;
  let installed: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "llmqtt-pack-"));
    // Packed from a copy, so prepack's clean build never touches this checkout's dist/.
    const source = join(dir, "source");
    for (const name of SOURCES) cpSync(join(ROOT, name), join(source, name), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(source, "node_modules"));
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: source });
    const filename = (JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string }[])[0]?.filename;
    assert.ok(filename, stdout);

    app = join(dir, "app");
    installed = join(app, "node_modules", "llmqtt");
    mkdirSync(installed, { recursive: true });
    await run("tar", ["-xzf", join(dir, filename), "-C", installed, "--strip-components=1"]);
    symlinkSync(join(ROOT, "node_modules"), join(installed, "node_modules"));
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("it holds the built dist/ and web/, and no sources or tests", async () => {
    const { stdout } = await run(
      "find",
      [".", "-path", "./node_modules", "-prune", "-o", "-type", "f", "-print"],
      {
        cwd: installed,
      },
    );
    const files = stdout.trim().split("\n");
    for (const file of [
      "./dist/index.js",
      "./dist/index.d.ts",
      "./dist/client/index.js",
      "./dist/cli.js",
      "./web/playground.js",
    ]) {
      assert.ok(files.includes(file), `${file} is missing`);
    }
    assert.deepEqual(
      files.filter((f) => /^\.\/(src|test|build)\//.test(f) || f.endsWith(".tsbuildinfo")),
      [],
    );
  });

  test("both entry points import as ESM", async () => {
    const script = `
      import * as llmqtt from "llmqtt";
      import * as client from "llmqtt/client";
      const settings = llmqtt.buildSettings({ projects: ["general"] });
      console.log(JSON.stringify({
        gateway: typeof llmqtt.Gateway,
        version: llmqtt.VERSION,
        projects: settings.projects.map((p) => p.name ?? p),
        connect: typeof client.connect,
        sameClient: client.connect === llmqtt.connect,
        error: new client.LlmqttError("timeout", "slow").code,
      }));
    `;
    writeFileSync(join(app, "use.mjs"), script);
    const { stdout } = await run(process.execPath, ["use.mjs"], { cwd: app });
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
      .version;
    assert.deepEqual(JSON.parse(stdout), {
      gateway: "function",
      version,
      projects: ["general"],
      connect: "function",
      sameClient: true,
      error: "timeout",
    });
  });

  test("the client entry point imports nothing from node:*", () => {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, specifier] of readFileSync(file, "utf8").matchAll(
        /^(?:import|export)\b[^;]*?from "([^"]+)"/gm,
      )) {
        assert.ok(specifier === "mqtt" || specifier?.startsWith("./"), `${file} imports ${specifier}`);
        if (specifier?.startsWith("./")) visit(join(file, "..", specifier));
      }
    };
    visit(join(installed, "dist", "client", "index.js"));
    assert.ok(seen.size > 3);
  });

  test("the types resolve through the exports map", async () => {
    writeFileSync(
      join(app, "check.ts"),
      `
      import { buildSettings, Gateway, type ModelBackend, type Settings } from "llmqtt";
      import { connect, LlmqttError, type Reply, type StreamEvent } from "llmqtt/client";
      const settings: Settings = buildSettings({});
      export const gateway: Gateway = new Gateway(settings);
      export const backend: ModelBackend | undefined = undefined;
      export async function ask(): Promise<string> {
        const client = await connect("ws://localhost:9001", { protocolVersion: 5 });
        const reply: Reply = await client.ask("general", "hi", { timeoutMs: 1000 });
        for await (const event of client.stream("general", "hi")) {
          const e: StreamEvent = event;
          if (e.type === "delta") return e.text;
        }
        throw new LlmqttError("no_reply", reply.text);
      }
      // @ts-expect-error the client has no such method
      export const wrong = (await connect("ws://x")).nonsense;
      `,
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          typeRoots: ["./node_modules/llmqtt/node_modules/@types"],
          types: ["node"],
        },
        files: ["check.ts"],
      }),
    );
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const result = await run(process.execPath, [tsc, "-p", "."], { cwd: app }).catch(
      (error: { stdout: string }) => error,
    );
    assert.equal(result.stdout, "");
  });

  test("the bin runs", async () => {
    const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
      bin: Record<string, string>;
    };
    const cli = join(installed, pkg.bin.llmqtt ?? "");
    assert.match(readFileSync(cli, "utf8"), /^#!\/usr\/bin\/env node\n/);
    const { stdout } = await run(process.execPath, [cli, "--help"], { cwd: app });
    assert.match(stdout, /Usage: llmqtt/);
    assert.match(stdout, /\bchat\b/);
  });
});
