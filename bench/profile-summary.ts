/**
 * Summarises V8 CPU profiles written by `BENCH_CPU_PROF=1 npm run bench` (or any `node --cpu-prof`
 * run): self time by function and by module (project file or npm package), top N each.
 *
 *   node dist-bench/bench/profile-summary.js bench/results/profiles/product-*.cpuprofile [--top 25]
 *   ... --inclusive project     also: time including callees of functions whose name/module matches
 *   ... --tree onMessage[:4]    also: the callee tree of every function whose `name  module:line`
 *                               contains the string, merged over its call sites, 4 levels deep
 *                               (default 3), branches under 1 % of the root left out
 */
import { readFileSync } from "node:fs";
import path from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function moduleOf(url: string): string {
  if (!url) return "(native/V8)";
  const file = url.replace(/^file:\/\//, "");
  const nm = file.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = file.slice(nm + "node_modules/".length).split("/");
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (file.startsWith("node:")) return "node core";
  const dist = file.indexOf("/dist/");
  if (dist >= 0) return `project ${file.slice(dist + 1)}`;
  const bench = file.indexOf("/dist-bench/");
  if (bench >= 0) return `bench ${file.slice(bench + 1)}`;
  return path.basename(file);
}

function summarise(file: string, top: number, match: string | undefined, tree: string | undefined): void {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map(n => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame;
    const mod = moduleOf(url);
    const fn = `${functionName || "(anonymous)"}  ${mod}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
  }
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const keyOf = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return `${functionName || "(anonymous)"}  ${moduleOf(url)}${url ? `:${lineNumber + 1}` : ""}`;
  };
  const inclusive = new Map<string, number>();
  const busy = total - (self.get(profile.nodes.find(n => n.callFrame.functionName === "(idle)")?.id ?? -1) ?? 0);
  profile.samples.forEach((id, i) => {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = keyOf(byId.get(at) as ProfileNode);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
    }
  });
  const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)} %`;
  const print = (title: string, m: Map<string, number>) => {
    console.log(`\n  ${title}`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
  };
  console.log(`\n${path.basename(file)}: ${(total / 1e6).toFixed(2)} s sampled over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${(busy / 1e6).toFixed(2)} s not idle`);
  print("self time by module", byModule);
  print("self time by function", byFunction);
  if (match !== undefined) {
    const picked = new Map([...inclusive].filter(([k]) => k.includes(match)));
    print(`inclusive (self + callees) time of functions matching "${match}" (ms)`, picked);
    console.log("  (ms)");
    for (const [k, us] of [...picked].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${(us / 1000).toFixed(0).padStart(7)}  ${k}`);
  }
  if (tree !== undefined) printTree(profile, byId, self, keyOf, tree);
}

/**
 * The callees of the matching function, merged over all its call sites (a match nested inside
 * another match counts once, at the outer one), as an indented tree of inclusive milliseconds.
 */
function printTree(profile: Profile, byId: Map<number, ProfileNode>, self: Map<number, number>, keyOf: (n: ProfileNode) => string, spec: string): void {
  const colon = spec.lastIndexOf(":");
  const depthText = colon > 0 ? spec.slice(colon + 1) : "";
  const depth = /^\d+$/.test(depthText) ? Number(depthText) : 3;
  const match = /^\d+$/.test(depthText) ? spec.slice(0, colon) : spec;
  const totals = new Map<number, number>();
  const totalOf = (node: ProfileNode): number => {
    let sum = totals.get(node.id);
    if (sum !== undefined) return sum;
    sum = self.get(node.id) ?? 0;
    for (const child of node.children ?? []) sum += totalOf(byId.get(child) as ProfileNode);
    totals.set(node.id, sum);
    return sum;
  };
  interface Branch { us: number; children: Map<string, Branch> }
  const root: Branch = { us: 0, children: new Map() };
  const merge = (node: ProfileNode, into: Branch, level: number) => {
    if (level >= depth) return;
    for (const id of node.children ?? []) {
      const child = byId.get(id) as ProfileNode;
      const key = keyOf(child);
      let branch = into.children.get(key);
      if (!branch) into.children.set(key, (branch = { us: 0, children: new Map() }));
      branch.us += totalOf(child);
      merge(child, branch, level + 1);
    }
  };
  const visit = (node: ProfileNode) => {
    if (keyOf(node).includes(match)) {
      root.us += totalOf(node);
      merge(node, root, 0);
      return;
    }
    for (const id of node.children ?? []) visit(byId.get(id) as ProfileNode);
  };
  visit(profile.nodes[0]);
  console.log(`\n  callees of "${match}" (inclusive ms, ${depth} levels): ${(root.us / 1000).toFixed(0)} ms in all`);
  const print = (branch: Branch, indent: string) => {
    for (const [key, child] of [...branch.children].sort((a, b) => b[1].us - a[1].us)) {
      if (child.us < root.us * 0.01) continue;
      console.log(`  ${(child.us / 1000).toFixed(0).padStart(7)}  ${indent}${key}`);
      print(child, `${indent}  `);
    }
  };
  print(root, "");
}

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  args.splice(at, 2);
  return value;
};
const top = Number(option("--top") ?? 25);
const match = option("--inclusive");
const tree = option("--tree");
if (args.length === 0) {
  console.error("usage: node dist-bench/bench/profile-summary.js <file.cpuprofile>... [--top N] [--inclusive <substring, e.g. project>] [--tree <function>[:depth]]");
  process.exit(2);
}
for (const file of args) summarise(file, top, match, tree);
