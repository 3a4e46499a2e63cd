/** Inbound topic layout (PROTOCOL A1). */

import { hasStateTopic } from "../projects/presets.js";

export type RouteKind = "user_input" | "state" | "cancel" | "template" | "clear_history" | "delete_session";

export interface Route {
  kind: RouteKind;
  project: string;
  /** The topic levels after `P/template/` etc., when there are any (may contain `/`). */
  topicSessionId?: string;
}

export { INVALID_TOPIC_CHARS } from "../client/wire.js";

const COMMAND_KINDS = ["template", "clear_history", "delete_session"] as const;

/**
 * Filters to subscribe to; `X/#` also matches `X` itself, so one filter covers both forms. In a
 * share group each becomes `$share/<group>/<filter>`: the broker gives each message to one member.
 * `P/cancel` is never shared: only the instance holding the turn can cancel it, so every one hears it.
 */
export function subscriptionTopics(projects: readonly string[], shareGroup?: string): string[] {
  const topics: string[] = [];
  for (const project of new Set(projects)) {
    topics.push(`${project}/user_input`);
    for (const kind of COMMAND_KINDS) topics.push(`${project}/${kind}/#`);
  }
  // Game-state topics (`maze/state`) come last, as the original subscribed them.
  for (const project of new Set(projects)) if (hasStateTopic(project)) topics.push(`${project}/state`);
  const cancels = [...new Set(projects)].map((project) => `${project}/cancel`);
  if (shareGroup === undefined) return [...topics, ...cancels];
  return [...topics.map((topic) => `$share/${shareGroup}/${topic}`), ...cancels];
}

/** Which of our inputs a topic is; undefined when it is not ours. */
export function routeTopic(topic: string, projects: ReadonlySet<string>): Route | undefined {
  // Project names may themselves contain `/`, so try each project as a prefix.
  for (const project of projects) {
    if (!topic.startsWith(`${project}/`)) continue;
    const route = routeWithin(project, topic.slice(project.length + 1));
    if (route) return route;
  }
  return undefined;
}

function routeWithin(project: string, rest: string): Route | undefined {
  if (rest === "user_input") return { kind: "user_input", project };
  if (rest === "state" && hasStateTopic(project)) return { kind: "state", project };
  if (rest === "cancel") return { kind: "cancel", project };
  for (const kind of COMMAND_KINDS) {
    if (rest === kind) return { kind, project };
    if (rest.startsWith(`${kind}/`)) {
      const suffix = rest.slice(kind.length + 1);
      return suffix === "" ? { kind, project } : { kind, project, topicSessionId: suffix };
    }
  }
  return undefined;
}
