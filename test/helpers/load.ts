import { randomUUID } from "node:crypto";
import type { ProcessNode } from "./process-node";
import { dropPrefix, uniquePrefix } from "./redis";
import { io, type Socket } from "socket.io-client";
import { comparePositions } from "../../stores/event-log";
import { tokenFor } from "./tokens";

/**
 * Clients that behave as the README asks a resilient PF-2 client to behave, for the failover,
 * outage and shutdown tests: they reconnect to another gateway whenever their connection drops or
 * the server tells them to (`error` with `details.reason` shutting_down / slow_consumer / resync),
 * resume with `auth.lastEventId` and `auth.rooms`, and drop duplicates by messageId / eventId.
 * Publishers send sequentially with a client-chosen messageId and resend the same message until it
 * is acknowledged. Everything is counted for the published / acknowledged / delivered / lost /
 * duplicated report.
 */

/**
 * Which position a client resumes from after losing its connection:
 * - `newest`: the position of the last event it received;
 * - `settled`: the highest position it received at least {@link SETTLE_MS} before the
 *   connection dropped (README "Guarantees": live traffic relayed by different gateways may arrive
 *   in another order than the log's by up to the cross-node latency; resuming from a settled
 *   position replays that window and the client drops what it already has).
 */
export type CursorMode = "newest" | "settled";
export const SETTLE_MS = 2000;

/** Server notices after which a client reconnects (elsewhere) and resumes. */
const RECONNECT_REASONS = new Set(["shutting_down", "slow_consumer", "resync"]);

const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

export interface LoadClientOptions {
  name: string;
  tenantId: string;
  userId: string;
  rooms: string[];
  /** The gateways to (re)connect to; read at every attempt, so it may change. */
  urls: () => string[];
  cursorMode?: CursorMode;
  /** Index in `urls()` of the gateway of the first connection (default 0). */
  first?: number;
}

interface Receipt {
  position: string;
  at: number;
}

export class LoadClient {
  readonly name: string;
  socket?: Socket;
  connectedTo?: string;
  stopped = false;
  /** Connections made after the first. */
  reconnects = 0;
  /** `connected` said `recovered: false` on a resume. */
  historyLost = 0;
  /** Reasons of the server notices received. */
  notices: string[] = [];
  /** Every message/event received, duplicates included. */
  raw = 0;
  /** First receipt of each id, in arrival order. */
  readonly order: string[] = [];
  readonly seen = new Set<string>();
  private receipts: Receipt[] = [];
  private settled?: string;
  private newest?: string;
  private rr = 0;
  private waiters: Array<() => void> = [];
  private loop?: Promise<void>;

  constructor(readonly options: LoadClientOptions) {
    this.name = options.name;
    this.rr = options.first ?? 0;
  }

