/**
 * Reads a V8 .cpuprofile (from `npm run bench -- --cpu-prof`) and prints where the time went:
 * the hottest functions by self time, and self time summed by source (llmqtt file or package).
 * A .heapprofile (from `--promoted-prof`) is read the same way, with bytes in place of time.
 *
 *   node build/bench/profileSummary.js build/bench-profiles/aedes-S1.cpuprofile [top]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface HeapNode {
  id: number;
  callFrame: ProfileNode["callFrame"];
  selfSize: number;
  children: HeapNode[];
}

/** A heap profile as a profile whose "time" is bytes: one sample per node, of its self size. */
function fromHeapProfile(head: HeapNode): Profile {
  const profile: Profile = { nodes: [], samples: [], timeDeltas: [], startTime: 0, endTime: 0 };
  const visit = (node: HeapNode): void => {
    profile.nodes.push({ id: node.id, callFrame: node.callFrame, children: node.children.map((c) => c.id) });
    profile.samples.push(node.id);
    profile.timeDeltas.push(node.selfSize);
    profile.endTime += node.selfSize;
    node.children.forEach(visit);
  };
  visit(head);
  return profile;
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: node build/bench/profileSummary.js <file.cpuprofile|file.heapprofile> [top]");
  process.exit(2);
}
const top = Number(topArg ?? 30);
const bytes = file.endsWith(".heapprofile");
const measure = bytes ? "bytes" : "time";
const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
const profile = bytes ? fromHeapProfile((parsed as { head: HeapNode }).head) : (parsed as Profile);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const totalUs = profile.endTime - profile.startTime;

/** A short name for where a function lives: `src/...`, a package name, `node:...`, or (native). */
function source(url: string): string {
  if (!url) return "(native/V8)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/build\/((?:src|test|bench)\/.*)$/.exec(url);
  if (own) return own[1]!;
  if (url.startsWith("node:")) return url;
  return url.replace(/^file:\/\//, "");
}

const functions = new Map<string, number>();
const sources = new Map<string, number>();
for (const [id, us] of selfUs) {
  const node = byId.get(id);
  if (!node) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = source(url);
  const key = `${functionName || "(anonymous)"}  ${where}${url ? `:${lineNumber + 1}` : ""}`;
  functions.set(key, (functions.get(key) ?? 0) + us);
  const group = where.startsWith("src/") ? "llmqtt " + where.split("/").slice(0, 2).join("/") : where;
  sources.set(group, (sources.get(group) ?? 0) + us);
}

const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %`;
const amount = bytes
  ? (b: number) => `${(b / 1024).toFixed(0).padStart(7)} KB`
  : (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);

console.log(
  bytes
    ? `${file}: ${(totalUs / 2 ** 20).toFixed(1)} MB sampled`
    : `${file}: ${(totalUs / 1e6).toFixed(1)} s profiled`,
);
console.log(`\nself ${measure} by source`);
for (const [name, us] of sorted(sources).slice(0, top)) console.log(`${amount(us)} ${pct(us)}  ${name}`);
console.log(`\nhottest functions (self ${measure})`);
for (const [name, us] of sorted(functions).slice(0, top)) console.log(`${amount(us)} ${pct(us)}  ${name}`);

/**
 * Inclusive time of llmqtt's own functions (src/): their self time plus everything they call
 * synchronously (an async function's later parts show up as separate entries, resumed from the
 * microtask queue). Each sample is counted once per function even under recursion.
 */
{
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let p: number | undefined = id; p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      const where = source(f.url);
      if (!where.startsWith("src/")) continue;
      const key = `${f.functionName || "(anonymous)"}  ${where}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  console.log(`\nllmqtt functions by inclusive ${measure} (self + synchronous callees)`);
  for (const [name, us] of sorted(inclusive).slice(0, top)) console.log(`${amount(us)} ${pct(us)}  ${name}`);
}

/** With a third argument: the call stacks (5 frames up) that lead to functions of that name. */
const callersOf = process.argv[4];
if (callersOf) {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const stacks = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node?.callFrame.functionName !== callersOf) continue;
    const frames: string[] = [];
    for (let p = parent.get(id); p !== undefined && frames.length < 14; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      frames.push(`${f.functionName || "(anonymous)"} ${source(f.url)}:${f.lineNumber + 1}`);
    }
    const key = frames.join(" < ");
    stacks.set(key, (stacks.get(key) ?? 0) + us);
  }
  console.log(`\ncallers of ${callersOf}`);
  for (const [stack, us] of sorted(stacks).slice(0, 12)) console.log(`${amount(us)} ${pct(us)}  ${stack}`);
}
