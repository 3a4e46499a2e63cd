/**
 * Child process for the footprint test: starts a gateway from the settings given as JSON in
 * argv[2], has it publish one QoS 1 message, then prints (as JSON) which optional packages the
 * process has loaded and how many message-id Buffers MQTT.js's packet writer holds, and stops.
 */
import { createRequire } from "node:module";
import type { SettingsInput } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import { testSettings } from "./settings.js";

export interface Footprint {
  loaded: string[];
  messageIdBuffers: number;
}

// Not ws: MQTT.js loads it for its own WebSocket transport.
const OPTIONAL_PACKAGES = ["aedes", "ioredis", "better-sqlite3", "yaml", "pino-pretty"];

const require = createRequire(import.meta.url);
const input = JSON.parse(process.argv[2] ?? "{}") as SettingsInput;
const gateway = new Gateway(testSettings(input));
await gateway.start();
// The first packet with a message id is when MQTT.js would build its cache of them.
await gateway["transport"].publish("footprint/probe", "x", { qos: 1 });
// Every CommonJS file any import reached, ESM packages' CommonJS dependencies included.
const files = Object.keys(require.cache);
const numbers = require("mqtt-packet/numbers.js") as { cache: Record<number, Buffer> };
const footprint: Footprint = {
  loaded: OPTIONAL_PACKAGES.filter((name) => files.some((file) => file.includes(`/node_modules/${name}/`))),
  messageIdBuffers: Object.keys(numbers.cache).length,
};
await gateway.stop();
process.stdout.write(JSON.stringify(footprint));
