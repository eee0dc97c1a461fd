import { randomUUID } from "node:crypto";
import Redis from "ioredis";
import type { Service, ServiceBroker } from "moleculer";
import { eventBusChannelsOf } from "../../lib/channels";
import type { DeadLetter, RedriveResult } from "../../lib/channel-adapter";
import { EventConsumerMixin, subscribe, unsubscribe, type EventConsumerOptions } from "../../lib/subscriptions";
import type { StoredEvent } from "../../stores/event-log";
import { eventually, settle } from "../helpers/client";
import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";

/**
 * Consumer groups of bus events (lib/channels.ts): every event `eventbus.publish` stores reaches
 * one member of each group, failing handlers are retried and then dead-lettered, operators list
 * and redrive dead letters. Runs on the embedded adapter (Moleculer events + in-process retries)
 * and on the Redis Streams adapter of the real Redis, then across two brokers over real NATS.
 */

const RETRY_DELAY_MS = 100;
const MAX_RETRIES = 3;

const backends = [
  { name: "embedded adapter", redis: false },
  { name: "Redis Streams adapter", redis: true }
];

async function publish(broker: ServiceBroker, tenantId: string, eventType: string, extra: Record<string, unknown> = {}) {
  return broker.call<{ eventId: string; position: string; duplicate: boolean }, object>("eventbus.publish", { tenantId, eventType, ...extra });
}

