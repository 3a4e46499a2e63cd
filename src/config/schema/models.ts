import { z } from "zod";
import { positiveInt, flag, secret } from "./common.js";

/**
 * Settings schema sections, assembled in ../schema.ts:
 * the model servers (one, or a pool), the model and its default sampling.
 */

export const ServerSettingsSchema = z.strictObject({
  url: z
    .string()
    .default("http://localhost:8080")
    .describe("OpenAI-compatible model server, with or without /v1; repeat or comma-separate for a pool")
    .meta({ cli: { list: true, arg: "<url>" } }),
  apiKey: z.string().optional().describe("API key of the model server, if it needs one").meta(secret),
  model: z.string().default("default").describe("model name sent with requests (llama-server ignores it)"),
  timeoutSec: z
    .number()
    .positive()
    .default(120)
    .describe("deadline for one turn, retries included, seconds")
    .meta(flag("--server-timeout")),
  slots: positiveInt
    .optional()
    .describe("model calls in flight at once (default: the server's total_slots from /props, else 4)")
    .meta({ cli: { aliases: ["--num-workers"] } }),
  weight: z.number().positive().optional().describe("share of a pool's traffic, relative to the others"),
  defaultSlots: positiveInt.default(4).describe("model calls in flight when the server does not say"),
  probeIntervalSec: z.number().positive().default(10).describe("seconds between health probes"),
});

/** One model server of a pool; fields it leaves out come from `server`. */
export const BackendEntrySchema = z.strictObject({
  url: z.string(),
  apiKey: z.string().optional().meta(secret),
  model: z.string().optional(),
  weight: z.number().positive().optional(),
  slots: positiveInt.optional(),
});

export const ModelSettingsSchema = z.strictObject({
  path: z
    .string()
    .min(1)
    .optional()
    .describe(
      "run this model inside llmqtt instead of using a model server: a .gguf file, an alias llmqtt downloads (qwen3-0.6b, qwen3-0.6b-q4, qwen3-1.7b, qwen3-1.7b-q8), or hf:<user>/<repo>/<file>",
    )
    .meta(flag("--model", { arg: "<file.gguf|alias>" })),
  slots: positiveInt.default(1).describe("turns answered at once"),
  contextSize: positiveInt
    .optional()
    .describe("context tokens per slot (default: min(4096, the model's))")
    .meta(flag("--model-context", { arg: "<tokens>" })),
  /** The library's own default is far slower on small machines. */
  threads: positiveInt.optional().describe("CPU threads (default: half the logical CPUs)"),
  gpu: z.enum(["off", "auto"]).default("off").describe("use a GPU if one is found"),
  allowDownload: z
    .boolean()
    .optional()
    .describe(
      "true: download a missing model (aliases and hf:); false: never download (default: an alias downloads when started from a terminal)",
    )
    .meta(flag("--allow-download")),
  cacheDir: z.string().optional().describe("downloaded models (default: ~/.cache/llmqtt/models)"),
  hfEndpoint: z
    .string()
    .url()
    .optional()
    .describe(
      "Hugging Face or a mirror of it, for downloads (default: $HF_ENDPOINT, else https://huggingface.co)",
    ),
});

export const SamplingSettingsSchema = z.strictObject({
  temperature: z.number().min(0).max(2).default(1.2).describe("temperature, 0-2").meta(flag("--temperature")),
  topP: z.number().min(0).max(1).default(0.9).describe("top_p, 0-1").meta(flag("--top-p")),
  maxTokens: positiveInt.default(512).describe("max tokens per reply").meta(flag("--max-tokens")),
  maxTokensLimit: positiveInt
    .default(8192)
    .describe("upper bound a client's maxTokens is clamped to")
    .meta(flag("--max-tokens-limit")),
});
