import { Adapters } from "@moleculer/channels";
import type Redis from "ioredis";
import type { Service } from "moleculer";
import { redisClient } from "../stores/redis-connection";
import {
  ATTEMPTS_HEADER,
  delay,
  ERROR_HEADER,
  errorMessage,
  eventFieldsOf,
  matchesFilter,
  REDRIVE_GROUP_HEADER,
  SubscriptionReadiness,
  unprefixed,
  type ConsumerGroupInfo,
  type DeadLetter,
  type DeadLetterFilter,
  type EventBusChannelAdapter,
  type RedriveResult
} from "./channel-adapter";

/**
 * The channel adapter with REDIS_URL: @moleculer/channels' Redis Streams adapter (consumer groups,
 * acknowledgements, XAUTOCLAIM redelivery, dead-letter stream), with four corrections that
 * at-least-once delivery needs, each a small override of one method of the library (0.1.8):
 *
 * 1. `processMessage`: the library dead-letters from a timer that scans XPENDING for messages
 *    delivered `maxRetries` times, which races with the last attempt (a message whose last attempt
 *    is still running, or succeeds, may be dead-lettered; one whose failure the timer misses gets an
 *    extra attempt). Here the consumer whose attempt failed reads the delivery count of that message
 *    and dead-letters it at once when it was the last allowed attempt: exactly `maxRetries`
 *    attempts. The library's timer stays as a safety net two deliveries later (a consumer that died
 *    mid-handler never reports a failure). While a handler runs, its messages are re-claimed every
 *    half `minIdleTime`, so a slow handler is not redelivered to another consumer meanwhile.
 * 2. `unsubscribe`: the library deletes the consumer (XGROUP DELCONSUMER), which silently drops the
 *    messages it had pending: those awaiting a retry would be lost on every unsubscribe and node
 *    stop. They are first handed to a stable `orphaned` consumer of the group, where any live
 *    member's XAUTOCLAIM picks them up.
 * 3. `createRedisClient`: the library refuses to start while Redis is down. Here clients connect in
 *    the background, like the product's stores, so a node starts and reports `degraded`; the
 *    publishing client fails fast (publish rejects, the caller retries), the reading clients wait.
 * 4. `moveToDeadLetter` uses the fail-fast client and records attempts and the last error.
 *
 * A failed message is redelivered once it has been idle `minIdleTime` (= EVENT_BUS_RETRY_DELAY_MS):
 * a fixed delay, not exponential backoff, since Redis tracks idle time and not a schedule.
 */

const ORIGINAL_ID_HEADER = "x-original-id";
const ORIGINAL_CHANNEL_HEADER = "x-original-channel";
const ORIGINAL_GROUP_HEADER = "x-original-group";
const ORPHANED_CONSUMER = "orphaned";
/** Deliveries beyond `maxRetries` after which the library's own dead-lettering timer steps in. */
const SAFETY_NET_DELIVERIES = 2;
const ERRORS_METRIC = "moleculer.channels.messages.errors.total";
const DEAD_LETTERING_METRIC = "moleculer.channels.messages.deadLettering.total";

type LibRedisAdapter = InstanceType<typeof Adapters.Redis>;
type LibChannel = Parameters<LibRedisAdapter["processMessage"]>[0];

/** The fields of the library's channel object this adapter uses. */
interface RedisChannel {
  id: string;
  name: string;
  group: string;
  unsubscribing: boolean;
  maxRetries: number;
  /** Handler attempts before dead-lettering (the configured `maxRetries`). */
  attempts: number;
  deadLettering: { enabled: boolean; queueName: string };
  redis: { minIdleTime: number };
  handler(payload: unknown, raw: { payload: unknown; headers?: Record<string, unknown> }): Promise<unknown>;
}

interface ParsedBatch {
  ids: string[];
  parsedMessages: unknown[];
  parsedHeaders: Array<Record<string, unknown> | undefined>;
  serializedMessages: Buffer[];
}

interface StoredDeadLetter {
  view: DeadLetter;
  payload: Buffer;
  headers: Record<string, unknown>;
  originalChannel: string;
}

export interface RedisChannelAdapterOptions {
  url: string;
  prefix: string;
  maxRetries: number;
  retryDelayMs: number;
  deadLetterQueue: string;
}

export class RedisChannelAdapter extends Adapters.Redis implements EventBusChannelAdapter {
  readonly backend = "redis" as const;
  private readonly url: string;
  private readonly readiness = new SubscriptionReadiness();
  private readonly serviceOfChannel = new Map<string, string>();
  private readonly deadLetterQueue: string;

