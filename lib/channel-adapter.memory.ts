import { Adapters } from "@moleculer/channels";
import type { Context, Service } from "moleculer";
import {
  ATTEMPTS_HEADER,
  delay,
  errorMessage,
  eventFieldsOf,
  matchesFilter,
  REDRIVE_GROUP_HEADER,
  SubscriptionReadiness,
  unprefixed,
  type DeadLetter,
  type DeadLetterFilter,
  type EventBusChannelAdapter,
  type RedriveResult
} from "./channel-adapter";

/**
 * The channel adapter of the embedded deployment (no REDIS_URL).
 *
 * Why it exists: @moleculer/channels' Fake adapter delivers through Moleculer balanced events
 * (one member per group, every group, across nodes when there is a transporter) but has no
 * retries and no dead-lettering: a failing handler simply loses the message. The product
 * promises both, so this subclass keeps the Fake delivery and adds, per consumer:
 * - retries with exponential backoff (EVENT_BUS_RETRY_DELAY_MS, doubling, capped at 60 s) until
 *   `maxRetries` attempts (EVENT_BUS_MAX_RETRIES, the first one included) have failed;
 * - then an in-memory dead-letter list (bounded, oldest dropped first), which
 *   `eventbus.deadLetters` / `eventbus.redrive` operate.
 * Like everything in memory it is not durable: messages awaiting a retry and dead letters live in
 * this process only. Retries run on the consumer that failed; a consumer that unsubscribes hands
 * its pending retries to another member of its group (attempts so far in an `x-attempts` header),
 * or to the dead-letter list when there is none, rather than dropping them.
 */

const MAX_BACKOFF_MS = 60_000;
const ERRORS_METRIC = "moleculer.channels.messages.errors.total";
const RETRIES_METRIC = "moleculer.channels.messages.retries.total";
const DEAD_LETTERING_METRIC = "moleculer.channels.messages.deadLettering.total";

interface RawMessage {
  payload: unknown;
  headers?: Record<string, unknown>;
}

/** The fields of the library's channel object this adapter uses. */
interface MemoryChannel {
  id: string;
  name: string;
  group: string;
  unsubscribing: boolean;
  maxRetries: number;
  deadLettering: { enabled: boolean; queueName: string } | null;
  handler(payload: unknown, raw: RawMessage): Promise<unknown>;
}

interface StoredDeadLetter {
  id: string;
  channel: string;
  group: string;
  at: number;
  attempts: number;
  error: string;
  raw: RawMessage;
}

/** The slice of Moleculer's registry used here (its typings omit both catalogs). */
interface RegistryCatalogs {
  services: { has(fullName: string, nodeID: string): boolean };
  events: { getAllEndpoints(eventName: string, groups: string[]): unknown[] };
}

export interface MemoryChannelAdapterOptions {
  prefix: string;
  maxRetries: number;
  retryDelayMs: number;
  deadLetterQueue: string;
  /** Dead letters kept; the oldest are dropped beyond it. */
  maxDeadLetters?: number;
}

export class MemoryChannelAdapter extends Adapters.Fake implements EventBusChannelAdapter {
  readonly backend = "memory" as const;
  private readonly retryDelayMs: number;
  private readonly maxDeadLetters: number;
  private readonly deadLetters: StoredDeadLetter[] = [];
  private deadLetterSeq = 0;
  private messageSeq = 0;
  /** Per consumer: timers of scheduled retries, each with what to do if it never runs. */
  private readonly pendingRetries = new Map<string, Map<NodeJS.Timeout, () => void>>();
  private readonly readiness = new SubscriptionReadiness();
  private readonly serviceOfChannel = new Map<string, string>();

  constructor(options: MemoryChannelAdapterOptions) {
    super({ prefix: options.prefix, maxRetries: options.maxRetries, deadLettering: { enabled: true, queueName: options.deadLetterQueue } });
    this.retryDelayMs = options.retryDelayMs;
    this.maxDeadLetters = options.maxDeadLetters ?? 10_000;
  }

