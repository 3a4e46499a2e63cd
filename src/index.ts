/**
 * `llmqtt`: the gateway as a library. Build the settings from a plain object (defaults filled in
 * and checked by the schema), then start a Gateway; the client is also at `llmqtt/client`.
 *
 *   const gateway = new Gateway(buildSettings({ projects: ["general"], server: { url } }));
 *   await gateway.start();
 */
export { Gateway, type GatewayDeps } from "./gateway.js";
export { VERSION } from "./version.js";

export {
  SettingsSchema,
  type Settings,
  type ProjectSettings,
  type MqttSettings,
  type BrokerSettings,
  type ServerSettings,
  type SamplingSettings,
  type SessionSettings,
  type SchedulerSettings,
  type LimitSettings,
  type LoggingSettings,
  type TlsSettings,
} from "./config/schema.js";
export { buildSettings, mergeInputs, ConfigError, type SettingsInput } from "./config/load.js";
export { readConfigFile } from "./config/file.js";

export {
  BackendError,
  type BackendErrorCode,
  type BackendErrorDetails,
  type BackendHealth,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  type ChatRole,
  type ModelBackend,
  type SamplingParameters,
  type TokenUsage,
  type ToolCall,
  type ToolDefinition,
} from "./backends/types.js";

export * from "./client/index.js";