  constructor(options: RedisChannelAdapterOptions) {
    super({
      prefix: options.prefix,
      maxRetries: options.maxRetries,
      deadLettering: { enabled: true, queueName: options.deadLetterQueue },
      redis: {
        url: options.url,
        consumerOptions: {
          // Block until a message arrives; unsubscribing disconnects the reading client.
          readTimeoutInterval: 0,
          // A failed (unacknowledged) message is redelivered after this idle time.
          minIdleTime: options.retryDelayMs,
          // How often each consumer looks for such messages (so a retry comes within 1.25 delays).
          claimInterval: Math.min(250, Math.max(20, Math.round(options.retryDelayMs / 4))),
          startID: "$",
          // The safety-net dead-lettering scan (see 1. above).
          processingAttemptsInterval: Math.max(1000, options.retryDelayMs)
        }
      }
    });
    this.url = options.url;
    this.deadLetterQueue = options.deadLetterQueue;
  }

  private get pub(): Redis {
    const client = this.clients.get(this.pubName);
    if (!client) throw new Error("Channel adapter is not connected");
    return client as Redis;
  }

  private get deadLetterKey(): string {
    return this.addPrefixTopic(this.deadLetterQueue);
  }

  // 3. Background connection instead of refusing to start while Redis is down.
  createRedisClient(name: string): Promise<Redis> {
    const publishing = name === this.pubName;
    const RedisClient = redisClient();
    const client = new RedisClient(this.url, {
      connectTimeout: 2000,
      // Publishing and operator commands fail fast; the reading loops wait for Redis to return
      // instead of spinning on errors.
      maxRetriesPerRequest: publishing ? 1 : null,
      // A publish into a Redis that hangs fails instead of waiting for the broker's request timeout.
      ...(publishing ? { commandTimeout: 2000 } : {}),
      retryStrategy: times => Math.min(100 * times, 1000),
      disconnectTimeout: 100
    });
    if (publishing) {
      const failFast = () => {
        client.options.enableOfflineQueue = false;
      };
      client.once("ready", failFast);
      client.once("error", failFast);
    }
    let down = false;
    client.on("error", (err: Error) => {
      if (!down) this.logger.warn(`Redis channel client '${name}' is unreachable: ${err.message}`);
      down = true;
    });
    client.on("ready", () => {
      if (down) this.logger.info(`Redis channel client '${name}' reconnected`);
      down = false;
    });
    return Promise.resolve(client);
  }

  async subscribe(chan: LibChannel, svc?: Service): Promise<void> {
    const c = chan as unknown as RedisChannel;
    c.attempts = Math.max(1, c.maxRetries ?? this.opts.maxRetries);
    c.maxRetries = c.attempts + SAFETY_NET_DELIVERIES;
    try {
      await super.subscribe(chan);
      if (svc) {
        this.serviceOfChannel.set(c.id, svc.fullName);
        this.readiness.channelReady(svc);
      }
    } catch (err) {
      if (svc) this.readiness.reject(svc.fullName, err);
      // Not rethrown: the Channels middleware subscribes from `serviceCreated` without awaiting,
      // so a rejection would be unhandled. `subscribe()` sees it through the readiness.
      this.logger.error(`Could not subscribe to '${chan.name}' (group '${chan.group}')`, errorMessage(err));
    }
  }

  // 1. Dead-letter deterministically after the last allowed attempt.
  async processMessage(chan: LibChannel, message: unknown[]): Promise<void> {
    const c = chan as unknown as RedisChannel;
    let batch: ParsedBatch;
    try {
      batch = this.parseMessage(message) as ParsedBatch;
    } catch (err) {
      // Left pending: retried, then dead-lettered by the safety net.
      this.logger.error(`Unreadable message on '${c.name}'`, errorMessage(err));
      return;
    }
    const { ids, parsedMessages, parsedHeaders, serializedMessages } = batch;
    this.addChannelActiveMessages(c.id, ids);
    const keepClaimed = setInterval(() => {
      this.clients.get(this.claimName)?.xclaim(c.name, c.group, c.id, 0, ...ids, "JUSTID").catch(() => undefined);
    }, Math.max(50, Math.floor(c.redis.minIdleTime / 2)));
    try {
      const results = await Promise.allSettled(
        parsedMessages.map((payload, i) => c.handler(payload, { payload, ...(parsedHeaders[i] !== undefined ? { headers: parsedHeaders[i] } : {}) }))
      );
      clearInterval(keepClaimed);
      for (let i = 0; i < results.length; i++) {
        const result = results[i];
        if (result.status === "fulfilled") {
          await this.pub.xack(c.name, c.group, ids[i]);
        } else {
          this.metricsIncrement(ERRORS_METRIC, chan);
          await this.failed(c, ids[i], serializedMessages[i], parsedHeaders[i], errorMessage(result.reason));
        }
      }
    } catch (err) {
      // An acknowledgement that did not reach Redis: the message is redelivered (at least once).
      this.logger.error(`Could not settle messages of '${c.name}'`, errorMessage(err));
    } finally {
      clearInterval(keepClaimed);
      this.removeChannelActiveMessages(c.id, ids);
    }
  }

