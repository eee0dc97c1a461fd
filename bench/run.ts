/**
 * `npm run bench`: room fan-out, direct messages, connections, durable publish and catch-up against
 *   product       the product on one node (SERVICES unset, no transporter)
 *   product-nats  SERVICES=gateway on one node, the other services (presence,rooms[,eventbus]) on another, over NATS
 *   baseline      a minimal plain Socket.IO server (bench/baseline/server.ts)
 * interleaved: every repetition (BENCH_REPS) starts fresh server processes for all targets, runs
 * the connection scenario on each, then the fan-out, direct and durable scenarios in short trials that
 * alternate between the targets (BENCH_TRIALS each), the order rotating from one repetition and
 * trial to the next. Servers and load generators are separate processes.
 * Prints a markdown table (medians, product/baseline ratios) and writes bench/results/bench.json,
 * bench.md, bench.svg (BENCH_RESULTS_NAME renames them; BENCH_DOCS=1 also writes docs/benchmarks.svg).
 * Knobs: bench/lib/config.ts and docs/benchmarks.md.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import os from "node:os";
import path from "node:path";
import { loadBenchConfig, type BenchConfig, type TargetId } from "./lib/config";
import { ALT_DIST, nonGatewayServices, startBaseline, startProductCluster, startProductSingle, type RunningTarget } from "./lib/servers";
import { LoadWorker } from "./lib/workers";
import { clusterRows, rowsFor, svgChart, table, type Samples } from "./lib/report";
import type { ScenarioContext, ScenarioResult } from "./scenarios/context";
import { runConnections } from "./scenarios/connections";
import { FanoutBench } from "./scenarios/fanout";
import { DirectBench } from "./scenarios/direct";
import { DurableBench } from "./scenarios/durable";
import { sleep } from "./lib/clock";

const ROOT = path.resolve(__dirname, "../..");
const RESULTS = path.join(ROOT, "bench/results");
const log = (line: string) => process.stderr.write(`${line}\n`);

const TITLES: Record<string, string> = {
  product: "product, 1 node",
  "product-nats": "product, gateway + NATS",
  baseline: "baseline",
  "product-cluster": "product, gateways + NATS",
  "baseline-cluster": "baseline × N",
  "product-alt": "product-alt, 1 node"
};

const running = new Set<RunningTarget>();
const workers: LoadWorker[] = [];

async function cleanup(): Promise<void> {
  await Promise.all([...running].map(t => t.stop().catch(() => undefined)));
  running.clear();
  await Promise.all(workers.map(w => w.stop().catch(() => undefined)));
}

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise(resolve => {
    const socket = createConnection({ host: hostname, port: Number(port || 4222) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Which product build was measured: the checked-out commit (read from .git, no git command) and a hash of dist/. */
function buildFingerprint(): { commit: string | null; distSha256: string } {
  let commit: string | null = null;
  try {
    const head = readFileSync(path.join(ROOT, ".git/HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) commit = head;
    else {
      const ref = head.slice(5);
      const loose = path.join(ROOT, ".git", ref);
      if (existsSync(loose)) commit = readFileSync(loose, "utf8").trim();
      else commit = readFileSync(path.join(ROOT, ".git/packed-refs"), "utf8").split("\n").find(l => l.endsWith(` ${ref}`))?.split(" ")[0] ?? null;
    }
  } catch {
    commit = null;
  }
  const hash = createHash("sha256");
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith(".js")) hash.update(entry.name).update(readFileSync(file));
    }
  };
  try {
    walk(path.join(ROOT, "dist"));
  } catch {
    // no build
  }
  return { commit, distSha256: hash.digest("hex").slice(0, 16) };
}

/** How the log and failures name a repetition (-1 is the unrecorded warm-up). */
function repLabel(rep: number, of: number): string {
  return rep < 0 ? "warm-up, not recorded" : `rep ${rep + 1}/${of}`;
}

