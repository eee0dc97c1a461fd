import { now, sleep } from "../lib/clock";
import { Histogram } from "../lib/histogram";
import type { ConnectResult, ReachResult } from "../lib/protocol";
import { cpuOf } from "../lib/proc";
import type { MemoryUsage, ServerProcess } from "../lib/servers";
import { split } from "../lib/workers";
import { TENANT, cores, cpuMark, round, type ScenarioContext, type ScenarioResult } from "./context";

/**
 * Connections: `count` authenticated connections opened with a bounded number of handshakes in
 * flight, spread over the load generators, the source addresses and the target's gateways.
 * Measures set-up rate, handshake latency, server CPU per set-up, and memory growth per
 * connection held: RSS and JS heap of the gateway processes, each after a full GC (memprobe.ts),
 * before and after. A warm-up batch is connected and closed first, so JIT and pools are warm.
 */
const WARMUP = 200;

async function memoryOf(procs: ServerProcess[]): Promise<MemoryUsage> {
  const all = await Promise.all(procs.map(p => p.memory()));
  const total: MemoryUsage = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  for (const m of all) for (const k of Object.keys(total) as Array<keyof MemoryUsage>) total[k] += m[k];
  return total;
}

async function drain(ctx: ScenarioContext, timeoutMs: number): Promise<number> {
  const started = now();
  for (;;) {
    const active = await ctx.target.activeConnections();
    if (!(active > 0) || now() - started > timeoutMs) return active;
    await sleep(200);
  }
}

