import { Utils, type Service, type ServiceBroker, type ServiceSchema } from "moleculer";
import type { StoredEvent } from "../stores/event-log";
import { eventBusChannelsOf, type EventBusChannels } from "./channels";

/**
 * Consuming bus events (seed 000 "Event Bus API"):
 *
 * ```ts
 * const { subscriptionId } = await subscribe(broker, {
 *   subscriptionId: "billing-orders", tenantId: "t1", eventTypes: ["order.*"],
 *   consumerGroup: "billing", callback: async event => { ... }
 * });
 * await unsubscribe(broker, subscriptionId);
 * ```
 *
 * or, in a service schema, `mixins: [EventConsumerMixin({ group: "billing", eventTypes: ["order.*"], handler(event) {...} })]`.
 *
 * Each event goes to one member of each group, at least once: handlers must be idempotent (dedupe
 * by `eventId`). A handler that throws is retried; after EVENT_BUS_MAX_RETRIES attempts the event
 * goes to the dead-letter queue (`eventbus.deadLetters`, `eventbus.redrive`). Events that do not
 * match the filter are acknowledged without calling the handler, so all members of a group must
 * use the same filter (a group shares one cursor); `subscribe` refuses a second filter for a group
 * on the same broker.
 *
 * eventTypes are Moleculer event-name patterns: `order.placed`, `order.*` (one segment),
 * `order.**` (any depth); `*` or `**` alone match every event type.
 */

export type EventHandler = (event: StoredEvent) => unknown;

export interface EventFilter {
  /** Only this tenant's events; absent = every tenant (internal consumers only). */
  tenantId?: string;
  /** Patterns; absent = every event type. */
  eventTypes?: string[];
}

export interface EventConsumerOptions extends EventFilter {
  /** Consumer group; default EVENT_BUS_CONSUMER_GROUP. */
  group?: string;
  /** Events one member handles at once (default 1). */
  maxInFlight?: number;
  handler(this: Service, event: StoredEvent): unknown;
}

export interface SubscribeOptions {
  subscriptionId: string;
  tenantId?: string;
  eventTypes: string[];
  /** Default EVENT_BUS_CONSUMER_GROUP. */
  consumerGroup?: string;
  callback: EventHandler;
  maxInFlight?: number;
}

/** A predicate for bus events; anything that is not one never matches. */
export function eventMatcher(filter: EventFilter): (payload: unknown) => payload is StoredEvent {
  const patterns = filter.eventTypes;
  const matchesType = (type: string) => !patterns || patterns.some(p => p === "*" || p === "**" || p === type || Utils.match(type, p));
  return (payload: unknown): payload is StoredEvent => {
    if (typeof payload !== "object" || payload === null) return false;
    const event = payload as Partial<StoredEvent>;
    if (typeof event.eventType !== "string" || typeof event.tenantId !== "string") return false;
    if (filter.tenantId !== undefined && event.tenantId !== filter.tenantId) return false;
    return matchesType(event.eventType);
  };
}

function channelsOf(broker: ServiceBroker): EventBusChannels {
  const channels = eventBusChannelsOf(broker);
  if (!channels) throw new Error("This broker has no event-bus channels: build it with channelMiddlewares(config) (moleculer.config.ts does)");
  return channels;
}

/**
 * A mixin consuming bus events with the broker's channel settings (channel name, retries,
 * dead-letter queue). It adds its channel to the service's own `channels` rather than replacing
 * them (Moleculer would otherwise keep only one `channels` object).
 */
export function EventConsumerMixin(options: EventConsumerOptions): Partial<ServiceSchema> {
  const matches = eventMatcher(options);
  return {
    merged(this: Service, schema: ServiceSchema) {
      const { settings } = channelsOf(this.broker);
      schema.channels = {
        ...(schema.channels as Record<string, unknown> | undefined),
        [settings.channel]: {
          group: options.group ?? settings.defaultGroup,
          maxRetries: settings.maxRetries,
          deadLettering: { enabled: true, queueName: settings.deadLetterQueue },
          ...(options.maxInFlight ? { maxInFlight: options.maxInFlight } : {}),
          handler(this: Service, payload: unknown) {
            if (!matches(payload)) return undefined;
            return options.handler.call(this, payload);
          }
        }
      };
    }
  };
}

interface Subscription {
  service: Service;
  group: string;
  filterKey: string;
}

const subscriptionsOf = new WeakMap<ServiceBroker, Map<string, Subscription>>();

function registryOf(broker: ServiceBroker): Map<string, Subscription> {
  let map = subscriptionsOf.get(broker);
  if (!map) {
    map = new Map();
    subscriptionsOf.set(broker, map);
  }
  return map;
}

const SUBSCRIPTION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Starts consuming: creates a small service on `broker` whose channel handler filters by tenant
 * and event type and calls `callback`. Resolves once events reach it (when the broker is running).
 */
export async function subscribe(broker: ServiceBroker, options: SubscribeOptions): Promise<{ subscriptionId: string }> {
  const { subscriptionId, tenantId, eventTypes, callback } = options;
  if (typeof subscriptionId !== "string" || !SUBSCRIPTION_ID.test(subscriptionId)) throw new Error("subscriptionId must be 1-128 characters of A-Z a-z 0-9 _ . : -");
  if (!Array.isArray(eventTypes) || eventTypes.length === 0 || !eventTypes.every(t => typeof t === "string" && t.length > 0)) throw new Error("eventTypes must list at least one event type");
  if (tenantId !== undefined && (typeof tenantId !== "string" || tenantId.length === 0)) throw new Error("tenantId must be a non-empty string");
  if (typeof callback !== "function") throw new Error("callback must be a function");
  const channels = channelsOf(broker);
  const group = options.consumerGroup ?? channels.settings.defaultGroup;
  const subscriptions = registryOf(broker);
  if (subscriptions.has(subscriptionId)) throw new Error(`Subscription '${subscriptionId}' already exists`);
  const filterKey = JSON.stringify({ tenantId: tenantId ?? null, eventTypes: [...eventTypes].sort() });
  for (const [id, other] of subscriptions) {
    if (other.group === group && other.filterKey !== filterKey) {
      throw new Error(`Consumer group '${group}' is used by subscription '${id}' with another filter; members of a group share its events, so they must share the filter`);
    }
  }
  const service = broker.createService({
    name: `$eventbus-subscription:${subscriptionId}`,
    mixins: [EventConsumerMixin({ group, tenantId, eventTypes, maxInFlight: options.maxInFlight, handler: event => callback(event) })]
  });
  subscriptions.set(subscriptionId, { service, group, filterKey });
  if (broker.started) {
    try {
      await channels.adapter.whenSubscribed(service.fullName, 10_000);
    } catch (err) {
      subscriptions.delete(subscriptionId);
      await broker.destroyService(service).catch(() => undefined);
      throw err;
    }
  }
  return { subscriptionId };
}

/** Stops a subscription made with `subscribe`; false when there is none of that id. */
export async function unsubscribe(broker: ServiceBroker, subscriptionId: string): Promise<boolean> {
  const subscriptions = registryOf(broker);
  const entry = subscriptions.get(subscriptionId);
  if (!entry) return false;
  subscriptions.delete(subscriptionId);
  await broker.destroyService(entry.service);
  return true;
}