for (const backend of backends) {
  describe(`consumer groups (${backend.name})`, () => {
    const prefix = uniquePrefix("groups");
    let node: TestNode;
    let seq = 0;
    const fresh = (label: string) => `${label}-${backend.redis ? "r" : "m"}-${++seq}`;
    const services: Service[] = [];
    const subscriptions: string[] = [];

    /** A service consuming through EventConsumerMixin, live once this resolves. */
    async function consumer(name: string, options: EventConsumerOptions): Promise<Service> {
      const service = node.broker.createService({ name, mixins: [EventConsumerMixin(options)] });
      services.push(service);
      await eventBusChannelsOf(node.broker)!.adapter.whenSubscribed(service.fullName, 5000);
      return service;
    }

    async function subscribed(options: Parameters<typeof subscribe>[1]) {
      const result = await subscribe(node.broker, options);
      subscriptions.push(result.subscriptionId);
      return result;
    }

    const deadLetters = (params: Record<string, unknown> = {}) =>
      node.broker.call<{ deadLetters: DeadLetter[]; total: number }, object>("eventbus.deadLetters", params);
    const stats = () => node.broker.call<Record<string, unknown>, object>("eventbus.stats", {});

    beforeAll(async () => {
      node = await startNode({
        // audit: redrives are recorded before they happen (refused without the audit trail).
        services: ["eventbus", "audit"],
        config: {
          eventBusRetryDelayMs: RETRY_DELAY_MS,
          eventBusMaxRetries: MAX_RETRIES,
          ...(backend.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {})
        },
        broker: { nodeID: `groups-${backend.redis ? "redis" : "memory"}-${randomUUID().slice(0, 8)}` }
      });
    });

    afterEach(async () => {
      for (const id of subscriptions.splice(0)) await unsubscribe(node.broker, id);
      for (const service of services.splice(0)) await node.broker.destroyService(service);
    });

    afterAll(async () => {
      await node.stop();
      if (backend.redis) await dropPrefix(prefix);
    });

    it("gives each event to exactly one member of a group, and to every group", async () => {
      const tenantId = fresh("share");
      const shared = fresh("workers");
      const byMember: Record<string, string[]> = { a: [], b: [] };
      const audit: string[] = [];
      const member = (key: "a" | "b") => async (event: StoredEvent) => {
        byMember[key].push(event.eventId);
        await settle(5);
      };
      await consumer(`${shared}-a`, { group: shared, tenantId, handler: member("a") });
      await consumer(`${shared}-b`, { group: shared, tenantId, handler: member("b") });
      await consumer(fresh("audit"), { group: fresh("audit-group"), tenantId, handler: event => void audit.push(event.eventId) });

      const published: string[] = [];
      for (let i = 0; i < 20; i++) published.push((await publish(node.broker, tenantId, "job.created", { payload: { i } })).eventId);

      await eventually(() => byMember.a.length + byMember.b.length >= 20 && audit.length >= 20, 5000, "20 events in each group");
      await settle(RETRY_DELAY_MS * 3);
      const group = [...byMember.a, ...byMember.b];
      expect(group.sort()).toEqual([...published].sort());
      expect(new Set(group).size).toBe(20);
      expect(byMember.a.length).toBeGreaterThan(0);
      expect(byMember.b.length).toBeGreaterThan(0);
      expect([...audit].sort()).toEqual([...published].sort());
    });

    it("subscribe() filters by tenant and event type", async () => {
      const tenantId = fresh("filter");
      const other = fresh("filter-other");
      const got: StoredEvent[] = [];
      const everything: StoredEvent[] = [];
      await subscribed({ subscriptionId: fresh("orders"), tenantId, eventTypes: ["order.*", "done"], consumerGroup: fresh("orders-group"), callback: e => void got.push(e) });
      // No tenant: an internal consumer of every tenant.
      await subscribed({ subscriptionId: fresh("all"), eventTypes: ["**"], consumerGroup: fresh("all-group"), callback: e => void everything.push(e) });

      await publish(node.broker, tenantId, "order.placed", { payload: { n: 1 } });
      await publish(node.broker, tenantId, "invoice.paid");
      await publish(node.broker, other, "order.placed");
      await publish(node.broker, tenantId, "order.placed.v2");
      await publish(node.broker, tenantId, "order.shipped", { payload: { n: 2 } });
      await publish(node.broker, tenantId, "done");

      await eventually(() => got.some(e => e.eventType === "done"), 5000, "the last matching event");
      await eventually(() => everything.filter(e => e.tenantId === tenantId || e.tenantId === other).length === 6, 5000, "all 6 events in the unfiltered group");
      expect(got.map(e => [e.tenantId, e.eventType])).toEqual([
        [tenantId, "order.placed"],
        [tenantId, "order.shipped"],
        [tenantId, "done"]
      ]);
      // The handler receives the stored event: the seed's shape plus its log position.
      expect(got[0]).toMatchObject({ tenantId, eventType: "order.placed", payload: { n: 1 }, schemaVersion: "1.0", position: expect.any(String), eventId: expect.any(String) });
    });

    it("retries a failing handler, which then succeeds", async () => {
      const tenantId = fresh("flaky");
      const attempts: number[] = [];
      const handled: string[] = [];
      const started = Date.now();
      await subscribed({
        subscriptionId: fresh("flaky"),
        tenantId,
        eventTypes: ["*"],
        consumerGroup: fresh("flaky-group"),
        callback: event => {
          attempts.push(Date.now() - started);
          if (attempts.length <= 2) throw new Error(`transient failure ${attempts.length}`);
          handled.push(event.eventId);
        }
      });
      const { eventId } = await publish(node.broker, tenantId, "payment.captured");
      await eventually(() => handled.length === 1, 5000, "success on the third attempt");
      expect(handled).toEqual([eventId]);
      expect(attempts).toHaveLength(3);
      // Retries wait: at least the retry delay between attempts.
      expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(RETRY_DELAY_MS - 20);
      expect(attempts[2] - attempts[1]).toBeGreaterThanOrEqual(RETRY_DELAY_MS - 20);
      await settle(RETRY_DELAY_MS * 3);
      expect(attempts).toHaveLength(3);
      expect((await deadLetters({ tenantId })).deadLetters).toEqual([]);
    });

    it("dead-letters after maxRetries attempts; operators list and redrive to the failing group only", async () => {
      const tenantId = fresh("poison");
      const group = fresh("poison-group");
      let broken = true;
      const attempts: string[] = [];
      const handled: string[] = [];
      const bystander: string[] = [];
      await subscribed({
        subscriptionId: fresh("poison"),
        tenantId,
        eventTypes: ["*"],
        consumerGroup: group,
        callback: event => {
          attempts.push(event.eventId);
          if (broken) throw new Error("cannot process");
          handled.push(event.eventId);
        }
      });
      await subscribed({ subscriptionId: fresh("bystander"), tenantId, eventTypes: ["*"], consumerGroup: fresh("bystander-group"), callback: e => void bystander.push(e.eventId) });

      const { eventId } = await publish(node.broker, tenantId, "report.generate", { payload: { big: true } });
      let listed: DeadLetter[] = [];
      await eventually(async () => (listed = (await deadLetters({ tenantId })).deadLetters).length === 1, 5000, "a dead letter");
      await settle(RETRY_DELAY_MS * 4);
      expect(attempts).toEqual(Array(MAX_RETRIES).fill(eventId));
      expect(bystander).toEqual([eventId]);

      const list = await deadLetters({ tenantId });
      expect(list.total).toBe(1);
      expect(list.deadLetters).toEqual([
        {
          id: expect.any(String),
          channel: "webwaka:events",
          group,
          deadLetteredAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
          attempts: MAX_RETRIES,
          error: "cannot process",
          tenantId,
          eventId,
          eventType: "report.generate",
          payload: expect.objectContaining({ eventId, tenantId, eventType: "report.generate", payload: { big: true }, position: expect.any(String) })
        }
      ]);
      expect(await deadLetters({ tenantId: fresh("nobody") })).toEqual({ deadLetters: [], total: 1 });
      expect(await stats()).toMatchObject({ status: "healthy", deadLetters: 1 });

      await expect(node.broker.call("eventbus.redrive", {})).rejects.toMatchObject({ type: "INVALID_REQUEST" });
      broken = false;
      const redriven = await node.broker.call<RedriveResult, object>("eventbus.redrive", { ids: [list.deadLetters[0].id] });
      expect(redriven).toEqual({ redriven: [list.deadLetters[0].id], skipped: [] });
      await eventually(() => handled.length === 1, 5000, "the redriven event handled");
      expect(handled).toEqual([eventId]);
      expect(await deadLetters({ tenantId })).toEqual({ deadLetters: [], total: 0 });
      expect(await stats()).toMatchObject({ deadLetters: 0 });
      // The group that had processed it does not see it again.
      await settle(RETRY_DELAY_MS * 2);
      expect(bystander).toEqual([eventId]);
      expect(handled).toEqual([eventId]);
    });

    it("stops delivering after unsubscribe", async () => {
      const tenantId = fresh("unsub");
      const got: string[] = [];
      const witness: string[] = [];
      const { subscriptionId } = await subscribe(node.broker, { subscriptionId: fresh("leaving"), tenantId, eventTypes: ["*"], consumerGroup: fresh("leaving-group"), callback: e => void got.push(e.eventId) });
      await subscribed({ subscriptionId: fresh("witness"), tenantId, eventTypes: ["*"], consumerGroup: fresh("witness-group"), callback: e => void witness.push(e.eventId) });
      const first = await publish(node.broker, tenantId, "tick");
      await eventually(() => got.length === 1, 5000, "the first event");
      expect(await unsubscribe(node.broker, subscriptionId)).toBe(true);
      expect(await unsubscribe(node.broker, subscriptionId)).toBe(false);
      const second = await publish(node.broker, tenantId, "tick");
      await eventually(() => witness.length === 2, 5000, "the second event in another group");
      await settle(RETRY_DELAY_MS * 2);
      expect(got).toEqual([first.eventId]);
      expect(witness).toEqual([first.eventId, second.eventId]);
    });

    it("makes publish fail when the channel refuses, and a retry with the same eventId delivers once", async () => {
      const tenantId = fresh("handoff");
      const got: string[] = [];
      await subscribed({ subscriptionId: fresh("handoff"), tenantId, eventTypes: ["*"], consumerGroup: fresh("handoff-group"), callback: e => void got.push(e.eventId) });
      const broker = node.broker as unknown as { sendToChannel: (...args: unknown[]) => Promise<void> };
      const original = broker.sendToChannel;
      broker.sendToChannel = () => Promise.reject(new Error("channel down"));
      try {
        await expect(publish(node.broker, tenantId, "order.placed", { eventId: "evt-handoff" })).rejects.toMatchObject({ type: "INTERNAL_ERROR", code: 503 });
      } finally {
        broker.sendToChannel = original;
      }
      const retried = await publish(node.broker, tenantId, "order.placed", { eventId: "evt-handoff" });
      expect(retried.duplicate).toBe(true);
      await eventually(() => got.length === 1, 5000, "the retried event");
      // A plain duplicate afterwards is not sent again.
      expect((await publish(node.broker, tenantId, "order.placed", { eventId: "evt-handoff" })).duplicate).toBe(true);
      const { eventId: sentinel } = await publish(node.broker, tenantId, "sentinel");
      await eventually(() => got.includes(sentinel), 5000, "the sentinel");
      expect(got).toEqual(["evt-handoff", sentinel]);
    });

    if (backend.redis) {
      it("keeps the events in a Redis stream under REDIS_KEY_PREFIX and reports consumer groups in stats", async () => {
        const tenantId = fresh("stream");
        const group = fresh("stream-group");
        const got: string[] = [];
        await subscribed({ subscriptionId: fresh("stream"), tenantId, eventTypes: ["*"], consumerGroup: group, callback: e => void got.push(e.eventId) });
        await publish(node.broker, tenantId, "x");
        await eventually(() => got.length === 1, 5000, "the event");
        const redis = new Redis(REDIS_URL);
        try {
          expect(await redis.xlen(`${prefix}:channels.webwaka:events`)).toBeGreaterThan(0);
        } finally {
          redis.disconnect();
        }
        const body = await stats();
        const groups = body.consumerGroups as Array<{ group: string; consumers: number; pending: number; lag: number | null }>;
        expect(groups).toEqual(expect.arrayContaining([expect.objectContaining({ group, consumers: 1, pending: 0, lag: 0 })]));
      });
    }
  });
}

