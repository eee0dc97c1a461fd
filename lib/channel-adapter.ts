/**
 * What the event bus needs from a @moleculer/channels adapter beyond sending and consuming:
 * operating its dead-letter queue, health figures, and knowing when a consumer is live. Both
 * adapters the product builds (lib/channels.ts) implement it; the types live here so the
 * adapters and the resolver do not import each other.
 */

/** Header naming the one consumer group a redriven message is for; every other group skips it. */
export const REDRIVE_GROUP_HEADER = "x-redrive-group";
/** Headers the product adds to a dead-lettered message (next to the library's x-original-*). */
export const ATTEMPTS_HEADER = "x-attempts";
export const ERROR_HEADER = "x-error";

/** One dead-lettered message, as `eventbus.deadLetters` lists it. */
export interface DeadLetter {
  /** Id within the dead-letter queue (Redis stream entry id, or a sequence number in memory). */
  id: string;
  /** The channel it was consumed from (without the adapter prefix). */
  channel: string;
  /** The consumer group whose handler kept failing; a redrive goes to that group only. */
  group: string;
  deadLetteredAt: string;
  /** Handler attempts made (absent when the adapter could not tell). */
  attempts?: number;
  /** The last handler error. */
  error?: string;
  /** Copied from the payload when it is a bus event. */
  tenantId?: string;
  eventId?: string;
  eventType?: string;
  payload: unknown;
}

export interface DeadLetterFilter {
  /** Only these entries. */
  ids?: string[];
  /** Only events of this tenant. */
  tenantId?: string;
  limit: number;
}

export interface RedriveResult {
  /** Ids re-sent to their channel (and removed from the dead-letter queue). */
  redriven: string[];
  /** Ids left in the queue because no consumer of their group exists (memory adapter only). */
  skipped: string[];
}

export interface ConsumerGroupInfo {
  group: string;
  consumers: number;
  /** Delivered but not yet acknowledged (in processing or awaiting a retry). */
  pending: number;
  /** Entries not yet delivered to the group (Redis >= 7; null when Redis cannot tell). */
  lag: number | null;
}

export interface EventBusChannelAdapter {
  readonly backend: "memory" | "redis";
  /** Resolves once the channels of a service are consumed (a dynamic subscription is live). */
  whenSubscribed(serviceFullName: string, timeoutMs: number): Promise<void>;
  deadLetterCount(): Promise<number>;
  listDeadLetters(filter: DeadLetterFilter): Promise<DeadLetter[]>;
  /** Re-sends matching dead letters to their channel, for their group only, and removes them. */
  redrive(filter: DeadLetterFilter): Promise<RedriveResult>;
  /** Consumer groups of a channel, or undefined when the backend has no such notion. */
  consumerGroups(channel: string): Promise<ConsumerGroupInfo[] | undefined>;
}

/** Copies the bus-event fields of a payload (when it is one) into a dead letter. */
export function eventFieldsOf(payload: unknown): Pick<DeadLetter, "tenantId" | "eventId" | "eventType"> {
  if (typeof payload !== "object" || payload === null) return {};
  const p = payload as Record<string, unknown>;
  const fields: Pick<DeadLetter, "tenantId" | "eventId" | "eventType"> = {};
  if (typeof p.tenantId === "string") fields.tenantId = p.tenantId;
  if (typeof p.eventId === "string") fields.eventId = p.eventId;
  if (typeof p.eventType === "string") fields.eventType = p.eventType;
  return fields;
}

export function matchesFilter(entry: Pick<DeadLetter, "id" | "tenantId">, filter: DeadLetterFilter): boolean {
  if (filter.ids && !filter.ids.includes(entry.id)) return false;
  if (filter.tenantId !== undefined && entry.tenantId !== filter.tenantId) return false;
  return true;
}

/** The channel name without the adapter's `<prefix>.`. */
export function unprefixed(prefix: string | null | undefined, name: string): string {
  return prefix && name.startsWith(`${prefix}.`) ? name.slice(prefix.length + 1) : name;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export const delay = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

/**
 * Per service, a promise settled when its channels are subscribed. The Channels middleware
 * subscribes from `serviceCreated`, which Moleculer calls without awaiting, so a caller creating a
 * consumer at runtime has no other way to know when events start reaching it.
 */
export class SubscriptionReadiness {
  private readonly entries = new Map<string, { promise: Promise<void>; resolve(): void; reject(err: unknown): void }>();
  private readonly subscribed = new Map<string, number>();

  /** One channel of `service` is consumed; the service is ready once all of its `channels` are. */
  channelReady(service: { fullName: string; schema: Record<string, unknown> }): void {
    const count = (this.subscribed.get(service.fullName) ?? 0) + 1;
    this.subscribed.set(service.fullName, count);
    const channels = service.schema.channels;
    const total = typeof channels === "object" && channels !== null ? Object.keys(channels).length : 1;
    if (count >= total) this.resolve(service.fullName);
  }

  private entry(key: string) {
    let entry = this.entries.get(key);
    if (!entry) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Nobody may be waiting: a failed subscription must not become an unhandled rejection.
      promise.catch(() => undefined);
      entry = { promise, resolve, reject };
      this.entries.set(key, entry);
    }
    return entry;
  }

  resolve(key: string): void {
    this.entry(key).resolve();
  }

  reject(key: string, err: unknown): void {
    this.entry(key).reject(err);
  }

  forget(key: string): void {
    this.entries.delete(key);
    this.subscribed.delete(key);
  }

  wait(key: string, timeoutMs: number): Promise<void> {
    const { promise } = this.entry(key);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Channels of '${key}' were not subscribed within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}
