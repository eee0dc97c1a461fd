import { now, sleep } from "../lib/clock";
import { Histogram } from "../lib/histogram";
import type { ConnectResult, ProgressMessage, PublishResult, SnapshotResult, StatsResult } from "../lib/protocol";
import { split, type LoadWorker } from "../lib/workers";
import { TENANT, addErrors, cores, cpuMark, round, type CpuMark, type ScenarioContext, type ScenarioResult } from "./context";

const ROOM = "bench-room";

/**
 * Room fan-out: `fanoutClients` receivers and one publisher in one room of one target.
 * Trials (the orchestrator alternates targets between them):
 *  - saturate: the publisher sends as fast as the slowest receiver allows (closed loop: at most
 *    `fanoutWindow` messages ahead of the slowest receiver's highest sequence number, credit
 *    relayed through the orchestrator, so volatile drops do not stall it); deliveries actually
 *    received are counted by the receivers over the steady middle of the trial.
 *  - fixed: a fixed message rate (× receivers = deliveries/s); every delivery's publish→deliver
 *    latency goes into a histogram.
 */
export class FanoutBench {
  private readonly workers: LoadWorker[];
  private readonly publisher: LoadWorker;
  private readonly group: string;
  private readonly pubGroup: string;
  private readonly mins = new Map<number, number>();
  private onMin: () => void = () => undefined;
  private lastProgress = 0;
  private readonly errors: Record<string, number> = {};
  private deliveries = 0;
  private satSeconds = 0;
  private satCpu = { server: 0, clients: 0, others: 0, wall: 0 };
  private readonly fixed = new Map<number, { latency: Histogram; lost: number; cpu: { server: number; wall: number }; sent: number }>();
  private sentSaturation = 0;
  private drainedAll = true;

  constructor(
    private readonly ctx: ScenarioContext,
    readonly variant: string
  ) {
    this.workers = ctx.workers.slice(0, Math.min(2, ctx.workers.length));
    this.publisher = this.workers[0];
    this.group = `fan:${variant}`;
    this.pubGroup = `pub:${variant}`;
  }

  async prepare(): Promise<void> {
    const { config, target } = this.ctx;
    const n = config.fanoutClients;
    const ranges = split(n, this.workers.length);
    const common = { urls: target.urls, secret: config.secret, tenantId: TENANT, localAddresses: config.sourceAddresses, concurrency: 25, room: ROOM, timeoutMs: 20_000 };
    const joined = await Promise.all(
      this.workers.map((w, i) =>
        w.request<ConnectResult>({ cmd: "connect", group: this.group, userPrefix: "fan-user-", from: ranges[i][0], count: ranges[i][1], ...common }, 120_000)
      )
    );
    // The publisher is in the room too (it receives its own messages; they are not counted).
    const pub = await this.publisher.request<ConnectResult>({ cmd: "connect", group: this.pubGroup, userPrefix: "fan-publisher-", from: 0, count: 1, ...common }, 30_000);
    const ready = joined.reduce((a, r) => a + r.connected, 0);
    if (ready !== n || pub.connected !== 1) {
      throw new Error(`fan-out: only ${ready}/${n} receivers and ${pub.connected} publisher joined: ${JSON.stringify([...joined.map(j => j.errors), pub.errors])}`);
    }
  }

  private overallMin(): number {
    return Math.min(...this.workers.map(w => this.mins.get(w.index) ?? 0));
  }

  /** Resets the receivers' counters and routes their progress to this bench (credit for the publisher). */
  private async arm(): Promise<void> {
    this.mins.clear();
    for (const w of this.workers) {
      w.onProgress = (m: ProgressMessage) => {
        if (m.group !== this.group) return;
        this.mins.set(w.index, m.min);
        this.lastProgress = now();
        this.publisher.credit(this.overallMin() + this.ctx.config.fanoutWindow);
        this.onMin();
      };
    }
    await Promise.all(this.workers.map(w => w.request({ cmd: "arm", group: this.group, progress: true }, 10_000)));
  }

  /** Waits until every receiver saw the last message, or nothing moved for a second (volatile drops), or the timeout. */
  private async drained(sent: number, timeoutMs: number): Promise<boolean> {
    const deadline = now() + timeoutMs;
    while (this.overallMin() < sent && now() < deadline && now() - this.lastProgress < 1000) {
      await new Promise<void>(resolve => {
        this.onMin = resolve;
        setTimeout(resolve, 50);
      });
    }
    this.onMin = () => undefined;
    for (const w of this.workers) w.onProgress = () => undefined;
    const ok = this.overallMin() >= sent;
    if (!ok) this.drainedAll = false;
    return ok;
  }

  private publish(mode: "credit" | "rate", rate: number, durationMs: number): Promise<PublishResult> {
    return this.publisher.request<PublishResult>(
      {
        cmd: "publish",
        group: this.pubGroup,
        roomId: ROOM,
        mode,
        rate,
        durationMs,
        initialCredit: mode === "credit" ? this.ctx.config.fanoutWindow : 0,
        ...(this.ctx.config.messageClass ? { interactionClass: this.ctx.config.messageClass } : {})
      },
      durationMs + 30_000
    );
  }

