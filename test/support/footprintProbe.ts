/**
 * Child process for the footprint test: starts a gateway from the settings given as JSON in
 * argv[2], then prints (as JSON) which optional packages the process has loaded, and stops.
 */
import { createRequire } from "node:module";
import type { SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { testSettings } from "./settings.js";

// Not ws: MQTT.js loads it for its own WebSocket transport.
const OPTIONAL_PACKAGES = ["aedes", "ioredis", "better-sqlite3", "yaml", "pino-pretty"];

const input = JSON.parse(process.argv[2] ?? "{}") as SettingsInput;
const gateway = new Gateway(testSettings(input));
await gateway.start();
// Every CommonJS file any import reached, ESM packages' CommonJS dependencies included.
const files = Object.keys(createRequire(import.meta.url).cache);
const loaded = OPTIONAL_PACKAGES.filter((name) =>
  files.some((file) => file.includes(`/node_modules/${name}/`)),
);
await gateway.stop();
process.stdout.write(JSON.stringify(loaded));
