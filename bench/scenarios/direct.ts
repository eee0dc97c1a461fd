import { sleep } from "../lib/clock";
import { Histogram } from "../lib/histogram";
import type { ConnectResult, DirectCommand, DirectResult, StatsResult } from "../lib/protocol";
import { split, type LoadWorker } from "../lib/workers";
import { TENANT, addErrors, round, cpuMark, type ScenarioContext, type ScenarioResult } from "./context";

/**
 * Direct messages: `dmPairs` sender/recipient pairs (sender i → user `dm-recipient-i`) on one
 * target. With several gateways, recipient i is on another gateway than sender i. Trials:
 *  - closed: each sender keeps `dmWindow` messages in flight and sends the next on
 *    `message_ack`; round trips/s over the steady part, ack round-trip latency;
 *  - fixed: `dmRate` messages/s spread over the senders; delivery latency (send → the
 *    recipient's `message`).
 */
export class DirectBench {
  private readonly workers: LoadWorker[];
  private readonly ranges: Array<[number, number]>;
  private readonly senders: string;
  private readonly recipients: string;
  private readonly errors: Record<string, number> = {};
  private acks = 0;
  private seconds = 0;
  private serverCpuMs = 0;
  private clientCpuMs = 0;
  private otherCpuMs = 0;
  private wallMs = 0;
  private readonly rtt = new Histogram();
  private readonly delivery = new Histogram();
  private readonly fixedAck = new Histogram();
  private sentFixed = 0;

  constructor(
    private readonly ctx: ScenarioContext,
    readonly variant: string
  ) {
    this.workers = ctx.workers.slice(0, Math.min(2, ctx.workers.length));
    this.ranges = split(ctx.config.dmPairs, this.workers.length);
    this.senders = `dm-s:${variant}`;
    this.recipients = `dm-r:${variant}`;
  }

  async prepare(): Promise<void> {
    const { config, target } = this.ctx;
    const common = { urls: target.urls, secret: config.secret, tenantId: TENANT, localAddresses: config.sourceAddresses, concurrency: 25, timeoutMs: 20_000 };
    const connect = (group: string, userPrefix: string, urlOffset: number) =>
      Promise.all(
        this.workers.map((w, i) => w.request<ConnectResult>({ cmd: "connect", group, userPrefix, from: this.ranges[i][0], count: this.ranges[i][1], urlOffset, ...common }, 120_000))
      );
    const recipients = await connect(this.recipients, "dm-recipient-", 1);
    const senders = await connect(this.senders, "dm-sender-", 0);
    const ok = recipients.reduce((a, r) => a + r.connected, 0) + senders.reduce((a, r) => a + r.connected, 0);
    if (ok !== 2 * config.dmPairs) throw new Error(`direct: only ${ok}/${2 * config.dmPairs} clients connected`);
    await Promise.all(this.workers.map(w => w.request({ cmd: "arm", group: this.recipients, progress: false }, 10_000)));
  }

  private command(mode: "closed" | "rate", durationMs: number, warmupMs: number, rate: number): DirectCommand {
    const { config } = this.ctx;
    return {
      cmd: "direct",
      group: this.senders,
      recipientPrefix: "dm-recipient-",
      mode,
      window: config.dmWindow,
      rate,
      durationMs,
      warmupMs,
      ...(config.messageClass ? { interactionClass: config.messageClass } : {})
    };
  }

  async closedLoop(durationMs: number): Promise<void> {
    const warmup = Math.round(durationMs * 0.25);
    const running = Promise.all(this.workers.map(w => w.request<DirectResult>(this.command("closed", durationMs, warmup, 0), durationMs + 30_000)));
    await sleep(warmup);
    const cpuA = cpuMark(this.ctx, this.workers);
    await sleep(durationMs - warmup);
    const cpuB = cpuMark(this.ctx, this.workers);
    const results = await running;
    for (const r of results) {
      this.acks += r.acks;
      this.rtt.merge(r.rtt);
      addErrors(this.errors, r.errors);
    }
    this.seconds += results[0].windowMs / 1000;
    this.serverCpuMs += cpuB.server - cpuA.server;
    this.clientCpuMs += cpuB.clients - cpuA.clients;
    this.otherCpuMs += cpuB.others - cpuA.others;
    this.wallMs += cpuB.at - cpuA.at;
  }

  async fixedRate(durationMs: number): Promise<void> {
    const { config } = this.ctx;
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.recipients, on: true }, 10_000)));
    const results = await Promise.all(
      this.workers.map((w, i) => w.request<DirectResult>(this.command("rate", durationMs, 0, (config.dmRate * this.ranges[i][1]) / config.dmPairs), durationMs + 30_000))
    );
    await sleep(200);
    const stats = await Promise.all(this.workers.map(w => w.request<StatsResult>({ cmd: "stats", group: this.recipients }, 10_000)));
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.recipients, on: false }, 10_000)));
    for (const r of results) {
      this.sentFixed += r.sent;
      this.fixedAck.merge(r.rtt);
      addErrors(this.errors, r.errors);
    }
    for (const s of stats) this.delivery.merge(s.latency);
  }

  result(): ScenarioResult {
    const { config } = this.ctx;
    const perSecond = this.acks / this.seconds;
    const q = (h: Histogram, p: number) => round(h.quantile(p) / 1000);
    const serverCores = this.serverCpuMs / this.wallMs;
    const clientCores = this.clientCpuMs / this.wallMs;
    const otherCores = this.otherCpuMs / this.wallMs;
    this.ctx.log(
      `    ${this.variant} direct: ${Math.round(perSecond)} round trips/s (server ${round(serverCores)} cores, clients ${round(clientCores)}, others ${round(otherCores)}), rtt p50 ${q(this.rtt, 0.5)} ms; ` +
        `${config.dmRate} msg/s delivery p50 ${q(this.delivery, 0.5)} p99 ${q(this.delivery, 0.99)} ms`
    );
    return {
      metrics: {
        dmRoundTripsPerSec: round(perSecond, 0),
        dmServerCpuUsPerRoundTrip: round((this.serverCpuMs * 1000) / this.acks),
        dmServerCores: round(serverCores),
        dmClientCores: round(clientCores),
        dmOtherCores: round(otherCores),
        dmRttP50Ms: q(this.rtt, 0.5),
        dmRttP99Ms: q(this.rtt, 0.99),
        dmDeliveryP50Ms: q(this.delivery, 0.5),
        dmDeliveryP99Ms: q(this.delivery, 0.99),
        dmAckP99Ms: q(this.fixedAck, 0.99),
        dmLost: this.sentFixed - this.delivery.count
      },
      details: {
        pairs: config.dmPairs,
        window: config.dmWindow,
        closedLoop: { acksMeasured: this.acks, measuredSeconds: round(this.seconds) },
        fixedRate: { messagesPerSec: config.dmRate, sent: this.sentFixed, delivered: this.delivery.count },
        errors: this.errors
      }
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(w => Promise.all([w.request({ cmd: "close", group: this.senders }, 30_000), w.request({ cmd: "close", group: this.recipients }, 30_000)])));
  }
}