  /** Connects (retrying over the gateways) and resolves once `connected` arrived. */
  async start(): Promise<void> {
    this.loop = this.connectLoop();
    await this.loop;
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close();
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** The position to resume from, per the cursor mode. */
  cursor(): string | undefined {
    if (this.options.cursorMode !== "settled") return this.newest;
    this.settle(Date.now() - SETTLE_MS);
    if (this.settled !== undefined) return this.settled;
    // Nothing settled yet (connected less than SETTLE_MS ago): the lowest position received.
    let lowest: string | undefined;
    for (const { position } of this.receipts) if (lowest === undefined || (comparePositions(position, lowest) ?? 0) < 0) lowest = position;
    return lowest;
  }

  /** A connected socket; waits for the reconnection when there is none. */
  async connectedSocket(): Promise<Socket | undefined> {
    while (!this.stopped && !this.socket?.connected) await new Promise<void>(resolve => this.waiters.push(resolve));
    return this.stopped ? undefined : this.socket;
  }

  private record(id: unknown, position: unknown) {
    this.raw += 1;
    if (typeof id === "string" && !this.seen.has(id)) {
      this.seen.add(id);
      this.order.push(id);
    }
    if (typeof position === "string") {
      this.newest = position;
      this.receipts.push({ position, at: Date.now() });
      if (this.receipts.length > 5000) this.settle(Date.now() - SETTLE_MS);
    }
  }

  /** Folds receipts older than `cutoff` into the settled position (the highest of them). */
  private settle(cutoff: number) {
    let i = 0;
    for (; i < this.receipts.length && this.receipts[i].at <= cutoff; i++) {
      const { position } = this.receipts[i];
      const order = this.settled === undefined ? 1 : comparePositions(position, this.settled);
      // Another epoch (history lost and restarted) is newer by definition.
      if (order === undefined || order > 0) this.settled = position;
    }
    this.receipts.splice(0, i);
  }

  private pickUrl(avoid?: string): string {
    const urls = this.options.urls();
    const candidates = urls.length > 1 && avoid ? urls.filter(u => u !== avoid) : urls;
    return candidates[this.rr++ % candidates.length];
  }

  private async connectLoop(): Promise<void> {
    let attempt = 0;
    const avoid = this.connectedTo;
    while (!this.stopped) {
      const url = this.pickUrl(attempt === 0 ? avoid : undefined);
      const cursor = this.cursor();
      const socket = io(url, {
        auth: { token: tokenFor(this.options.tenantId, this.options.userId), rooms: this.options.rooms, ...(cursor ? { lastEventId: cursor } : {}) },
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
        timeout: 5000
      });
      // Before `connected`: the replay follows it immediately.
      socket.on("message", (m: { messageId?: string; position?: string }) => this.record(m?.messageId, m?.position));
      socket.on("event", (e: { eventId?: string; position?: string }) => this.record(e?.eventId, e?.position));
      const outcome = await new Promise<{ ok: boolean; connected?: { recovered?: boolean } }>(resolve => {
        const timer = setTimeout(() => resolve({ ok: false }), 6000);
        socket.once("connected", (payload: { recovered?: boolean }) => {
          clearTimeout(timer);
          resolve({ ok: true, connected: payload });
        });
        socket.once("connect_error", () => {
          clearTimeout(timer);
          resolve({ ok: false });
        });
        socket.once("disconnect", () => {
          clearTimeout(timer);
          resolve({ ok: false });
        });
      });
      if (outcome.ok && socket.connected && !this.stopped) {
        if (cursor !== undefined && outcome.connected?.recovered === false) this.historyLost += 1;
        if (this.connectedTo !== undefined || attempt > 0) this.reconnects += 1;
        this.socket = socket;
        this.connectedTo = url;
        socket.on("error", (body: { details?: { reason?: string } }) => {
          const reason = body?.details?.reason;
          if (typeof reason === "string") this.notices.push(reason);
          if (reason && RECONNECT_REASONS.has(reason)) socket.close();
        });
        socket.on("disconnect", () => this.dropped(socket));
        for (const wake of this.waiters.splice(0)) wake();
        return;
      }
      socket.close();
      attempt += 1;
      await delay(Math.min(100 * attempt, 1000));
    }
  }

  private dropped(socket: Socket) {
    if (this.socket !== socket) return;
    this.socket = undefined;
    if (this.stopped) return;
    this.loop = this.connectLoop();
  }
}

export interface PublishTarget {
  roomId?: string;
  recipientId?: string;
}

/** A client that also publishes, one message at a time, each resent until acknowledged. */
export class Publisher extends LoadClient {
  /** Distinct messages attempted. */
  published = 0;
  readonly acked: string[] = [];
  /** Attempts answered with an error, by reason/code. */
  readonly refusals: Record<string, number> = {};
  timeouts = 0;
  private running = false;
  private done?: Promise<void>;