  async subscribe(chan: Parameters<InstanceType<typeof Adapters.Fake>["subscribe"]>[0], svc: Service): Promise<void> {
    try {
      await super.subscribe(chan, svc);
      // Fake creates a service whose start Moleculer does not let it await; until that service is
      // registered, an emit would find no member of the group.
      const inner = this.services.get(chan.id) as Service | undefined;
      const registry = this.broker.registry as unknown as RegistryCatalogs;
      const deadline = Date.now() + 5000;
      while (inner && !registry.services.has(inner.fullName, this.broker.nodeID)) {
        if (Date.now() > deadline) throw new Error(`Consumer service '${inner.fullName}' did not start`);
        await delay(5);
      }
      this.serviceOfChannel.set(chan.id, svc.fullName);
      this.readiness.channelReady(svc);
    } catch (err) {
      this.readiness.reject(svc.fullName, err);
      // Not rethrown: the Channels middleware subscribes from `serviceCreated` without awaiting,
      // so a rejection would be unhandled. `subscribe()` sees it through the readiness.
      this.logger.error(`Could not subscribe to '${chan.name}' (group '${chan.group}')`, errorMessage(err));
    }
  }

  async unsubscribe(chan: Parameters<InstanceType<typeof Adapters.Fake>["unsubscribe"]>[0]): Promise<void> {
    const c = chan as unknown as MemoryChannel;
    if (c.unsubscribing) return;
    c.unsubscribing = true;
    const service = this.services.get(c.id) as Service | undefined;
    if (service) {
      await this.broker.destroyService(service);
      this.services.delete(c.id);
    }
    // Retries that will never run here go to the dead-letter list, not to oblivion.
    const pending = this.pendingRetries.get(c.id);
    if (pending) {
      for (const [timer, giveUp] of pending) {
        clearTimeout(timer);
        giveUp();
      }
      this.pendingRetries.delete(c.id);
    }
    // Attempts under way finish (a failure now dead-letters, see `failed`).
    while (this.getNumberOfChannelActiveMessages(c.id) > 0) await delay(10);
    if (this.activeMessages.has(c.id)) this.stopChannelActiveMessages(c.id);
    const serviceName = this.serviceOfChannel.get(c.id);
    if (serviceName) this.readiness.forget(serviceName);
    this.serviceOfChannel.delete(c.id);
  }

  /** Called by the Fake adapter's event handler: the first attempt; retries are scheduled. */
  async processMessage(chan: Parameters<InstanceType<typeof Adapters.Fake>["processMessage"]>[0], ctx: Context): Promise<void> {
    const raw = ctx.params as RawMessage;
    // A message handed over by a member that stopped carries the attempts it already had.
    const previous = Number(raw.headers?.[ATTEMPTS_HEADER]);
    await this.attempt(chan as unknown as MemoryChannel, raw, Number.isInteger(previous) && previous > 0 ? previous + 1 : 1);
  }

  private async attempt(chan: MemoryChannel, raw: RawMessage, attempt: number): Promise<void> {
    const id = ++this.messageSeq;
    this.addChannelActiveMessages(chan.id, [id]);
    try {
      await chan.handler(raw.payload, raw);
    } catch (err) {
      this.metricsIncrement(ERRORS_METRIC, chan as never);
      this.failed(chan, raw, attempt, err);
    } finally {
      this.removeChannelActiveMessages(chan.id, [id]);
    }
  }