  private async failed(c: RedisChannel, id: string, payload: Buffer, headers: Record<string, unknown> | undefined, error: string): Promise<void> {
    const rows = (await this.pub.xpending(c.name, c.group, id, id, 1)) as Array<[string, string, number, number]>;
    const attempt = rows.length > 0 ? Number(rows[0][3]) : undefined;
    if (attempt !== undefined && attempt >= c.attempts) {
      if (c.deadLettering.enabled) {
        await this.moveToDeadLetter(chan(c), id, payload, { ...headers, [ATTEMPTS_HEADER]: attempt, [ERROR_HEADER]: error });
      } else {
        this.logger.error(`Dropped message ${id} of '${c.name}' after ${attempt} failed attempt(s) (dead-lettering disabled)`, { group: c.group, error });
      }
      await this.pub.xack(c.name, c.group, id);
      return;
    }
    this.logger.warn(`Channel handler failed (attempt ${attempt ?? "?"} of ${c.attempts}); redelivered after ${c.redis.minIdleTime} ms`, { channel: c.name, group: c.group, id, error });
  }

  // 4. Dead-letter through the fail-fast client; the original payload bytes are kept as they are.
  async moveToDeadLetter(chan: LibChannel, originalID: string, message: Buffer, headers: Record<string, unknown> | undefined): Promise<void> {
    const c = chan as unknown as RedisChannel;
    const all = { ...headers, [ORIGINAL_ID_HEADER]: originalID, [ORIGINAL_CHANNEL_HEADER]: c.name, [ORIGINAL_GROUP_HEADER]: c.group };
    await this.pub.xaddBuffer(c.deadLettering.queueName, "*", "payload", message, "headers", this.serializer.serialize(all));
    this.metricsIncrement(DEAD_LETTERING_METRIC, chan);
    this.logger.warn(`Dead-lettered message ${originalID} of '${c.name}' to '${c.deadLettering.queueName}'`, { group: c.group, error: headers?.[ERROR_HEADER] });
  }

  // 2. Hand pending messages over before deleting the consumer.
  async unsubscribe(chan: LibChannel): Promise<void> {
    const c = chan as unknown as RedisChannel;
    if (c.unsubscribing) return;
    c.unsubscribing = true;
    // Breaks the blocking XREADGROUP of this consumer.
    this.clients.get(c.id)?.disconnect();
    await delay(100);
    while (this.getNumberOfChannelActiveMessages(c.id) > 0) await delay(50);
    this.clients.delete(c.id);
    if (this.activeMessages.has(c.id)) this.stopChannelActiveMessages(c.id);
    const serviceName = this.serviceOfChannel.get(c.id);
    if (serviceName) this.readiness.forget(serviceName);
    this.serviceOfChannel.delete(c.id);
    try {
      for (;;) {
        const pending = (await this.pub.xpending(c.name, c.group, "-", "+", 100, c.id)) as Array<[string, string, number, number]>;
        if (pending.length === 0) break;
        await this.pub.xclaim(c.name, c.group, ORPHANED_CONSUMER, 0, ...pending.map(row => row[0]), "JUSTID");
      }
      await this.pub.xgroup("DELCONSUMER", c.name, c.group, c.id);
    } catch (err) {
      // The consumer stays in the group: its pending messages remain claimable by the others.
      this.logger.warn(`Could not release consumer '${c.id}' of '${c.group}'`, errorMessage(err));
    }
  }

  whenSubscribed(serviceFullName: string, timeoutMs: number): Promise<void> {
    return this.readiness.wait(serviceFullName, timeoutMs);
  }

  async deadLetterCount(): Promise<number> {
    return this.pub.xlen(this.deadLetterKey);
  }

