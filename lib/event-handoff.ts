import type Redis from "ioredis";
import { acquireRedis, releaseRedis } from "../stores/redis-connection";
import type { Config } from "./config";
import { tenantKey } from "./keys";

/**
 * Remembers which published events may not have reached the consumer-group channel yet, so that a
 * publisher retrying with the same eventId gets them sent, while an ordinary duplicate is not sent
 * twice.
 *
 * `eventbus.publish` appends to the log (idempotent by eventId) and then sends to the channel; the
 * two cannot be one atomic write. When the send fails (or the node dies in between) publish does
 * not answer success, the publisher retries, and the append now says "duplicate". A mark set
 * before the append and cleared after the send tells that retry to send:
 *
 * - `begin` sets the mark unless it exists and says whether this call set it;
 * - mark found already (an earlier attempt did not finish, or one is under way): send;
 * - mark set now and the append is a duplicate: an earlier attempt finished, so do not send.
 *
 * Marks live as long as the log's idempotency window (EVENT_BUS_RETENTION_PERIOD).
 */
export interface EventHandoff {
  /** Sets the mark of an event; true when this call set it, false when it was already there. */
  begin(tenantId: string, eventId: string, now: number): Promise<boolean>;
  /** Clears the mark once the event is in the channel. */
  end(tenantId: string, eventId: string): Promise<void>;
  close(): Promise<void>;
}

const MEMORY_MAX_MARKS = 100_000;

export class MemoryEventHandoff implements EventHandoff {
  /** key → expiry; only marks of unfinished handoffs stay, so the map stays small. */
  private readonly marks = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  async begin(tenantId: string, eventId: string, now: number): Promise<boolean> {
    const key = tenantKey(tenantId, "handoff", eventId);
    const expiry = this.marks.get(key);
    if (expiry !== undefined && expiry > now) return false;
    this.marks.set(key, now + this.ttlMs);
    if (this.marks.size > MEMORY_MAX_MARKS) {
      for (const [k, e] of this.marks) if (e <= now) this.marks.delete(k);
      // Still full: drop the oldest (their events may miss a resend, never the log).
      for (const k of this.marks.keys()) {
        if (this.marks.size <= MEMORY_MAX_MARKS) break;
        this.marks.delete(k);
      }
    }
    return true;
  }

  async end(tenantId: string, eventId: string): Promise<void> {
    this.marks.delete(tenantKey(tenantId, "handoff", eventId));
  }

  async close(): Promise<void> {
    this.marks.clear();
  }
}

export class RedisEventHandoff implements EventHandoff {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly ttlMs: number,
    private readonly release: () => Promise<void>
  ) {}

  private key(tenantId: string, eventId: string): string {
    return `${this.prefix}:${tenantKey(tenantId, "events", "handoff", eventId)}`;
  }

  async begin(tenantId: string, eventId: string): Promise<boolean> {
    return (await this.client.set(this.key(tenantId, eventId), "1", "PX", this.ttlMs, "NX")) === "OK";
  }

  async end(tenantId: string, eventId: string): Promise<void> {
    await this.client.del(this.key(tenantId, eventId));
  }

  close(): Promise<void> {
    return this.release();
  }
}

export function createEventHandoff(config: Pick<Config, "redisUrl" | "redisKeyPrefix" | "eventBusRetentionMs">): EventHandoff {
  if (!config.redisUrl) return new MemoryEventHandoff(config.eventBusRetentionMs);
  const url = config.redisUrl;
  return new RedisEventHandoff(acquireRedis(url), config.redisKeyPrefix, config.eventBusRetentionMs, () => releaseRedis(url));
}
