import { sleep } from "../lib/clock";
import { Histogram } from "../lib/histogram";
import type { CatchupResult, ConnectResult, HttpPublishCommand, HttpPublishResult, StatsResult } from "../lib/protocol";
import { split, type LoadWorker } from "../lib/workers";
import { TENANT, addErrors, round, cpuMark, type ScenarioContext, type ScenarioResult } from "./context";

/**
 * Durable publish and catch-up on one target, through the public API a backend and a client use:
 *  - publish: `POST /api/events/publish` (a `service` token) over keep-alive HTTP. Closed loop with
 *    `durableConcurrency` requests in flight: acknowledged publishes/s and server CPU per publish;
 *    then `durableRate` publishes/s with publish → `event` latency at `durableSubscribers` sockets
 *    of the tenant, and how many acknowledged events some subscriber did not get;
 *  - catch-up: `catchupEvents` events are published after a marker, then a new client connects with
 *    `auth.lastEventId` = the marker's position and is timed until it has all of them, in order.
 */
export class DurableBench {
  private readonly workers: LoadWorker[];
  private readonly subscribers: string;
  private readonly errors: Record<string, number> = {};
  private acks = 0;
  private seconds = 0;
  private serverCpuMs = 0;
  private clientCpuMs = 0;
  private wallMs = 0;
  private readonly rtt = new Histogram();
  private readonly delivery = new Histogram();
  private ackedFixed = 0;
  private marker: string | undefined;
  private catchups: Array<CatchupResult & { serverCpuMs: number }> = [];
  private trial = 0;

  constructor(
    private readonly ctx: ScenarioContext,
    readonly variant: string
  ) {
    this.workers = ctx.workers.slice(0, Math.min(2, ctx.workers.length));
    this.subscribers = `du-sub:${variant}`;
  }

  /** Gateways take HTTP publishers round-robin, like a load balancer in front of them. */
  private url(i: number): string {
    const urls = this.ctx.target.urls;
    return urls[i % urls.length];
  }

  async prepare(): Promise<void> {
    const { config, target } = this.ctx;
    const ranges = split(config.durableSubscribers, this.workers.length);
    const results = await Promise.all(
      this.workers.map((w, i) =>
        w.request<ConnectResult>(
          {
            cmd: "connect",
            group: this.subscribers,
            urls: target.urls,
            secret: config.secret,
            tenantId: TENANT,
            userPrefix: "du-sub-",
            from: ranges[i][0],
            count: ranges[i][1],
            localAddresses: config.sourceAddresses,
            concurrency: 10,
            timeoutMs: 20_000
          },
          60_000
        )
      )
    );
    const ok = results.reduce((a, r) => a + r.connected, 0);
    if (ok !== config.durableSubscribers) throw new Error(`durable: only ${ok}/${config.durableSubscribers} subscribers connected`);
    await Promise.all(this.workers.map(w => w.request({ cmd: "arm", group: this.subscribers, progress: false, eventName: "event" }, 10_000)));
    // A cold publish path runs several times slower until the JIT has compiled it; the product
    // has far more code on it than the baseline, so without this the first trial measures warm-up.
    const warmupMs = config.durableWarmupMs;
    if (warmupMs > 0) {
      const warm = await this.publish(this.workers, { mode: "closed", concurrency: this.perWorker(config.durableConcurrency), rate: 0, durationMs: warmupMs, warmupMs: 0, maxPublishes: 0 }, warmupMs + 30_000);
      const acked = warm.reduce((a, r) => a + r.acked, 0);
      if (acked === 0) throw new Error(`durable: no publish was acknowledged while warming up (${JSON.stringify(warm.map(r => r.errors))})`);
    }
  }

  private publish(workers: LoadWorker[], command: Omit<HttpPublishCommand, "cmd" | "url" | "secret" | "tenantId">, timeoutMs: number): Promise<HttpPublishResult[]> {
    const { config } = this.ctx;
    return Promise.all(
      workers.map((w, i) => w.request<HttpPublishResult>({ cmd: "http-publish", url: this.url(i), secret: config.secret, tenantId: TENANT, ...command }, timeoutMs))
    );
  }

  private perWorker(total: number): number {
    return Math.max(1, Math.round(total / this.workers.length));
  }

  async closedLoop(durationMs: number): Promise<void> {
    const warmupMs = Math.round(durationMs * 0.25);
    const running = this.publish(this.workers, { mode: "closed", concurrency: this.perWorker(this.ctx.config.durableConcurrency), rate: 0, durationMs, warmupMs, maxPublishes: 0 }, durationMs + 30_000);
    await sleep(warmupMs);
    const a = cpuMark(this.ctx, this.workers);
    await sleep(durationMs - warmupMs);
    const b = cpuMark(this.ctx, this.workers);
    for (const r of await running) {
      this.acks += r.acks;
      this.rtt.merge(r.rtt);
      addErrors(this.errors, r.errors);
    }
    this.seconds += (durationMs - warmupMs) / 1000;
    this.serverCpuMs += b.server - a.server;
    this.clientCpuMs += b.clients - a.clients;
    this.wallMs += b.at - a.at;
  }

