import { Middleware as ChannelsMiddleware } from "@moleculer/channels";
import type { Middleware, ServiceBroker } from "moleculer";
import { REDRIVE_GROUP_HEADER, type EventBusChannelAdapter } from "./channel-adapter";
import { MemoryChannelAdapter } from "./channel-adapter.memory";
import { RedisChannelAdapter } from "./channel-adapter.redis";
import type { Config } from "./config";

/**
 * Consumer groups for bus events (seed 000 "Event Bus API": subscribe with a consumerGroup):
 * `eventbus.publish` sends every newly stored event to one channel, and Moleculer services consume
 * it through @moleculer/channels (`channels: {...}` in a schema, `EventConsumerMixin`, or
 * `subscribe()` in lib/subscriptions.ts): each event reaches one member of every group, at least
 * once; a failing handler is retried, then dead-lettered.
 *
 * This is the one resolver of the channel adapter (like the stores' REDIS_URL resolvers):
 * - REDIS_URL set: Redis Streams on that Redis (durable, shared by all nodes), see
 *   channel-adapter.redis.ts. Stream keys are `<REDIS_KEY_PREFIX>:channels.<channel>`.
 * - otherwise: Moleculer balanced events plus in-process retries and dead letters, see
 *   channel-adapter.memory.ts (not durable, like every embedded store).
 */

export interface EventBusChannelSettings {
  /** The channel every published event is sent to (EVENT_BUS_STREAM_NAME). */
  channel: string;
  /** Group of consumers that name none (EVENT_BUS_CONSUMER_GROUP). */
  defaultGroup: string;
  /** Dead-letter queue of the channel's consumers: `<channel>:dead-letter`. */
  deadLetterQueue: string;
  /** Handler attempts before dead-lettering (EVENT_BUS_MAX_RETRIES). */
  maxRetries: number;
  retryDelayMs: number;
  /** Approximate cap of the Redis channel stream (XADD MAXLEN ~). */
  streamMaxLen: number;
}

export interface EventBusChannels {
  settings: EventBusChannelSettings;
  adapter: EventBusChannelAdapter;
}

type ChannelConfig = Pick<
  Config,
  "redisUrl" | "redisKeyPrefix" | "eventBusStreamName" | "eventBusConsumerGroup" | "eventBusMaxRetries" | "eventBusRetryDelayMs" | "eventBusStreamMaxLen"
>;

export function eventBusChannelSettings(config: ChannelConfig): EventBusChannelSettings {
  return {
    channel: config.eventBusStreamName,
    defaultGroup: config.eventBusConsumerGroup,
    deadLetterQueue: `${config.eventBusStreamName}:dead-letter`,
    maxRetries: config.eventBusMaxRetries,
    retryDelayMs: config.eventBusRetryDelayMs,
    streamMaxLen: config.eventBusStreamMaxLen
  };
}

/** The adapter for a configuration (one instance per broker). */
export function createChannelAdapter(config: ChannelConfig): EventBusChannelAdapter {
  const settings = eventBusChannelSettings(config);
  // Every Redis key of the product starts with REDIS_KEY_PREFIX; the library joins prefix and
  // channel with ".", so the stream is `pf2:channels.webwaka:events`.
  const prefix = `${config.redisKeyPrefix}:channels`;
  const common = { prefix, maxRetries: settings.maxRetries, retryDelayMs: settings.retryDelayMs, deadLetterQueue: settings.deadLetterQueue };
  return config.redisUrl ? new RedisChannelAdapter({ url: config.redisUrl, ...common }) : new MemoryChannelAdapter(common);
}

const registered = new WeakMap<ServiceBroker, EventBusChannels>();

/** The event-bus channels of a broker, or undefined when it was built without `channelMiddlewares`. */
export function eventBusChannelsOf(broker: ServiceBroker): EventBusChannels | undefined {
  return registered.get(broker);
}

/**
 * The broker middlewares (Channels + ours) for a configuration. Call it once per broker: the
 * middlewares hold that broker's adapter.
 *
 * Ours records the settings for `eventBusChannelsOf` and, on every channel handler, skips a
 * redriven message meant for another group (a redrive re-sends to the channel, which every group
 * reads; only the group that failed should see it again).
 */
export function channelMiddlewares(config: ChannelConfig): Middleware[] {
  const settings = eventBusChannelSettings(config);
  const adapter = createChannelAdapter(config);
  const channels = ChannelsMiddleware({
    adapter: adapter as never,
    schemaProperty: "channels",
    sendMethodName: "sendToChannel",
    adapterPropertyName: "channelAdapter",
    channelHandlerTrigger: "emitLocalChannelHandler",
    context: false
  });
  const eventBus = {
    name: "EventBusChannels",
    created(broker: ServiceBroker) {
      registered.set(broker, { settings, adapter });
    },
    localChannel(next: (payload: unknown, raw: unknown) => Promise<unknown>, chan: { group: string }) {
      return (payload: unknown, raw: unknown) => {
        const headers = typeof raw === "object" && raw !== null ? (raw as { headers?: Record<string, unknown> }).headers : undefined;
        const target = headers?.[REDRIVE_GROUP_HEADER];
        if (target !== undefined && target !== chan.group) return Promise.resolve();
        return next(payload, raw);
      };
    }
  };
  return [channels as unknown as Middleware, eventBus as unknown as Middleware];
}

/** `broker.sendToChannel`, added by the Channels middleware (absent from Moleculer's typings). */
export function channelSender(broker: ServiceBroker): ((channel: string, payload: unknown, opts?: Record<string, unknown>) => Promise<void>) | undefined {
  const send = (broker as unknown as { sendToChannel?: (channel: string, payload: unknown, opts?: Record<string, unknown>) => Promise<void> }).sendToChannel;
  return typeof send === "function" ? send.bind(broker) : undefined;
}
