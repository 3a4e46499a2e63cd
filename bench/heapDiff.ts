/**
 * Compares two V8 heap snapshots (from `npm run bench -- --only S4 --heap-snapshots [dir]`, or
 * taken mid-S1 with `--node-flags "--heapsnapshot-signal=SIGUSR2"`) and prints what the second
 * holds more of, by object kind: count and self size, per `per` units (e.g. per session, or per
 * model call in flight).
 *
 *   node build/bench/heapDiff.js before.heapsnapshot after.heapsnapshot [per] [top]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

type Totals = Map<string, { count: number; size: number }>;

function totals(file: string): Totals {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const out: Totals = new Map();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    let name = snap.strings[snap.nodes[i + nameAt]!]!;
    // Strings and code are grouped by kind, not by content.
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "";
    else if (type === "code" || type === "hidden" || type === "array") name = name.slice(0, 40);
    else name = name.slice(0, 60);
    const key = `${type}${name ? ` ${name}` : ""}`;
    const entry = out.get(key) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += snap.nodes[i + sizeAt]!;
    out.set(key, entry);
  }
  return out;
}

const [beforeFile, afterFile, perArg, topArg] = process.argv.slice(2);
if (!beforeFile || !afterFile) {
  console.error("usage: node build/bench/heapDiff.js before.heapsnapshot after.heapsnapshot [per] [top]");
  process.exit(2);
}
const per = Number(perArg ?? 1);
const top = Number(topArg ?? 30);
const before = totals(beforeFile);
const after = totals(afterFile);
const rows = [...after.entries()].map(([key, a]) => {
  const b = before.get(key) ?? { count: 0, size: 0 };
  return { key, count: (a.count - b.count) / per, size: (a.size - b.size) / per };
});
rows.sort((x, y) => y.size - x.size);
const total = rows.reduce((sum, r) => sum + r.size, 0);
console.log(`growth per ${per === 1 ? "snapshot" : `1/${per}`}: ${total.toFixed(0)} B self size in total`);
console.log(`${"bytes".padStart(8)} ${"objects".padStart(8)}  kind`);
for (const r of rows.slice(0, top))
  console.log(`${r.size.toFixed(1).padStart(8)} ${r.count.toFixed(2).padStart(8)}  ${r.key}`);