function rotate<T>(xs: T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function record(samples: Samples, variant: string, rep: number, result: ScenarioResult): void {
  const bucket = (samples[variant] ??= {});
  for (const [key, value] of Object.entries(result.metrics)) {
    const xs = (bucket[key] ??= []);
    xs[rep] = value;
  }
}

async function startTarget(config: BenchConfig, id: TargetId): Promise<RunningTarget> {
  switch (id) {
    case "product":
      return startProductSingle(config);
    case "product-nats":
      return startProductCluster(config, config.natsGateways);
    case "baseline":
      return startBaseline(config, 1);
    case "product-alt":
      if (!ALT_DIST && Object.keys(config.altEnv).length === 0) throw new Error("product-alt needs BENCH_ALT_DIST (a build directory inside the repository) or BENCH_ALT_ENV");
      return startProductSingle(config, ALT_DIST, "product-alt", config.altEnv);
  }
}

function machineInfo() {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`
  };
}

/** The markdown (tables, failures) and the SVG chart of one run, from its samples. */
function render(
  config: BenchConfig,
  targets: TargetId[],
  samples: Samples,
  clusterSamples: Samples,
  machine: ReturnType<typeof machineInfo>,
  startedAt: Date,
  failures: string[]
) {
  const titles = { ...TITLES };
  if (config.natsGateways > 1) titles["product-nats"] = `product, ${config.natsGateways} gateways + NATS`;
  const spec = {
    rows: rowsFor(config),
    samples,
    columns: targets.map(t => ({ variant: t, title: titles[t] })),
    baseline: "baseline",
    ratios: [
      ...(targets.includes("product") ? [{ variant: "product", title: "1 node / baseline", target: "single" as const }] : []),
      ...(targets.includes("product-nats") ? [{ variant: "product-nats", title: "NATS / baseline", target: "nats" as const }] : []),
      ...(targets.includes("product-alt") ? [{ variant: "product-alt", title: "alt / baseline", target: "single" as const }] : [])
    ]
  };
  const main = table(spec);
  const heading =
    `Medians of ${config.reps} interleaved repetitions; ratios are product/baseline (range over repetitions). ` +
    `${config.connections} connections, ${config.fanoutClients} fan-out receivers, ${config.dmPairs} DM pairs, ` +
    `${config.durableConcurrency} HTTP publishes in flight to ${config.durableSubscribers} subscribers, catch-up of ${config.catchupEvents} events` +
    `${config.messageClass ? `, messages sent as ${config.messageClass}` : ""}. ${machine.cpus} CPUs, Node ${machine.node}.`;
  let output = config.reps > 0 ? `${heading}\n\n${main.markdown}\n` : "";
  let cluster: ReturnType<typeof table> | undefined;
  if (config.clusterConnections > 0) {
    cluster = table({
      rows: clusterRows(),
      samples: clusterSamples,
      columns: [
        { variant: "product-cluster", title: `product, ${config.clusterGateways} gateways + NATS` },
        { variant: "baseline-cluster", title: `baseline × ${config.clusterGateways}` }
      ],
      baseline: "baseline-cluster",
      ratios: [{ variant: "product-cluster", title: "product / baseline", target: "nats" }]
    });
    output += `\n${config.clusterConnections} connections over ${config.clusterGateways} gateways (medians of ${config.clusterReps}):\n\n${cluster.markdown}\n`;
  }
  if (failures.length > 0) output += `\nFailures:\n${failures.map(f => `- ${f}`).join("\n")}\n`;
  const svg =
    config.reps > 0
      ? svgChart(
          spec,
          "PF-2 product relative to a plain Socket.IO baseline",
          `median of ${config.reps} interleaved repetitions · ${machine.cpus} CPUs · Node ${machine.node} · ${startedAt.toISOString().slice(0, 10)}`
        )
      : undefined;
  return { output, svg, main, cluster };
}

/** `node dist-bench/bench/run.js --report bench/results/<name>.json`: prints a saved run again (and its chart with BENCH_DOCS=1). */
function reportOnly(file: string): void {
  const saved = JSON.parse(readFileSync(path.resolve(file), "utf8")) as {
    startedAt: string;
    machine: ReturnType<typeof machineInfo>;
    config: BenchConfig;
    targets: TargetId[];
    samples: Samples;
    clusterSamples: Samples;
    failures: string[];
  };
  const { output, svg } = render(saved.config, saved.targets, saved.samples, saved.clusterSamples ?? {}, saved.machine, new Date(saved.startedAt), saved.failures ?? []);
  process.stdout.write(`${output}`);
  if (svg && process.env.BENCH_DOCS === "1") {
    writeFileSync(path.join(ROOT, "docs/benchmarks.svg"), svg);
    log("bench: wrote docs/benchmarks.svg");
  }
}

async function main(): Promise<void> {
  const config = loadBenchConfig();
  const startedAt = new Date();
  const deadline = setTimeout(() => {
    log(`bench: exceeded BENCH_MAX_MINUTES=${config.maxMinutes}; stopping`);
    void cleanup().finally(() => process.exit(2));
  }, config.maxMinutes * 60_000);
  deadline.unref();

  let targets = config.targets;
  if ((targets.includes("product-nats") || config.clusterConnections > 0) && !(await reachable(config.natsUrl))) {
    log(`bench: NATS is not reachable at ${config.natsUrl}; skipping the NATS targets`);
    targets = targets.filter(t => t !== "product-nats");
    config.clusterConnections = 0;
  }

  const largest = Math.max(config.connections, config.clusterConnections);
  const poolSize = Math.max(2, Math.ceil(largest / config.socketsPerWorker));
  for (let i = 0; i < poolSize; i++) workers.push(new LoadWorker(i, largest > 10_000 ? 4096 : 1024));
  log(`bench: ${config.reps} repetitions × [${targets.join(", ")}] × [${config.scenarios.join(", ")}], ${poolSize} load-generator processes`);
  if (targets.includes("product-nats")) log(`bench: product-nats = ${config.natsGateways} × SERVICES=gateway + SERVICES=${nonGatewayServices(config)} over ${config.natsUrl}`);

  const samples: Samples = {};
  const details: Array<Record<string, unknown>> = [];
  const failures: string[] = [];
  const fail = (what: string, err: unknown) => {
    const message = `${what}: ${(err as Error).message}`;
    failures.push(message);
    log(`    FAILED ${message}`);
  };
  const keep = (variant: string, rep: number, scenario: string, result: ScenarioResult, into: Samples = samples) => {
    if (rep < 0) return; // the warm-up repetition
    record(into, variant, rep, result);
    details.push({ variant, rep: rep + 1, scenario, ...result });
  };

  // Rep -1 warms the load generators up on the baseline (or the first target) and is not recorded.
  const warmupTarget: TargetId = targets.includes("baseline") ? "baseline" : targets[0];
  for (let rep = config.warmup && config.reps > 0 ? -1 : 0; rep < config.reps; rep++) {
    const order = rep < 0 ? [warmupTarget] : rotate(targets, rep);
    log(`  [${repLabel(rep, config.reps)}] order: ${order.join(", ")}`);
    // Fresh processes for every target; they all run during the repetition (idle when not measured),
    // so the scenarios can alternate between targets in short trials.
    const up = new Map<TargetId, ScenarioContext>();
    for (const id of order) {
      try {
        const t0 = Date.now();
        const target = await startTarget(config, id);
        running.add(target);
        up.set(id, { config, target, workers, log });
        log(`    ${id}: up in ${Date.now() - t0} ms (pids ${target.pids().join(", ")})`);
      } catch (err) {
        fail(`${id} ${repLabel(rep, config.reps)} start`, err);
      }
    }
    const live = order.filter(id => up.has(id));

    if (config.scenarios.includes("connections")) {
      // First, on the fresh processes: memory per connection is measured from their idle state.
      for (const id of live) {
        try {
          keep(id, rep, "connections", await runConnections(up.get(id) as ScenarioContext, config.connections, id !== "baseline"));
        } catch (err) {
          fail(`${id} ${repLabel(rep, config.reps)} connections`, err);
        }
      }
    }

    /** Prepares one bench per live target; a target whose set-up fails is left out of the scenario. */
    const prepared = async <B extends { variant: string; prepare(): Promise<void>; close(): Promise<void> }>(what: string, make: (ctx: ScenarioContext, id: TargetId) => B): Promise<B[]> => {
      const benches: B[] = [];
      for (const id of live) {
        const bench = make(up.get(id) as ScenarioContext, id);
        try {
          await bench.prepare();
          benches.push(bench);
        } catch (err) {
          fail(`${id} ${repLabel(rep, config.reps)} ${what} set-up`, err);
          await bench.close().catch(() => undefined);
        }
      }
      return benches;
    };
    /** `config.trials` trials of each bench, alternating between the targets, the order rotating per trial. */
    const alternate = async <B extends { variant: string }>(benches: B[], what: string, run: (b: B) => Promise<void>, trials = config.trials) => {
      for (let trial = 0; trial < trials; trial++) {
        for (const bench of rotate(benches, trial)) {
          try {
            await run(bench);
          } catch (err) {
            fail(`${bench.variant} ${repLabel(rep, config.reps)} ${what}`, err);
          }
        }
      }
    };
    const finish = async <B extends { variant: string; result(): ScenarioResult; close(): Promise<void> }>(benches: B[], scenario: string) => {
      for (const bench of benches) {
        keep(bench.variant, rep, scenario, bench.result());
        await bench.close().catch(err => fail(`${bench.variant} ${scenario} close`, err));
      }
    };

    if (config.scenarios.includes("fanout")) {
      const benches = await prepared("fan-out", (ctx, id) => new FanoutBench(ctx, id));
      await alternate(benches, "fan-out saturation", b => b.saturate(config.fanoutSaturateMs));
      await alternate(benches, `fan-out ${config.fanoutRate} msg/s`, b => b.fixedRate(config.fanoutRate, config.fanoutRateMs));
      await alternate(benches, `fan-out ${config.fanoutLowRate} msg/s`, b => b.fixedRate(config.fanoutLowRate, config.fanoutLowRateMs));
      await finish(benches, "fanout");
      await sleep(500);
    }

    if (config.scenarios.includes("direct")) {
      const benches = await prepared("direct", (ctx, id) => new DirectBench(ctx, id));
      await alternate(benches, "direct closed loop", b => b.closedLoop(config.dmSaturateMs));
      await alternate(benches, `direct ${config.dmRate} msg/s`, b => b.fixedRate(config.dmRateMs));
      await finish(benches, "direct");
    }

    if (config.scenarios.includes("durable")) {
      const benches = await prepared("durable", (ctx, id) => new DurableBench(ctx, id));
      await alternate(benches, "durable publish closed loop", b => b.closedLoop(config.durableSaturateMs));
      await alternate(benches, `durable publish ${config.durableRate}/s`, b => b.fixedRate(config.durableRateMs));
      await alternate(benches, "catch-up fill", b => b.fill(), 1);
      await alternate(benches, "catch-up", b => b.catchup());
      await finish(benches, "durable");
    }

    for (const id of live) {
      const target = (up.get(id) as ScenarioContext).target;
      await target.stop();
      running.delete(target);
    }
  }

  const clusterSamples: Samples = {};
  if (config.clusterConnections > 0) {
    const n = config.clusterGateways;
    log(`bench: cluster connections: ${config.clusterConnections} over ${n} product gateways + NATS vs ${n} baseline processes`);
    const variants: Array<[string, () => Promise<RunningTarget>]> = [
      ["product-cluster", () => startProductCluster(config, n)],
      ["baseline-cluster", () => startBaseline(config, n)]
    ];
    for (let rep = config.warmup ? -1 : 0; rep < config.clusterReps; rep++) {
      // Rep -1: the generators' first batch of this size, on the baseline, not recorded.
      for (const [variant, start] of rep < 0 ? variants.filter(([v]) => v === "baseline-cluster") : rotate(variants, rep)) {
        let target: RunningTarget | undefined;
        try {
          target = await start();
          running.add(target);
          log(`  [cluster ${repLabel(rep, config.clusterReps)}] ${variant}: up (pids ${target.pids().join(", ")})`);
          keep(variant, rep, "cluster-connections", await runConnections({ config, target, workers, log }, config.clusterConnections, variant === "product-cluster"), clusterSamples);
        } catch (err) {
          fail(`${variant} cluster ${repLabel(rep, config.clusterReps)}`, err);
        } finally {
          if (target) {
            await target.stop();
            running.delete(target);
          }
        }
      }
    }
  }

  await cleanup();

  const machine = machineInfo();
  const { output, svg, main, cluster } = render(config, targets, samples, clusterSamples, machine, startedAt, failures);
  process.stdout.write(`\n${output}`);

  mkdirSync(RESULTS, { recursive: true });
  const name = process.env.BENCH_RESULTS_NAME?.replace(/[^A-Za-z0-9_.-]/g, "") || "bench";
  const written: string[] = [];
  const write = (file: string, content: string) => {
    writeFileSync(path.join(ROOT, file), content);
    written.push(file);
  };
  if (svg) {
    write(`bench/results/${name}.svg`, svg);
    if (config.writeDocs) {
      mkdirSync(path.join(ROOT, "docs"), { recursive: true });
      write("docs/benchmarks.svg", svg);
    }
  }
  write(`bench/results/${name}.md`, output);
  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    build: buildFingerprint(),
    machine,
    config: { ...config, secret: undefined },
    targets,
    table: main.data,
    clusterTable: cluster?.data ?? null,
    samples,
    clusterSamples,
    runs: details,
    failures
  };
  write(`bench/results/${name}.json`, JSON.stringify(json, null, 2));
  log(`bench: wrote ${written.join(", ")} in ${Math.round((Date.now() - startedAt.getTime()) / 1000)} s`);
  if (failures.length > 0) process.exitCode = 1;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`bench: ${signal}, stopping servers and load generators`);
    void cleanup().finally(() => process.exit(130));
  });
}

const reportAt = process.argv.indexOf("--report");
if (reportAt >= 0) reportOnly(process.argv[reportAt + 1]);
else main().catch(async err => {
  console.error(err);
  await cleanup();
  process.exit(1);
});