  async saturate(durationMs: number): Promise<void> {
    await this.arm();
    const publishing = this.publish("credit", 0, durationMs);
    await sleep(durationMs * 0.25);
    const snapA = await Promise.all(this.workers.map(w => w.request<SnapshotResult>({ cmd: "snapshot", group: this.group }, 10_000)));
    const cpuA = cpuMark(this.ctx, this.workers);
    await sleep(durationMs * 0.65);
    const snapB = await Promise.all(this.workers.map(w => w.request<SnapshotResult>({ cmd: "snapshot", group: this.group }, 10_000)));
    const cpuB = cpuMark(this.ctx, this.workers);
    const result = await publishing;
    this.lastProgress = now();
    addErrors(this.errors, result.errors);
    await this.drained(result.sent, 10_000);
    this.sentSaturation += result.sent;
    let deliveries = 0;
    let seconds = 0;
    snapA.forEach((a, i) => {
      deliveries += snapB[i].received - a.received;
      seconds = Math.max(seconds, (snapB[i].at - a.at) / 1000);
    });
    this.deliveries += deliveries;
    this.satSeconds += seconds;
    this.satCpu.server += cpuB.server - cpuA.server;
    this.satCpu.clients += cpuB.clients - cpuA.clients;
    this.satCpu.others += cpuB.others - cpuA.others;
    this.satCpu.wall += cpuB.at - cpuA.at;
  }

  async fixedRate(rate: number, durationMs: number): Promise<void> {
    await this.arm();
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.group, on: true }, 10_000)));
    const cpuC: CpuMark = cpuMark(this.ctx, this.workers);
    const result = await this.publish("rate", rate, durationMs);
    const cpuD = cpuMark(this.ctx, this.workers);
    this.lastProgress = now();
    await this.drained(result.sent, 10_000);
    const stats = await Promise.all(this.workers.map(w => w.request<StatsResult>({ cmd: "stats", group: this.group }, 10_000)));
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.group, on: false }, 10_000)));
    addErrors(this.errors, result.errors);
    for (const s of stats) addErrors(this.errors, s.errors);
    const entry = this.fixed.get(rate) ?? { latency: new Histogram(), lost: 0, cpu: { server: 0, wall: 0 }, sent: 0 };
    for (const s of stats) entry.latency.merge(s.latency);
    entry.lost += result.sent * this.ctx.config.fanoutClients - stats.reduce((a, s) => a + s.received, 0);
    entry.cpu.server += cpuD.server - cpuC.server;
    entry.cpu.wall += cpuD.at - cpuC.at;
    entry.sent += result.sent;
    this.fixed.set(rate, entry);
  }

  result(): ScenarioResult {
    const { config } = this.ctx;
    const high = this.fixed.get(config.fanoutRate);
    const low = this.fixed.get(config.fanoutLowRate);
    const q = (h: Histogram | undefined, p: number) => round((h?.quantile(p) ?? Number.NaN) / 1000);
    const perSecond = this.deliveries / this.satSeconds;
    const satCores = { server: this.satCpu.server / this.satCpu.wall, clients: this.satCpu.clients / this.satCpu.wall, others: this.satCpu.others / this.satCpu.wall };
    this.ctx.log(
      `    ${this.variant} fan-out: ${Math.round(perSecond)} deliveries/s (server ${round(satCores.server)} cores, clients ${round(satCores.clients)}, others ${round(satCores.others)}), ` +
        `${config.fanoutRate} msg/s p50 ${q(high?.latency, 0.5)} p99 ${q(high?.latency, 0.99)} ms, ${config.fanoutLowRate} msg/s p50 ${q(low?.latency, 0.5)} p99 ${q(low?.latency, 0.99)} ms`
    );
    return {
      metrics: {
        fanoutDeliveriesPerSec: round(perSecond, 0),
        fanoutServerCpuUsPerDelivery: round((this.satCpu.server * 1000) / this.deliveries),
        fanoutServerCores: round(satCores.server),
        fanoutClientCores: round(satCores.clients),
        fanoutOtherCores: round(satCores.others),
        fanoutP50Ms: q(high?.latency, 0.5),
        fanoutP99Ms: q(high?.latency, 0.99),
        fanoutMaxMs: round((high?.latency.max ?? Number.NaN) / 1000),
        fanoutRateServerCores: round(high ? high.cpu.server / high.cpu.wall : Number.NaN),
        fanoutLowP50Ms: q(low?.latency, 0.5),
        fanoutLowP99Ms: q(low?.latency, 0.99),
        fanoutLowRateServerCores: round(low ? low.cpu.server / low.cpu.wall : Number.NaN),
        fanoutLost: (high?.lost ?? 0) + (low?.lost ?? 0)
      },
      details: {
        receivers: config.fanoutClients,
        saturation: { messagesSent: this.sentSaturation, deliveriesMeasured: this.deliveries, measuredSeconds: round(this.satSeconds), window: config.fanoutWindow, cores: satCores },
        fixedRate: high ? { messagesPerSec: config.fanoutRate, sent: high.sent, samples: high.latency.count, lost: high.lost } : null,
        lowRate: low ? { messagesPerSec: config.fanoutLowRate, sent: low.sent, samples: low.latency.count, lost: low.lost } : null,
        allDrained: this.drainedAll,
        errors: this.errors
      }
    };
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.onProgress = () => undefined;
    await Promise.all(this.workers.map(w => Promise.all([w.request({ cmd: "close", group: this.group }, 30_000), w.request({ cmd: "close", group: this.pubGroup }, 30_000)])));
  }
}
