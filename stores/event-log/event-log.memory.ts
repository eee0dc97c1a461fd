import { randomBytes } from "node:crypto";
import { FifoMap } from "../../lib/fifo-map";
import { Deque } from "../../lib/deque";
import { formatPosition, ID_INDEX_FACTOR, parsePosition, type AppendResult, type BusEvent, type EventLog, type EventLogLimits, type StoredEvent } from "./event-log";

interface TenantLog {
  /** Retained events, oldest first; `events.at(0)` has offset `firstOffset`. */
  events: Deque<{ event: StoredEvent; at: number }>;
  firstOffset: number;
  nextOffset: number;
  /** eventId → position and when it was appended, for idempotency within retention; oldest first. */
  ids: FifoMap<string, { position: string; at: number }>;
}

/**
 * The embedded default: a bounded log per tenant in this process. Durable for the life of the
 * process only; a restart starts a new epoch, so old cursors are answered "history lost".
 */
export class MemoryEventLog implements EventLog {
  /** A fresh epoch per instance: positions of a previous process never match. */
  readonly epoch = `m${randomBytes(6).toString("hex")}`;
  private readonly tenants = new Map<string, TenantLog>();

  constructor(private readonly limits: EventLogLimits) {}

  async append(tenantId: string, event: BusEvent, now: number): Promise<AppendResult> {
    const log = this.log(tenantId);
    this.trimLog(log, now);
    const known = log.ids.get(event.eventId);
    if (known) {
      const existing = log.events.at(this.indexOf(log, known.position))?.event;
      return { event: existing ?? { ...event, position: known.position }, duplicate: true };
    }
    const position = formatPosition(this.epoch, String(log.nextOffset));
    log.nextOffset += 1;
    const stored: StoredEvent = { ...event, position };
    log.events.push({ event: stored, at: now });
    log.ids.set(event.eventId, { position, at: now });
    while (log.events.length > this.limits.maxEventsPerTenant) this.dropOldest(log);
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
    const slice = log.events.slice(from, from + limit).map(e => e.event);
    const hasMore = from + limit < log.events.length;
    const next = slice.length > 0 ? slice[slice.length - 1].position : (after ?? head);
    return { events: slice, hasMore, next, lost: false };
  }

  async tail(tenantId: string, count: number) {
    const log = this.tenants.get(tenantId);
    return log ? log.events.slice(Math.max(0, log.events.length - count)).map(e => e.event) : [];
  }

  async head(tenantId: string) {
    const log = this.tenants.get(tenantId);
    return log && log.events.length > 0 ? (log.events.at(log.events.length - 1)?.event.position ?? null) : null;
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
    let dropped = 0;
    while (log.events.length > 0 && (log.events.at(0)?.at ?? cutoff) < cutoff) {
      this.dropOldest(log);
      dropped += 1;
    }
    // Insertion order is time order: the expired ids are the oldest ones.
    log.ids.dropOldestWhile(entry => entry.at < cutoff);
    return dropped;
  }

  private dropOldest(log: TenantLog) {
    log.events.shift();
    log.firstOffset += 1;
  }

  private indexOf(log: TenantLog, position: string): number {
    const parsed = parsePosition(position);
    return parsed ? parsed.offset[0] - log.firstOffset : -1;
  }

  private log(tenantId: string): TenantLog {
    let log = this.tenants.get(tenantId);
    if (!log) {
      log = { events: new Deque(), firstOffset: 0, nextOffset: 0, ids: new FifoMap(this.limits.maxEventsPerTenant * ID_INDEX_FACTOR) };
      this.tenants.set(tenantId, log);
    }
    return log;
  }
}
