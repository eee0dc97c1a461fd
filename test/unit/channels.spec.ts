import { ServiceBroker, type Service } from "moleculer";
import { MemoryChannelAdapter } from "../../lib/channel-adapter.memory";
import { RedisChannelAdapter } from "../../lib/channel-adapter.redis";
import { channelMiddlewares, createChannelAdapter, eventBusChannelSettings, eventBusChannelsOf } from "../../lib/channels";
import { loadConfig, type Config } from "../../lib/config";
import { MemoryEventHandoff } from "../../lib/event-handoff";
import { EventConsumerMixin, eventMatcher, subscribe, unsubscribe } from "../../lib/subscriptions";
import type { StoredEvent } from "../../stores/event-log";
import { eventually, settle } from "../helpers/client";

const event = (tenantId: string, eventType: string, eventId = `${tenantId}-${eventType}`): StoredEvent => ({
  eventId,
  eventType,
  tenantId,
  timestamp: new Date(0).toISOString(),
  payload: null,
  metadata: {},
  schemaVersion: "1.0",
  position: "e.1"
});

describe("eventMatcher", () => {
  it("filters by tenant and Moleculer event-name patterns", () => {
    const match = eventMatcher({ tenantId: "t1", eventTypes: ["order.*", "invoice.**", "exact"] });
    expect(match(event("t1", "order.placed"))).toBe(true);
    expect(match(event("t1", "order.placed.v2"))).toBe(false);
    expect(match(event("t1", "invoice.paid.late"))).toBe(true);
    expect(match(event("t1", "exact"))).toBe(true);
    expect(match(event("t1", "exactly"))).toBe(false);
    expect(match(event("t2", "order.placed"))).toBe(false);
  });

  it("matches everything with * or ** or no eventTypes, and never a payload that is not a bus event", () => {
    for (const filter of [{ eventTypes: ["*"] }, { eventTypes: ["**"] }, {}]) {
      const match = eventMatcher(filter);
      expect(match(event("t1", "a.b.c"))).toBe(true);
      expect(match(event("t2", "x"))).toBe(true);
      expect(match({ hello: "world" })).toBe(false);
      expect(match(null)).toBe(false);
      expect(match("order.placed")).toBe(false);
    }
  });
});

describe("MemoryEventHandoff", () => {
  it("tells a first attempt from a retry of an unfinished handoff", async () => {
    const handoff = new MemoryEventHandoff(1000);
    expect(await handoff.begin("t", "e1", 0)).toBe(true);
    // Not finished (the send failed): the retry finds the mark.
    expect(await handoff.begin("t", "e1", 10)).toBe(false);
    await handoff.end("t", "e1");
    // Finished: a later duplicate sets a new mark (and, its append being a duplicate, sends nothing).
    expect(await handoff.begin("t", "e1", 20)).toBe(true);
    expect(await handoff.begin("t2", "e1", 20)).toBe(true);
  });

  it("forgets marks older than the log's idempotency window", async () => {
    const handoff = new MemoryEventHandoff(1000);
    expect(await handoff.begin("t", "e1", 0)).toBe(true);
    expect(await handoff.begin("t", "e1", 1001)).toBe(true);
  });
});

describe("channel resolver", () => {
  const config = (overrides: Partial<Config> = {}) => loadConfig({}, { jwtSecret: "x", ...overrides });

  it("uses Redis Streams with REDIS_URL and the in-process adapter without, under REDIS_KEY_PREFIX", () => {
    const redis = createChannelAdapter(config({ redisUrl: "redis://127.0.0.1:6390", redisKeyPrefix: "app" }));
    expect(redis).toBeInstanceOf(RedisChannelAdapter);
    expect((redis as RedisChannelAdapter).addPrefixTopic("webwaka:events")).toBe("app:channels.webwaka:events");
    const memory = createChannelAdapter(config());
    expect(memory).toBeInstanceOf(MemoryChannelAdapter);
  });

  it("derives the channel settings from the seed 001 names", () => {
    expect(eventBusChannelSettings(config())).toEqual({
      channel: "webwaka:events",
      defaultGroup: "webwaka-consumers",
      deadLetterQueue: "webwaka:events:dead-letter",
      maxRetries: 3,
      retryDelayMs: 1000,
      streamMaxLen: 1_000_000
    });
  });

  it("sets the Redis adapter to redeliver a failed message after EVENT_BUS_RETRY_DELAY_MS", () => {
    const adapter = createChannelAdapter(config({ redisUrl: "redis://127.0.0.1:6390", eventBusRetryDelayMs: 1000 })) as RedisChannelAdapter;
    expect(adapter.opts.redis.consumerOptions).toMatchObject({ minIdleTime: 1000, claimInterval: 250, startID: "$" });
    expect(adapter.opts).toMatchObject({ maxRetries: 3, deadLettering: { enabled: true, queueName: "webwaka:events:dead-letter" } });
  });
});