  private failed(chan: MemoryChannel, raw: RawMessage, attempt: number, err: unknown): void {
    const attempts = Math.max(1, chan.maxRetries);
    const error = errorMessage(err);
    if (attempt >= attempts || chan.unsubscribing) {
      this.deadLetter(chan, raw, attempt, error);
      return;
    }
    const backoff = Math.min(this.retryDelayMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
    this.logger.warn(`Channel handler failed (attempt ${attempt} of ${attempts}); retrying in ${backoff} ms`, { channel: chan.name, group: chan.group, error });
    let pending = this.pendingRetries.get(chan.id);
    if (!pending) {
      pending = new Map();
      this.pendingRetries.set(chan.id, pending);
    }
    const retries = pending;
    const timer = setTimeout(() => {
      retries.delete(timer);
      this.metricsIncrement(RETRIES_METRIC, chan as never);
      void this.attempt(chan, raw, attempt + 1);
    }, backoff);
    retries.set(timer, () => this.handOver(chan, raw, attempt, error));
  }

  /** A retry this consumer will not run: to another member of the group, else dead-lettered. */
  private handOver(chan: MemoryChannel, raw: RawMessage, attempts: number, error: string): void {
    const eventName = this.eventNameOf(chan.name);
    if (!this.hasMember(eventName, chan.group)) {
      this.deadLetter(chan, raw, attempts, `${error} (consumer stopped before its retry)`);
      return;
    }
    const headers = { ...raw.headers, [ATTEMPTS_HEADER]: attempts };
    this.broker.emit(eventName, { payload: raw.payload, headers }, { groups: [chan.group] }).catch((err: Error) => {
      this.logger.error(`Could not hand a retry of '${chan.name}' over to group '${chan.group}'`, err.message);
    });
  }

  /** Whether some node (this one included) has a live consumer of the group. */
  private hasMember(eventName: string, group: string): boolean {
    const registry = this.broker.registry as unknown as RegistryCatalogs;
    return registry.events.getAllEndpoints(eventName, [group]).length > 0;
  }

  private eventNameOf(channel: string): string {
    return `${String(this.opts.eventPrefix)}.${channel}`;
  }

  private deadLetter(chan: MemoryChannel, raw: RawMessage, attempts: number, error: string): void {
    if (!chan.deadLettering?.enabled) {
      this.logger.error(`Dropped a message of '${chan.name}' after ${attempts} failed attempt(s) (dead-lettering disabled)`, { group: chan.group, error });
      return;
    }
    const entry: StoredDeadLetter = { id: String(++this.deadLetterSeq), channel: chan.name, group: chan.group, at: Date.now(), attempts, error, raw };
    this.deadLetters.push(entry);
    if (this.deadLetters.length > this.maxDeadLetters) {
      const dropped = this.deadLetters.splice(0, this.deadLetters.length - this.maxDeadLetters);
      this.logger.error(`Dead-letter list full (${this.maxDeadLetters}); dropped the oldest ${dropped.length}`);
    }
    this.metricsIncrement(DEAD_LETTERING_METRIC, chan as never);
    this.logger.warn(`Dead-lettered a message of '${chan.name}' after ${attempts} attempt(s)`, { group: chan.group, deadLetterId: entry.id, error });
  }

  private view(entry: StoredDeadLetter): DeadLetter {
    return {
      id: entry.id,
      channel: unprefixed(this.opts.prefix, entry.channel),
      group: entry.group,
      deadLetteredAt: new Date(entry.at).toISOString(),
      attempts: entry.attempts,
      error: entry.error,
      ...eventFieldsOf(entry.raw.payload),
      payload: entry.raw.payload
    };
  }

  private select(filter: DeadLetterFilter): StoredDeadLetter[] {
    return this.deadLetters.filter(entry => matchesFilter({ id: entry.id, ...eventFieldsOf(entry.raw.payload) }, filter)).slice(0, filter.limit);
  }

  whenSubscribed(serviceFullName: string, timeoutMs: number): Promise<void> {
    return this.readiness.wait(serviceFullName, timeoutMs);
  }

  async deadLetterCount(): Promise<number> {
    return this.deadLetters.length;
  }

  async listDeadLetters(filter: DeadLetterFilter): Promise<DeadLetter[]> {
    return this.select(filter).map(entry => this.view(entry));
  }

  async redrive(filter: DeadLetterFilter): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: [], skipped: [] };
    for (const entry of this.select(filter)) {
      const eventName = this.eventNameOf(entry.channel);
      // An emit nobody consumes is lost: keep the dead letter until its group has a member again.
      if (!this.hasMember(eventName, entry.group)) {
        result.skipped.push(entry.id);
        continue;
      }
      const headers: Record<string, unknown> = { ...entry.raw.headers, [REDRIVE_GROUP_HEADER]: entry.group };
      delete headers[ATTEMPTS_HEADER];
      await this.broker.emit(eventName, { payload: entry.raw.payload, headers }, { groups: [entry.group] });
      this.deadLetters.splice(this.deadLetters.indexOf(entry), 1);
      result.redriven.push(entry.id);
    }
    return result;
  }

  async consumerGroups(): Promise<undefined> {
    return undefined;
  }
}