export async function runConnections(ctx: ScenarioContext, count: number, checkReach = false): Promise<ScenarioResult> {
  const { config, target } = ctx;
  const nWorkers = Math.min(ctx.workers.length, Math.max(2, Math.ceil(count / config.socketsPerWorker)));
  const workers = ctx.workers.slice(0, nWorkers);
  const perWorkerConcurrency = Math.max(1, Math.ceil(config.connectConcurrency / nWorkers));

  const connect = (group: string, total: number, userPrefix: string) => {
    const ranges = split(total, nWorkers);
    const command = { cmd: "connect" as const, group, urls: target.urls, secret: config.secret, tenantId: TENANT, userPrefix, localAddresses: config.sourceAddresses };
    return Promise.all(
      workers.map((w, i) =>
        w.request<ConnectResult>(
          { ...command, from: ranges[i][0], count: ranges[i][1], concurrency: perWorkerConcurrency, timeoutMs: 20_000 },
          60_000 + total * 20
        )
      )
    );
  };

  // Warm-up: the same path, on a smaller batch, closed before measuring.
  await connect("warm", Math.min(WARMUP, count), "warm-user-");
  await Promise.all(workers.map(w => w.request({ cmd: "close", group: "warm" }, 60_000)));
  await drain(ctx, 30_000);
  await sleep(500);

  const memBefore = await memoryOf(target.gateways);
  const othersBefore = await memoryOf(target.others);
  const servicePids = target.others.map(o => o.pid);
  const before = cpuMark(ctx, workers);
  const servicesBefore = cpuOf(servicePids);
  const results = await connect("conn", count, "conn-user-");
  const after = cpuMark(ctx, workers);
  const servicesCpuMs = cpuOf(servicePids) - servicesBefore;
  const connected = results.reduce((a, r) => a + r.connected, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const elapsedMs = Math.max(...results.map(r => r.lastDone)) - Math.min(...results.map(r => r.firstStart));
  const latency = Histogram.from(results.map(r => r.latency));
  const used = cores(before, after);

  await sleep(config.settleMs);
  const held = await target.activeConnections();
  const memAfter = await memoryOf(target.gateways);
  const othersAfter = await memoryOf(target.others);
  const mib = (b: number) => Math.round(b / 2 ** 20);
  ctx.log(
    `    connections: ${connected}/${count} in ${Math.round(elapsedMs)} ms, server holds ${held}, gateway RSS ${mib(memBefore.rss)} → ${mib(memAfter.rss)} MiB, heap ${mib(memBefore.heapUsed)} → ${mib(memAfter.heapUsed)} MiB` +
      (servicePids.length > 0 ? `, server CPU per set-up: gateways ${Math.round(((after.server - before.server - servicesCpuMs) * 1000) / connected)} µs, services ${Math.round((servicesCpuMs * 1000) / connected)} µs` : "")
  );

  // Every held connection receives a direct message, sent by its neighbour (index + 1): with
  // clients spread round-robin over the gateways, each one crosses to another gateway. Only for the
  // product: separate baseline processes share no users.
  let reach: ReachResult | undefined;
  if (checkReach) {
    const command = { cmd: "reach" as const, group: "conn", recipientPrefix: "conn-user-", offset: 1, total: count, timeoutMs: 20_000, concurrency: 20 };
    await Promise.all(workers.map(w => w.request<ReachResult>({ ...command, phase: "arm" }, 60_000)));
    const started = Date.now();
    const sent = await Promise.all(workers.map(w => w.request<ReachResult>({ ...command, phase: "send" }, 600_000)));
    let counted: ReachResult[] = [];
    const deadline = Date.now() + 30_000;
    do {
      counted = await Promise.all(workers.map(w => w.request<ReachResult>({ ...command, phase: "count" }, 60_000)));
      if (counted.reduce((a, r) => a + r.reached, 0) >= connected) break;
      await sleep(200);
    } while (Date.now() < deadline);
    reach = {
      clients: counted.reduce((a, r) => a + r.clients, 0),
      sent: sent.reduce((a, r) => a + r.sent, 0),
      acked: sent.reduce((a, r) => a + r.acked, 0),
      reached: counted.reduce((a, r) => a + r.reached, 0),
      errors: sent.reduce<Record<string, number>>((all, r) => {
        for (const [k, v] of Object.entries(r.errors)) all[k] = (all[k] ?? 0) + v;
        return all;
      }, {})
    };
    ctx.log(`    reachability: ${reach.reached}/${reach.clients} connections received a direct message (${reach.acked}/${reach.sent} acknowledged) in ${Date.now() - started} ms${Object.keys(reach.errors).length ? `, errors ${JSON.stringify(reach.errors)}` : ""}`);
  }

  await Promise.all(workers.map(w => w.request({ cmd: "close", group: "conn" }, 60_000)));
  await drain(ctx, 30_000);

  const metrics: Record<string, number> = {
    connectionsPerSec: round((connected / elapsedMs) * 1000, 0),
    connectP50Ms: round(latency.quantile(0.5) / 1000),
    connectP99Ms: round(latency.quantile(0.99) / 1000),
    serverCpuUsPerConnection: round(((after.server - before.server) * 1000) / connected, 0),
    rssKiBPerConnection: round((memAfter.rss - memBefore.rss) / 1024 / connected, 1),
    heapKiBPerConnection: round((memAfter.heapUsed - memBefore.heapUsed) / 1024 / connected, 1),
    failedConnections: failed,
    ...(reach ? { unreachedConnections: connected - reach.reached } : {})
  };
  if (target.others.length > 0) {
    metrics.servicesRssKiBPerConnection = round((othersAfter.rss - othersBefore.rss) / 1024 / connected, 1);
    metrics.servicesHeapKiBPerConnection = round((othersAfter.heapUsed - othersBefore.heapUsed) / 1024 / connected, 1);
    metrics.servicesCpuUsPerConnection = round((servicesCpuMs * 1000) / connected, 0);
  }
  return {
    metrics,
    details: {
      requested: count,
      connected,
      heldByServer: held,
      elapsedMs: round(elapsedMs, 0),
      gatewayMemory: { before: memBefore, after: memAfter },
      otherMemory: { before: othersBefore, after: othersAfter },
      cores: { server: round(used.server), clients: round(used.clients), others: round(used.others) },
      loadWorkers: nWorkers,
      inFlightHandshakes: perWorkerConcurrency * nWorkers,
      ...(reach ? { reach } : {}),
      errors
    }
  };
}
