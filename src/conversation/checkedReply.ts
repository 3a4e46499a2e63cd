import type { ChatResult } from "../backends/types.js";
import type { ReplySchema } from "../protocol/replySchema.js";

/** A turn whose reply missed its schema on both tries (PROTOCOL C7). */
export class InvalidReply extends Error {
  constructor(readonly problem: string) {
    super(`the model's reply does not match its schema: ${problem}`);
    this.name = "InvalidReply";
  }
}

/**
 * PROTOCOL C7: a reply that is not JSON matching `schema` is asked for once more, and a second miss
 * throws InvalidReply, so a client never gets a malformed reply. Servers that constrain their
 * output miss only when it is cut off at maxTokens; servers that ignore the schema miss often.
 * `call(retry)` makes one model call; `onMiss` hears why the first reply was refused.
 */
export async function checkedReply(
  schema: ReplySchema,
  call: (retry: boolean) => Promise<ChatResult>,
  onMiss: (problem: string) => void,
): Promise<ChatResult> {
  const first = await call(false);
  const problem = replyProblem(schema, first);
  if (problem === undefined) return first;
  onMiss(problem);
  const second = await call(true);
  const again = replyProblem(schema, second);
  if (again === undefined) return second;
  throw new InvalidReply(again);
}

function replyProblem(schema: ReplySchema, result: ChatResult): string | undefined {
  const problem = schema.problem(result.text);
  if (problem !== undefined && result.finishReason === "length")
    return `${problem}; it was cut off at maxTokens`;
  return problem;
}
