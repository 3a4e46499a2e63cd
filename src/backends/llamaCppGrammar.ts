import type { GbnfJsonSchema, Llama, LlamaGrammar } from "node-llama-cpp";
import { toGbnfSchema } from "./llamaCppRequest.js";
import { errorText } from "./llamaCppRuntime.js";
import { BackendError, type JsonReplySchema } from "./types.js";

/** Grammars kept; a game uses one or two schemas, a client sending its own may use many. */
const MAX_GRAMMARS = 32;

/**
 * Grammars that constrain the in-process model's reply to a JSON schema (PROTOCOL C7), built once
 * per schema: building one turns the schema into GBNF and has llama.cpp parse it.
 */
export class GrammarCache {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly llama: Llama) {}

  /** The grammar for `reply`; a schema node-llama-cpp cannot express fails as invalid_request. */
  async get(reply: JsonReplySchema): Promise<LlamaGrammar> {
    let grammar = this.grammars.get(reply.key);
    if (grammar) {
      // Most recently used last: the oldest is the first to go.
      this.grammars.delete(reply.key);
    } else {
      grammar = this.build(reply);
      if (this.grammars.size >= MAX_GRAMMARS) this.grammars.delete(this.grammars.keys().next().value!);
    }
    this.grammars.set(reply.key, grammar);
    try {
      return await grammar;
    } catch (err) {
      this.grammars.delete(reply.key);
      throw err;
    }
  }

  private async build(reply: JsonReplySchema): Promise<LlamaGrammar> {
    try {
      return await this.llama.createGrammarForJsonSchema<GbnfJsonSchema>(toGbnfSchema(reply.schema));
    } catch (err) {
      throw new BackendError(
        "invalid_request",
        `the in-process model cannot constrain its reply to this schema: ${errorText(err)}`,
        { cause: err },
      );
    }
  }
}