  private parseDeadLetter(id: string, fields: Buffer[]): StoredDeadLetter | undefined {
    const at = (name: string) => {
      for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i].toString() === name) return fields[i + 1];
      return undefined;
    };
    const payloadBuf = at("payload");
    if (!payloadBuf) return undefined;
    const headersBuf = at("headers");
    const headers = headersBuf ? (this.serializer.deserialize(headersBuf) as Record<string, unknown>) : {};
    let payload: unknown;
    try {
      payload = this.serializer.deserialize(payloadBuf);
    } catch {
      payload = payloadBuf.toString("base64");
    }
    const originalChannel = String(headers[ORIGINAL_CHANNEL_HEADER] ?? "");
    const attempts = Number(headers[ATTEMPTS_HEADER]);
    const view: DeadLetter = {
      id,
      channel: unprefixed(this.opts.prefix, originalChannel),
      group: String(headers[ORIGINAL_GROUP_HEADER] ?? ""),
      deadLetteredAt: new Date(Number(id.split("-")[0])).toISOString(),
      ...(Number.isFinite(attempts) ? { attempts } : {}),
      ...(typeof headers[ERROR_HEADER] === "string" ? { error: headers[ERROR_HEADER] as string } : {}),
      ...eventFieldsOf(payload),
      payload
    };
    return { view, payload: payloadBuf, headers, originalChannel };
  }

  /** Pages through the dead-letter stream (XRANGE), oldest first, until `limit` entries match. */
  private async select(filter: DeadLetterFilter): Promise<StoredDeadLetter[]> {
    const found: StoredDeadLetter[] = [];
    const take = (rows: Array<[Buffer, Buffer[]]>) => {
      for (const [rawId, fields] of rows) {
        const entry = this.parseDeadLetter(rawId.toString(), fields);
        if (entry && matchesFilter(entry.view, filter)) found.push(entry);
        if (found.length >= filter.limit) return;
      }
    };
    if (filter.ids) {
      for (const id of filter.ids) {
        if (!/^\d+-\d+$/.test(id) || found.length >= filter.limit) continue;
        take((await this.pub.xrangeBuffer(this.deadLetterKey, id, id)) as Array<[Buffer, Buffer[]]>);
      }
      return found;
    }
    let start = "-";
    for (;;) {
      const rows = (await this.pub.xrangeBuffer(this.deadLetterKey, start, "+", "COUNT", 500)) as Array<[Buffer, Buffer[]]>;
      take(rows);
      if (rows.length < 500 || found.length >= filter.limit) return found;
      start = `(${rows[rows.length - 1][0].toString()}`;
    }
  }

  async listDeadLetters(filter: DeadLetterFilter): Promise<DeadLetter[]> {
    return (await this.select(filter)).map(entry => entry.view);
  }

  async redrive(filter: DeadLetterFilter): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: [], skipped: [] };
    for (const entry of await this.select(filter)) {
      const headers: Record<string, unknown> = { ...entry.headers, [REDRIVE_GROUP_HEADER]: entry.view.group };
      for (const name of [ORIGINAL_ID_HEADER, ORIGINAL_CHANNEL_HEADER, ORIGINAL_GROUP_HEADER, ATTEMPTS_HEADER, ERROR_HEADER]) delete headers[name];
      // Re-sent first, removed second: a crash in between redelivers twice rather than never.
      await this.publish(entry.originalChannel, entry.payload, { raw: true, headers });
      await this.pub.xdel(this.deadLetterKey, entry.view.id);
      result.redriven.push(entry.view.id);
    }
    return result;
  }

  async consumerGroups(channel: string): Promise<ConsumerGroupInfo[]> {
    let groups: unknown[];
    try {
      groups = (await this.pub.xinfo("GROUPS", this.addPrefixTopic(channel))) as unknown[];
    } catch (err) {
      if (/no such key/i.test(errorMessage(err))) return [];
      throw err;
    }
    return groups.map(raw => {
      const fields = raw as unknown[];
      const value = (name: string) => {
        const i = fields.indexOf(name);
        return i >= 0 ? fields[i + 1] : undefined;
      };
      const lag = value("lag");
      return {
        group: String(value("name")),
        consumers: Number(value("consumers") ?? 0),
        pending: Number(value("pending") ?? 0),
        lag: lag === undefined || lag === null ? null : Number(lag)
      };
    });
  }
}

function chan(c: RedisChannel): LibChannel {
  return c as unknown as LibChannel;
}