  /** Starts publishing to `target` with `interactionClass` until {@link halt}. */
  run(target: PublishTarget, interactionClass: "CLASS_B" | "CLASS_C", pauseMs = 5): void {
    this.running = true;
    this.done = (async () => {
      for (let seq = 0; this.running && !this.stopped; seq++) {
        this.published += 1;
        await this.sendUntilAcked(`${this.name}-${seq}`, { type: "load", interactionClass, ...target, payload: { publisher: this.name, seq } });
        if (pauseMs > 0) await delay(pauseMs);
      }
    })();
  }

  /** Stops after the message in progress is acknowledged (or the client is stopped). */
  async halt(): Promise<void> {
    this.running = false;
    await this.done;
  }

  private async sendUntilAcked(messageId: string, message: Record<string, unknown>): Promise<void> {
    for (;;) {
      const socket = await this.connectedSocket();
      if (!socket) return;
      try {
        const answer = (await socket.timeout(5000).emitWithAck("message", { messageId, ...message })) as {
          position?: string;
          code?: string;
          details?: { reason?: string };
        };
        if (answer && typeof answer.position === "string") {
          this.acked.push(messageId);
          return;
        }
        const key = answer?.details?.reason ?? answer?.code ?? "unknown";
        this.refusals[key] = (this.refusals[key] ?? 0) + 1;
      } catch {
        this.timeouts += 1;
      }
      await delay(100);
    }
  }
}

/** A service publishing bus events over REST (`POST /api/events/publish`), each retried with its eventId. */
export class RestPublisher {
  published = 0;
  readonly acked: string[] = [];
  readonly refusals: Record<string, number> = {};
  /** How long refused attempts took to be answered (ms): callers must fail fast, not hang. */
  readonly refusalLatencies: number[] = [];
  private running = false;
  private done?: Promise<void>;
  private rr = 0;

  constructor(
    readonly name: string,
    readonly tenantId: string,
    readonly urls: () => string[]
  ) {}

  run(audience: { roomId: string } | { userId: string }, pauseMs = 20): void {
    this.running = true;
    const token = tokenFor(this.tenantId, this.name, { role: "service" });
    this.done = (async () => {
      for (let seq = 0; this.running; seq++) {
        this.published += 1;
        const eventId = `${this.name}-${seq}`;
        for (;;) {
          const urls = this.urls();
          const url = urls[this.rr++ % urls.length];
          const started = Date.now();
          try {
            const res = await fetch(`${url}/api/events/publish`, {
              method: "POST",
              headers: { Authorization: `Bearer ${token}`, "X-Tenant-ID": this.tenantId, "Content-Type": "application/json" },
              body: JSON.stringify({ eventId, eventType: "load.event", payload: { publisher: this.name, seq }, audience }),
              signal: AbortSignal.timeout(15_000)
            });
            if (res.ok) {
              this.acked.push(eventId);
              break;
            }
            const body = (await res.json().catch(() => ({}))) as { code?: string };
            const key = `${res.status} ${body.code ?? ""}`.trim();
            this.refusals[key] = (this.refusals[key] ?? 0) + 1;
          } catch (err) {
            const key = (err as Error).name === "TimeoutError" ? "timeout" : "connection";
            this.refusals[key] = (this.refusals[key] ?? 0) + 1;
          }
          this.refusalLatencies.push(Date.now() - started);
          await delay(100);
        }
        if (pauseMs > 0) await delay(pauseMs);
      }
    })();
  }

