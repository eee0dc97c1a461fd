/**
 * `npm run bench:history`: does a node's past WebSocket traffic make its REST publishes slower?
 *
 * Two product processes on one node each (same build, same settings). One first takes
 * BENCH_DM_PAIRS × 2 WebSocket connections and, with BENCH_HISTORY_DM_TRIALS > 0 (default 0),
 * that many closed-loop DM trials; then every connection closes. Then both run the durable
 * publish closed loop in alternating trials (BENCH_HISTORY_TRIALS each, default 6), so the
 * machine's drift hits both alike. Reported per process: publishes/s, server CPU per publish,
 * the CPU of its main thread and of its other threads (V8's GC helpers), and its minor/major GC
 * pauses over the durable trials (a `perf_hooks` GC observer preloaded into each server).
 * BENCH_PRODUCT_ENV applies to both: `V8_ALLOCATION_SITE_PRETENURING=true` gives them V8's default
 * pretenuring back (lib/v8-tuning.ts), `EVENT_BUS_MAX_EVENTS_PER_TENANT=1000` a small log.
 */
import path from "node:path";
import { loadBenchConfig } from "./lib/config";
import { startProductSingle, type RunningTarget } from "./lib/servers";
import { LoadWorker } from "./lib/workers";
import { threadCpuMs } from "./lib/proc";
import { DirectBench } from "./scenarios/direct";
import { DurableBench } from "./scenarios/durable";
import type { ScenarioContext } from "./scenarios/context";

const GC_OBSERVER = path.join(__dirname, "lib/gc-observer.js");
const log = (line: string) => process.stderr.write(`${line}\n`);

type GcTotals = Record<string, { count: number; ms: number }>;

/** The observer's last running totals in a server's output (empty before its first GC). */
function gcTotals(output: string): GcTotals {
  const at = output.lastIndexOf("GC_TOTALS ");
  if (at < 0) return {};
  const end = output.indexOf("\n", at);
  return JSON.parse(output.slice(at + "GC_TOTALS ".length, end < 0 ? undefined : end)) as GcTotals;
}

function gcBetween(before: GcTotals, after: GcTotals): GcTotals {
  const diff: GcTotals = {};
  for (const [kind, total] of Object.entries(after)) {
    diff[kind] = { count: total.count - (before[kind]?.count ?? 0), ms: Math.round(total.ms - (before[kind]?.ms ?? 0)) };
  }
  return diff;
}

async function main() {
  const config = loadBenchConfig();
  const historyTrials = Number(process.env.BENCH_HISTORY_DM_TRIALS ?? 0);
  const trials = Number(process.env.BENCH_HISTORY_TRIALS ?? 6);
  const env = { NODE_OPTIONS: `-r ${GC_OBSERVER}` };
  const workers = [new LoadWorker(0, 1024), new LoadWorker(1, 1024)];
  const targets: RunningTarget[] = [];
  try {
    const withHistory = await startProductSingle(config, undefined, "with-history", env);
    targets.push(withHistory);
    const fresh = await startProductSingle(config, undefined, "fresh", env);
    targets.push(fresh);
    const context = (target: RunningTarget): ScenarioContext => ({ config, target, workers, log: () => undefined });

    const history = new DirectBench(context(withHistory), "history");
    await history.prepare();
    for (let i = 0; i < historyTrials; i++) await history.closedLoop(config.dmSaturateMs);
    await history.close();
    log(`bench: ${config.dmPairs * 2} connections opened and closed on one process, ${historyTrials} DM trials`);

    const runs = [withHistory, fresh].map(target => ({ target, bench: new DurableBench(context(target), target.gateways[0].name) }));
    for (const run of runs) await run.bench.prepare();
    const marks = runs.map(run => ({ cpu: threadCpuMs(run.target.pids()[0]), gc: gcTotals(run.target.gateways[0].output()) }));
    for (let trial = 0; trial < trials; trial++) {
      for (const run of trial % 2 === 0 ? runs : [...runs].reverse()) await run.bench.closedLoop(config.durableSaturateMs);
    }
    const rows = runs.map((run, i) => {
      const cpu = threadCpuMs(run.target.pids()[0]);
      const { metrics } = run.bench.result();
      return {
        process: run.target.gateways[0].name,
        publishesPerSec: metrics.durablePublishesPerSec,
        serverCpuUsPerPublish: metrics.durableServerCpuUsPerPublish,
        mainThreadCpuMs: cpu.main - marks[i].cpu.main,
        otherThreadsCpuMs: cpu.others - marks[i].cpu.others,
        gc: gcBetween(marks[i].gc, gcTotals(run.target.gateways[0].output()))
      };
    });
    for (const row of rows) {
      const gc = Object.entries(row.gc)
        .filter(([, s]) => s.count > 0)
        .map(([kind, s]) => `${kind} ${s.count} × ${(s.ms / s.count).toFixed(2)} ms = ${s.ms} ms`)
        .join(", ");
      log(
        `${row.process.padEnd(12)} ${row.publishesPerSec} publishes/s, ${row.serverCpuUsPerPublish} µs/publish; ` +
          `main thread ${row.mainThreadCpuMs} ms, other threads ${row.otherThreadsCpuMs} ms; GC: ${gc}`
      );
    }
    process.stdout.write(`${JSON.stringify({ historyTrials, trials, rows }, null, 2)}\n`);
    for (const run of runs) await run.bench.close();
  } finally {
    await Promise.all(targets.map(t => t.stop()));
    await Promise.all(workers.map(w => w.stop()));
  }
}

main().then(
  () => process.exit(0),
  err => {
    console.error(err);
    process.exit(1);
  }
);
