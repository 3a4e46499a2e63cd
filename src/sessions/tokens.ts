import type { ChatMessage } from "../backends/types.js";

export interface TokenEstimatorOptions {
  /** Starting ratio; ~3.5 fits English prose with common BPE vocabularies. */
  charsPerToken?: number;
  /** Tokens a chat template adds around each message (role markers, separators). */
  perMessageOverhead?: number;
  /** Weight of each new observation in the moving average, in (0, 1]. */
  smoothing?: number;
}

const MIN_RATIO = 0.5;
const MAX_RATIO = 10;

/**
 * Estimates prompt tokens without a tokenizer: characters divided by a chars-per-token ratio
 * that is learned from the prompt token counts the model server reports, so budgets track the
 * actual model and language instead of a fixed guess.
 */
export class TokenEstimator {
  readonly perMessageOverhead: number;
  private readonly smoothing: number;
  private ratio: number;

  constructor(options: TokenEstimatorOptions = {}) {
    this.ratio = clampRatio(options.charsPerToken ?? 3.5);
    this.perMessageOverhead = options.perMessageOverhead ?? 4;
    this.smoothing = options.smoothing ?? 0.2;
  }

  get charsPerToken(): number {
    return this.ratio;
  }

  estimateText(text: string): number {
    return Math.ceil(text.length / this.ratio);
  }

  /** One message with its template overhead. */
  estimateMessage(message: ChatMessage): number {
    return this.perMessageOverhead + this.estimateText(message.content);
  }

  /** Additive over messages, so callers can sum per-message estimates. */
  estimate(messages: readonly ChatMessage[]): number {
    let tokens = 0;
    for (const message of messages) tokens += this.estimateMessage(message);
    return tokens;
  }

  /** Learns from a server's `prompt_tokens` for exactly these messages. */
  observe(messages: readonly ChatMessage[], promptTokens: number): void {
    let chars = 0;
    for (const message of messages) chars += message.content.length;
    const contentTokens = promptTokens - this.perMessageOverhead * messages.length;
    // Too little text, or a count the overhead already explains, says nothing about the ratio.
    if (chars === 0 || !Number.isFinite(contentTokens) || contentTokens <= 0) return;
    const observed = clampRatio(chars / contentTokens);
    this.ratio = clampRatio(this.ratio + this.smoothing * (observed - this.ratio));
  }
}

function clampRatio(ratio: number): number {
  return Math.min(MAX_RATIO, Math.max(MIN_RATIO, ratio));
}