  async fixedRate(durationMs: number): Promise<void> {
    const { config } = this.ctx;
    // Deliveries of the closed loop still on their way must not count as this trial's.
    await sleep(200);
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.subscribers, on: true }, 10_000)));
    const rate = config.durableRate / this.workers.length;
    const results = await this.publish(this.workers, { mode: "rate", concurrency: 256, rate, durationMs, warmupMs: 0, maxPublishes: 0 }, durationMs + 30_000);
    await sleep(300);
    const stats = await Promise.all(this.workers.map(w => w.request<StatsResult>({ cmd: "stats", group: this.subscribers }, 10_000)));
    await Promise.all(this.workers.map(w => w.request({ cmd: "record", group: this.subscribers, on: false }, 10_000)));
    for (const r of results) {
      this.ackedFixed += r.acked;
      addErrors(this.errors, r.errors);
    }
    for (const s of stats) this.delivery.merge(s.latency);
  }

  /** Publishes the marker and the `catchupEvents` events a resuming client will be behind by. */
  async fill(): Promise<void> {
    const { config } = this.ctx;
    const [marker] = await this.publish(this.workers.slice(0, 1), { mode: "closed", concurrency: 1, rate: 0, durationMs: 10_000, warmupMs: 0, maxPublishes: 1 }, 30_000);
    if (!marker.lastPosition) throw new Error(`durable: the marker publish was not acknowledged (${JSON.stringify(marker.errors)})`);
    this.marker = marker.lastPosition;
    const ranges = split(config.catchupEvents, this.workers.length);
    const filled = await Promise.all(
      this.workers.map((w, i) =>
        w.request<HttpPublishResult>(
          { cmd: "http-publish", url: this.url(i), secret: config.secret, tenantId: TENANT, mode: "closed", concurrency: 16, rate: 0, durationMs: 120_000, warmupMs: 0, maxPublishes: ranges[i][1] },
          150_000
        )
      )
    );
    const acked = filled.reduce((a, r) => a + r.acked, 0);
    if (acked < config.catchupEvents) throw new Error(`durable: only ${acked}/${config.catchupEvents} catch-up events acknowledged (${JSON.stringify(filled.map(r => r.errors))})`);
  }

  async catchup(): Promise<void> {
    const { config } = this.ctx;
    if (!this.marker) throw new Error("durable: fill() first");
    const trial = this.trial++;
    const a = cpuMark(this.ctx, this.workers);
    const result = await this.workers[0].request<CatchupResult>(
      {
        cmd: "catchup",
        url: this.url(trial),
        secret: config.secret,
        tenantId: TENANT,
        userId: `du-catchup-${trial}`,
        lastEventId: this.marker,
        // The fill's lanes may overshoot by a few publishes in flight; the first catchupEvents after the marker are counted.
        expect: config.catchupEvents,
        timeoutMs: 120_000,
        localAddress: config.sourceAddresses[trial % config.sourceAddresses.length]
      },
      150_000
    );
    const b = cpuMark(this.ctx, this.workers);
    this.catchups.push({ ...result, serverCpuMs: b.server - a.server });
  }

  result(): ScenarioResult {
    const { config } = this.ctx;
    const perSecond = this.acks / this.seconds;
    const q = (h: Histogram, p: number) => round(h.quantile(p) / 1000);
    const expected = this.ackedFixed * config.durableSubscribers;
    const replayed = this.catchups.reduce((a, c) => a + c.received, 0);
    const replayMs = this.catchups.reduce((a, c) => a + c.doneMs, 0);
    const replayCpuMs = this.catchups.reduce((a, c) => a + c.serverCpuMs, 0);
    const catchupPerSec = (replayed * 1000) / replayMs;
    this.ctx.log(
      `    ${this.variant} durable: ${Math.round(perSecond)} publishes/s (server ${round(this.serverCpuMs / this.wallMs)} cores, clients ${round(this.clientCpuMs / this.wallMs)}), ack p50 ${q(this.rtt, 0.5)} ms; ` +
        `${config.durableRate}/s → event p50 ${q(this.delivery, 0.5)} p99 ${q(this.delivery, 0.99)} ms; catch-up ${Math.round(catchupPerSec)} events/s`
    );
    return {
      metrics: {
        durablePublishesPerSec: round(perSecond, 0),
        durableServerCpuUsPerPublish: round((this.serverCpuMs * 1000) / this.acks),
        durableAckP50Ms: q(this.rtt, 0.5),
        durableAckP99Ms: q(this.rtt, 0.99),
        durableDeliveryP50Ms: q(this.delivery, 0.5),
        durableDeliveryP99Ms: q(this.delivery, 0.99),
        durableUndelivered: Math.max(0, expected - this.delivery.count),
        catchupEventsPerSec: round(catchupPerSec, 0),
        catchupServerCpuUsPerEvent: round((replayCpuMs * 1000) / replayed),
        catchupOutOfOrder: this.catchups.reduce((a, c) => a + c.outOfOrder, 0)
      },
      details: {
        subscribers: config.durableSubscribers,
        concurrency: config.durableConcurrency,
        closedLoop: { acksMeasured: this.acks, measuredSeconds: round(this.seconds) },
        fixedRate: { publishesPerSec: config.durableRate, acked: this.ackedFixed, deliveriesExpected: expected, deliveriesRecorded: this.delivery.count },
        catchup: { events: config.catchupEvents, marker: this.marker, trials: this.catchups },
        errors: this.errors
      }
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map(w => w.request({ cmd: "close", group: this.subscribers }, 30_000)));
  }
}
