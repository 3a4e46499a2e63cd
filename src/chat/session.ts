import type { LlmqttClient, Reply, StreamEvent } from "../client/index.js";
import { checkProject, safeSession } from "../client/protocol.js";

/**
 * The conversation `llmqtt chat` is in: a project, a session and its system prompt, on top of
 * the client library. Only the compatibility protocol is relied on, so it also works against the
 * original Python gateway: that one heeds template topics only for maze, hence the system prompt
 * is sent with every turn as well.
 */
export class ChatSession {
  private projectName: string;
  private session: string;
  private prompt: string | undefined;

  constructor(
    readonly client: LlmqttClient,
    project: string,
    sessionId?: string,
  ) {
    this.projectName = checkProject(project);
    this.session = safeSession(sessionId);
  }

  get project(): string {
    return this.projectName;
  }

  get sessionId(): string {
    return this.session;
  }

  get systemPrompt(): string | undefined {
    return this.prompt;
  }

  ask(message: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Reply> {
    return this.client.ask(this.projectName, message, this.callOptions(options));
  }

  stream(
    message: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): AsyncIterable<StreamEvent> {
    return this.client.stream(this.projectName, message, this.callOptions(options));
  }

  /** The conversation so far is kept. */
  async setSystemPrompt(prompt: string): Promise<void> {
    this.prompt = prompt;
    await this.client.setPrompt(this.projectName, prompt, { sessionId: this.session, reset: false });
  }

  async clear(): Promise<void> {
    await this.client.clear(this.projectName, { sessionId: this.session });
  }

  /** The session is forgotten by the gateway, system prompt included. */
  async delete(): Promise<void> {
    this.prompt = undefined;
    await this.client.deleteSession(this.projectName, { sessionId: this.session });
  }

  /** A new project starts a new conversation, so the system prompt is dropped with the old one. */
  switchProject(name: string): void {
    const project = checkProject(name);
    if (project !== this.projectName) this.prompt = undefined;
    this.projectName = project;
  }

  /** Returns the id actually used (made topic-safe); a blank id picks a fresh one. */
  switchSession(id?: string): string {
    const session = safeSession(id);
    if (session !== this.session) this.prompt = undefined;
    this.session = session;
    return session;
  }

  private callOptions(options: { timeoutMs?: number; signal?: AbortSignal }) {
    const { timeoutMs, signal } = options;
    return { sessionId: this.session, systemPrompt: this.prompt, timeoutMs, signal };
  }
}
