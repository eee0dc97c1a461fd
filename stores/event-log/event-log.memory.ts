import { randomBytes } from "node:crypto";
import { FifoMap } from "../../lib/fifo-map";
import { Deque } from "../../lib/deque";
import { formatPosition, ID_INDEX_FACTOR, parsePosition, type AppendResult, type BusEvent, type EventLog, type EventLogLimits, type StoredEvent, withPosition } from "./event-log";

interface TenantLog {
  /** Retained events, oldest first; `events.at(0)` has offset `firstOffset`. */
  events: Deque<StoredEvent>;
  firstOffset: number;
  nextOffset: number;
  /**
   * eventId → offset, for idempotency: oldest first, one entry per offset from `firstIdOffset` on
   * (every new append adds one), so it covers at least every retained event.
   */
  ids: FifoMap<string, number>;
  firstIdOffset: number;
  /** When each offset from `firstIdOffset` on was appended (ms), for retention; beside `ids`, not in an object per event. */
  times: Deque<number>;
}

/**
 * The embedded default: a bounded log per tenant in this process. Durable for the life of the
 * process only; a restart starts a new epoch, so old cursors are answered "history lost".
 *
 * An append keeps two objects (the stored event and its position) and two numbers per event: every
 * object that survives a minor GC is copied, so the hot path of every class B/C message keeps few.
 */
export class MemoryEventLog implements EventLog {
  /** A fresh epoch per instance: positions of a previous process never match. */
  readonly epoch = `m${randomBytes(6).toString("hex")}`;
  private readonly tenants = new Map<string, TenantLog>();
  private readonly maxIds: number;

  constructor(private readonly limits: EventLogLimits) {
    this.maxIds = limits.maxEventsPerTenant * ID_INDEX_FACTOR;
  }

  async append(tenantId: string, event: BusEvent, now: number): Promise<AppendResult> {
    const log = this.log(tenantId);
    this.trimLog(log, now);
    const known = log.ids.get(event.eventId);
    if (known !== undefined) {
      const existing = log.events.at(known - log.firstOffset);
      return { event: existing ?? withPosition(event, this.positionOf(known)), duplicate: true };
    }
    const offset = log.nextOffset;
    log.nextOffset += 1;
    const stored = withPosition(event, this.positionOf(offset));
    log.events.push(stored);
    log.ids.set(event.eventId, offset);
    log.times.push(now);
    if (log.events.length > this.limits.maxEventsPerTenant) this.dropOldest(log);
    if (log.ids.size > this.maxIds) this.dropOldestId(log);
    return { event: stored, duplicate: false };
  }

  async read(tenantId: string, after: string | undefined, limit: number) {
    const log = this.tenants.get(tenantId);
    const head = log && log.nextOffset > log.firstOffset ? formatPosition(this.epoch, String(log.nextOffset - 1)) : null;
    let start = log ? log.firstOffset : 0;
    if (after !== undefined) {
      const cursor = parsePosition(after);
      const offset = cursor?.offset.length === 1 ? cursor.offset[0] : undefined;
      const nextOffset = log?.nextOffset ?? 0;
      // Served only when nothing between the cursor and the oldest retained event was trimmed.
      if (!cursor || cursor.epoch !== this.epoch || offset === undefined || offset >= nextOffset || offset + 1 < (log?.firstOffset ?? 0)) {
        return { events: [], hasMore: false, next: head, lost: true };
      }
      start = offset + 1;
    }
    if (!log) return { events: [], hasMore: false, next: after ?? null, lost: false };
    const from = start - log.firstOffset;
    const slice = log.events.slice(from, from + limit);
    const hasMore = from + limit < log.events.length;
    const next = slice.length > 0 ? slice[slice.length - 1].position : (after ?? head);
    return { events: slice, hasMore, next, lost: false };
  }

  async tail(tenantId: string, count: number) {
    const log = this.tenants.get(tenantId);
    return log ? log.events.slice(Math.max(0, log.events.length - count)) : [];
  }

  async head(tenantId: string) {
    const log = this.tenants.get(tenantId);
    return log && log.events.length > 0 ? (log.events.at(log.events.length - 1)?.position ?? null) : null;
  }

  async trim(tenantId: string, now: number) {
    const log = this.tenants.get(tenantId);
    return log ? this.trimLog(log, now) : 0;
  }

  async close() {
    this.tenants.clear();
  }

  private trimLog(log: TenantLog, now: number): number {
    const cutoff = now - this.limits.retentionMs;
    // Insertion order is time order: the expired events and ids are the oldest ones.
    const oldest = log.times.at(0);
    if (oldest === undefined || oldest >= cutoff) return 0;
    let dropped = 0;
    while (log.events.length > 0 && (log.times.at(log.firstOffset - log.firstIdOffset) as number) < cutoff) {
      this.dropOldest(log);
      dropped += 1;
    }
    while ((log.times.at(0) ?? cutoff) < cutoff) this.dropOldestId(log);
    return dropped;
  }

  private dropOldest(log: TenantLog) {
    log.events.shift();
    log.firstOffset += 1;
  }

  /** Forgets the oldest eventId; never one of a retained event (the index is at least as long as the log). */
  private dropOldestId(log: TenantLog) {
    log.ids.dropOldest();
    log.times.shift();
    log.firstIdOffset += 1;
  }

  private positionOf(offset: number): string {
    return formatPosition(this.epoch, String(offset));
  }

  private log(tenantId: string): TenantLog {
    let log = this.tenants.get(tenantId);
    if (!log) {
      log = { events: new Deque(), firstOffset: 0, nextOffset: 0, ids: new FifoMap(), firstIdOffset: 0, times: new Deque() };
      this.tenants.set(tenantId, log);
    }
    return log;
  }
}