describe("consumer groups across nodes (NATS transporter, Redis adapter)", () => {
  const namespace = `groups-${randomUUID().slice(0, 8)}`;
  const prefix = uniquePrefix("groups-nats");
  const config = { redisUrl: REDIS_URL, redisKeyPrefix: prefix, eventBusRetryDelayMs: RETRY_DELAY_MS };
  let publisher: TestNode;
  let consumerNode: TestNode;

  beforeAll(async () => {
    publisher = await startNode({ services: ["eventbus"], config, broker: { transporter: NATS_URL, namespace, nodeID: `publisher-${namespace}` } });
    consumerNode = await startNode({ services: [], config, broker: { transporter: NATS_URL, namespace, nodeID: `consumer-${namespace}` } });
    await consumerNode.broker.waitForServices(["eventbus"], 10_000);
  }, 20_000);

  afterAll(async () => {
    await consumerNode?.stop();
    await publisher?.stop();
    await dropPrefix(prefix);
  });

  it("delivers events published on one node to a consumer on another", async () => {
    const got: StoredEvent[] = [];
    const { subscriptionId } = await subscribe(consumerNode.broker, { subscriptionId: "remote", tenantId: "t-nats", eventTypes: ["order.*"], consumerGroup: "remote-group", callback: e => void got.push(e) });
    try {
      const local = await publish(publisher.broker, "t-nats", "order.placed", { payload: { via: "publisher" } });
      // Published from the consumer's node: the call crosses NATS to the eventbus node.
      const remote = await publish(consumerNode.broker, "t-nats", "order.shipped", { payload: { via: "consumer" } });
      await eventually(() => got.length === 2, 5000, "both events on the consumer node");
      expect(got.map(e => e.eventId)).toEqual([local.eventId, remote.eventId]);
      expect(got.map(e => e.payload)).toEqual([{ via: "publisher" }, { via: "consumer" }]);
    } finally {
      await unsubscribe(consumerNode.broker, subscriptionId);
    }
  });
});
