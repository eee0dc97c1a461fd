import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadBenchConfig, type BenchConfig } from "./lib/config";
import type { ConnectResult } from "./lib/protocol";
import { startBaseline, startProductSingle, type RunningTarget } from "./lib/servers";
import { LoadWorker } from "./lib/workers";
import { TENANT } from "./scenarios/context";

/**
 * `npm run bench:heap`: where each server's JS heap per held connection goes, product (one node)
 * against the baseline, from heap snapshots rather than totals. Each server takes WARM
 * connections, then a snapshot (after a full GC), then HEAP_CONNECTIONS more, then a second
 * snapshot; the objects new in the second are grouped by their type and the chain of what retains
 * them, per connection. Deterministic to a few bytes, unlike RSS or CPU on a shared machine, so a
 * change to the per-connection footprint is measured exactly (docs/benchmarks.md, Fixed item 12).
 *
 * BENCH_HEAP_CONNECTIONS (default 2000), BENCH_HEAP_DEPTH (retainer levels, default 2),
 * BENCH_HEAP_TOP (rows, default 40).
 */
const WARM = 200;

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Bytes and objects per connection, keyed by "type:name <-edge- retainer ...". */
type Footprint = Map<string, { bytes: number; objects: number }>;

function readSnapshot(file: string): Snapshot {
  return JSON.parse(readFileSync(file, "utf8")) as Snapshot;
}

function nodeIds(s: Snapshot): Set<number> {
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const id = fields.indexOf("id");
  const ids = new Set<number>();
  for (let i = 0; i < s.nodes.length; i += width) ids.add(s.nodes[i + id]);
  return ids;
}

/** The objects of `after` that `before` did not have, grouped by what they are and what holds them. */
export function newObjects(before: Snapshot, after: Snapshot, connections: number, depth: number): Footprint {
  const old = nodeIds(before);
  const meta = after.snapshot.meta;
  const width = meta.node_fields.length;
  const edgeWidth = meta.edge_fields.length;
  const [type, name, id, selfSize, edgeCount] = ["type", "name", "id", "self_size", "edge_count"].map(f => meta.node_fields.indexOf(f));
  const [edgeType, edgeName, edgeTo] = ["type", "name_or_index", "to_node"].map(f => meta.edge_fields.indexOf(f));
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const count = after.nodes.length / width;
  const label = (n: number) => {
    const t = nodeTypes[after.nodes[n * width + type]];
    return ["string", "concatenated string", "sliced string", "number", "code"].includes(t) ? t : `${t}:${after.strings[after.nodes[n * width + name]].slice(0, 40)}`;
  };
  const isNew = (n: number) => !old.has(after.nodes[n * width + id]);
  // One retainer per object: a new one when there is one (it says what the connection added).
  const retainer = new Int32Array(count).fill(-1);
  const via: string[] = new Array<string>(count);
  let e = 0;
  for (let n = 0; n < count; n++) {
    for (let k = after.nodes[n * width + edgeCount]; k > 0; k--, e += edgeWidth) {
      const kind = edgeTypes[after.edges[e + edgeType]];
      if (kind === "weak" || kind === "shortcut") continue;
      const to = after.edges[e + edgeTo] / width;
      if (retainer[to] === -1 || (!isNew(retainer[to]) && isNew(n))) {
        retainer[to] = n;
        via[to] = kind === "element" || kind === "hidden" ? `[${kind}]` : String(after.strings[after.edges[e + edgeName]]).slice(0, 30);
      }
    }
  }
  const footprint: Footprint = new Map();
  for (let n = 0; n < count; n++) {
    if (!isNew(n)) continue;
    let key = label(n);
    for (let c = n, d = 0; d < depth && retainer[c] >= 0; d++, c = retainer[c]) key += `  <-${via[c]}- ${label(retainer[c])}`;
    const entry = footprint.get(key) ?? { bytes: 0, objects: 0 };
    entry.bytes += after.nodes[n * width + selfSize] / connections;
    entry.objects += 1 / connections;
    footprint.set(key, entry);
  }
  return footprint;
}

/** Opens `count` more authenticated connections from the load worker, and keeps them open. */
async function hold(worker: LoadWorker, target: RunningTarget, config: BenchConfig, userPrefix: string, count: number): Promise<void> {
  const result = await worker.request<ConnectResult>(
    { cmd: "connect", group: "held", urls: target.urls, secret: config.secret, tenantId: TENANT, userPrefix, from: 0, count, localAddresses: config.sourceAddresses, concurrency: 20, timeoutMs: 20_000 },
    60_000 + count * 20
  );
  if (result.connected < count) throw new Error(`only ${result.connected} of ${count} connections opened: ${JSON.stringify(result.errors)}`);
}

async function measure(name: string, target: RunningTarget, config: BenchConfig, connections: number, depth: number): Promise<{ footprint: Footprint; total: number }> {
  const [server] = target.gateways;
  const worker = new LoadWorker(0, 1024);
  try {
    await hold(worker, target, config, "warm-", WARM);
    const before = (await server.memory()).snapshot;
    await hold(worker, target, config, "u-", connections);
    const after = (await server.memory()).snapshot;
    if (!before || !after) throw new Error(`${name}: no heap snapshot (BENCH_HEAP_SNAPSHOT_DIR)`);
    const footprint = newObjects(readSnapshot(before), readSnapshot(after), connections, depth);
    const total = [...footprint.values()].reduce((sum, e) => sum + e.bytes, 0);
    console.log(`${name}: ${total.toFixed(0)} bytes of new objects per connection (${connections} connections after ${WARM})`);
    return { footprint, total };
  } finally {
    await worker.request({ cmd: "close", group: "held" }, 60_000).catch(() => undefined);
    await worker.stop();
    await target.stop();
  }
}

async function main() {
  const config = loadBenchConfig();
  const connections = Number(process.env.BENCH_HEAP_CONNECTIONS ?? 2000);
  const depth = Number(process.env.BENCH_HEAP_DEPTH ?? 2);
  const top = Number(process.env.BENCH_HEAP_TOP ?? 40);
  const dir = mkdtempSync(path.join(tmpdir(), "bench-heap-"));
  process.env.BENCH_HEAP_SNAPSHOT_DIR = dir;
  try {
    const product = await measure("product", await startProductSingle(config), config, connections, depth);
    const baseline = await measure("baseline", await startBaseline(config), config, connections, depth);
    console.log(`product − baseline: ${(product.total - baseline.total).toFixed(0)} bytes per connection (${(product.total / baseline.total).toFixed(2)}×)\n`);
    const rows = [...new Set([...product.footprint.keys(), ...baseline.footprint.keys()])].map(key => {
      const p = product.footprint.get(key) ?? { bytes: 0, objects: 0 };
      const b = baseline.footprint.get(key) ?? { bytes: 0, objects: 0 };
      return { key, bytes: p.bytes - b.bytes, objects: p.objects - b.objects };
    });
    rows.sort((x, y) => y.bytes - x.bytes);
    console.log("| bytes | objects | object  <-edge- retainer (product − baseline, per connection) |\n|---:|---:|---|");
    for (const r of [...rows.slice(0, top), ...rows.slice(-5)]) console.log(`| ${r.bytes.toFixed(1)} | ${r.objects.toFixed(2)} | \`${r.key}\` |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch(err => {
    console.error(err);
    process.exit(1);
  });
}