describe("subscriptions on an embedded broker", () => {
  const brokers: ServiceBroker[] = [];
  const config = loadConfig({}, { jwtSecret: "x", eventBusRetryDelayMs: 50, eventBusMaxRetries: 3 });

  async function startBroker(withChannels = true): Promise<ServiceBroker> {
    const broker = new ServiceBroker({ logger: false, nodeID: `unit-${brokers.length}`, middlewares: withChannels ? channelMiddlewares(config) : [] });
    brokers.push(broker);
    await broker.start();
    return broker;
  }

  const send = (broker: ServiceBroker, payload: unknown) =>
    (broker as unknown as { sendToChannel(channel: string, payload: unknown): Promise<void> }).sendToChannel("webwaka:events", payload);

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map(b => b.stop()));
  });

  it("refuses what cannot work: no channel middleware, duplicate ids, a second filter in one group, bad options", async () => {
    const bare = await startBroker(false);
    await expect(subscribe(bare, { subscriptionId: "s", eventTypes: ["*"], callback: () => undefined })).rejects.toThrow(/channelMiddlewares/);
    const broker = await startBroker();
    await subscribe(broker, { subscriptionId: "s1", tenantId: "t1", eventTypes: ["a"], consumerGroup: "g", callback: () => undefined });
    await expect(subscribe(broker, { subscriptionId: "s1", eventTypes: ["a"], callback: () => undefined })).rejects.toThrow(/already exists/);
    await expect(subscribe(broker, { subscriptionId: "s2", tenantId: "t1", eventTypes: ["b"], consumerGroup: "g", callback: () => undefined })).rejects.toThrow(/another filter/);
    // Same filter, same group: a second member.
    await subscribe(broker, { subscriptionId: "s3", tenantId: "t1", eventTypes: ["a"], consumerGroup: "g", callback: () => undefined });
    await expect(subscribe(broker, { subscriptionId: "has space", eventTypes: ["a"], callback: () => undefined })).rejects.toThrow(/subscriptionId/);
    await expect(subscribe(broker, { subscriptionId: "s4", eventTypes: [], callback: () => undefined })).rejects.toThrow(/eventTypes/);
    expect(await unsubscribe(broker, "nope")).toBe(false);
  });

  it("EventConsumerMixin adds its channel next to the service's own channels", async () => {
    const broker = await startBroker();
    const bus: string[] = [];
    const own: unknown[] = [];
    const service: Service = broker.createService({
      name: "both",
      mixins: [EventConsumerMixin({ group: "mixed", handler: e => void bus.push(e.eventId) })],
      channels: { "other.topic": { group: "mixed", handler: (payload: unknown) => void own.push(payload) } }
    });
    await eventBusChannelsOf(broker)!.adapter.whenSubscribed(service.fullName, 2000);
    await send(broker, event("t1", "x", "e-1"));
    await (broker as unknown as { sendToChannel(c: string, p: unknown): Promise<void> }).sendToChannel("other.topic", { hi: 1 });
    await eventually(() => bus.length === 1 && own.length === 1, 2000, "both channels");
    expect(bus).toEqual(["e-1"]);
    expect(own).toEqual([{ hi: 1 }]);
  });

  it("hands a pending retry to another member of the group when its consumer unsubscribes, keeping the attempt count", async () => {
    const broker = await startBroker();
    const attempts: string[] = [];
    await subscribe(broker, { subscriptionId: "first", eventTypes: ["*"], consumerGroup: "g", callback: () => {
      attempts.push("first");
      throw new Error("first fails");
    } });
    await send(broker, event("t1", "x", "e-handover"));
    await eventually(() => attempts.length === 1, 2000, "the first attempt");
    await subscribe(broker, { subscriptionId: "second", eventTypes: ["*"], consumerGroup: "g", callback: () => {
      attempts.push("second");
      throw new Error("second fails");
    } });
    await unsubscribe(broker, "first");
    await eventually(() => attempts.length === 3, 2000, "two more attempts on the second member");
    await settle(200);
    expect(attempts).toEqual(["first", "second", "second"]);
    const { adapter } = eventBusChannelsOf(broker)!;
    const [dead] = await adapter.listDeadLetters({ limit: 10 });
    expect(dead).toMatchObject({ group: "g", attempts: 3, error: "second fails", eventId: "e-handover", channel: "webwaka:events" });
  });

  it("dead-letters a pending retry when its consumer was the group's last member; redrive waits for a member", async () => {
    const broker = await startBroker();
    let fail = true;
    const handled: string[] = [];
    await subscribe(broker, { subscriptionId: "only", eventTypes: ["*"], consumerGroup: "lonely", callback: e => {
      if (fail) throw new Error("nope");
      handled.push(e.eventId);
    } });
    await send(broker, event("t1", "x", "e-lonely"));
    await settle(20);
    await unsubscribe(broker, "only");
    const { adapter } = eventBusChannelsOf(broker)!;
    const [dead] = await adapter.listDeadLetters({ limit: 10 });
    expect(dead).toMatchObject({ group: "lonely", attempts: 1, error: "nope (consumer stopped before its retry)" });
    expect(await adapter.redrive({ ids: [dead.id], limit: 10 })).toEqual({ redriven: [], skipped: [dead.id] });
    fail = false;
    await subscribe(broker, { subscriptionId: "back", eventTypes: ["*"], consumerGroup: "lonely", callback: e => void handled.push(e.eventId) });
    expect(await adapter.redrive({ ids: [dead.id], limit: 10 })).toEqual({ redriven: [dead.id], skipped: [] });
    await eventually(() => handled.length === 1, 2000, "the redriven event");
    expect(await adapter.deadLetterCount()).toBe(0);
  });
});