  async halt(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

export interface ReceiverReport {
  name: string;
  mode: CursorMode;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Received but never acknowledged to its publisher (refused or ambiguous attempts that were stored). */
  unacknowledged: number;
  orderViolations: number;
  reconnects: number;
  historyLost: number;
}

export interface LoadReport {
  published: number;
  acknowledged: number;
  receivers: ReceiverReport[];
  publishers: Array<{ name: string; published: number; acknowledged: number; refusals: Record<string, number>; timeouts?: number }>;
}

/** The sequence number in an id `<publisher>-<seq>`. */
function parseId(id: string): { publisher: string; seq: number } {
  const dash = id.lastIndexOf("-");
  return { publisher: id.slice(0, dash), seq: Number(id.slice(dash + 1)) };
}

/**
 * Counts, per receiver, what every publisher had acknowledged against what the receiver got:
 * lost = acknowledged and never delivered; duplicated = deliveries beyond the first per id;
 * order violations = an id of a publisher first seen after a later one of the same publisher.
 */
export function account(publishers: Array<Publisher | RestPublisher>, receivers: LoadClient[]): LoadReport {
  const acked = new Set<string>();
  for (const p of publishers) for (const id of p.acked) acked.add(id);
  const reports = receivers.map(r => {
    let delivered = 0;
    for (const id of acked) if (r.seen.has(id)) delivered += 1;
    let unacknowledged = 0;
    for (const id of r.seen) if (!acked.has(id)) unacknowledged += 1;
    const lastSeq = new Map<string, number>();
    let orderViolations = 0;
    for (const id of r.order) {
      const { publisher, seq } = parseId(id);
      const previous = lastSeq.get(publisher);
      if (previous !== undefined && seq < previous) orderViolations += 1;
      lastSeq.set(publisher, Math.max(seq, previous ?? -1));
    }
    return {
      name: r.name,
      mode: r.options.cursorMode ?? "newest",
      expected: acked.size,
      delivered,
      lost: acked.size - delivered,
      duplicated: r.raw - r.seen.size,
      unacknowledged,
      orderViolations,
      reconnects: r.reconnects,
      historyLost: r.historyLost
    };
  });
  return {
    published: publishers.reduce((n, p) => n + p.published, 0),
    acknowledged: acked.size,
    receivers: reports,
    publishers: publishers.map(p => ({
      name: p.name,
      published: p.published,
      acknowledged: p.acked.length,
      refusals: p.refusals,
      ...(p instanceof Publisher ? { timeouts: p.timeouts } : {})
    }))
  };
}

/** Waits until every receiver has every acknowledged id, up to `timeoutMs`; true when they all do. */
export async function allDelivered(publishers: Array<Publisher | RestPublisher>, receivers: LoadClient[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const ids = publishers.flatMap(p => p.acked);
  for (;;) {
    if (receivers.every(r => ids.every(id => r.seen.has(id)))) return true;
    if (Date.now() > deadline) return false;
    await delay(100);
  }
}

/** One line per test run, so the suite's output carries the measured numbers (README "Guarantees"). */
export function logReport(label: string, report: LoadReport, extra: Record<string, unknown> = {}): void {
  const totals = report.receivers.reduce(
    (t, r) => ({ delivered: t.delivered + r.delivered, lost: t.lost + r.lost, duplicated: t.duplicated + r.duplicated }),
    { delivered: 0, lost: 0, duplicated: 0 }
  );
  // eslint-disable-next-line no-console
  console.log(`[resilience] ${label}: ${JSON.stringify({ published: report.published, acknowledged: report.acknowledged, ...totals, ...extra, receivers: report.receivers, publishers: report.publishers })}`);
}

/**
 * What a resilience suite under load owns: a fresh Moleculer namespace and Redis key prefix, the
 * node processes it spawns and the load clients it runs. All of it is stopped, killed and dropped
 * after the suite (`also` adds the suite's own clean-up, run before the prefix is dropped).
 */
export function loadRun(name: string) {
  const run = {
    namespace: `test-${randomUUID().slice(0, 8)}`,
    prefix: uniquePrefix(name),
    processes: [] as ProcessNode[],
    clients: [] as LoadClient[],
    cleanups: [] as Array<() => Promise<unknown> | undefined>,
    also(cleanup: () => Promise<unknown> | undefined) {
      run.cleanups.push(cleanup);
    }
  };
  afterAll(async () => {
    for (const c of run.clients) c.stop();
    for (const p of run.processes) await p.kill("SIGKILL");
    for (const cleanup of run.cleanups) await cleanup();
    await dropPrefix(run.prefix);
  });
  return run;
}

