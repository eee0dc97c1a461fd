import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, nextEvent, recorder, request, settle, socketTo } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";
import { comparePositions } from "../../stores/event-log";
import { fetchJson } from "../helpers/http";

/**
 * The stream end to end on one node: publishing, realtime delivery with positions, polling and
 * Socket.IO resume from a cursor. Runs on the embedded memory log and on Redis Streams.
 */
const backends = [
  { name: "memory log", redis: false },
  { name: "Redis Streams", redis: true }
];

for (const backend of backends) {
  describe(`event bus (${backend.name})`, () => {
    let node: TestNode;
    const prefix = uniquePrefix("bus");
    const sockets: Socket[] = [];
    let tenantSeq = 0;
    /** A fresh tenant per test keeps logs independent. */
    const freshTenant = () => `bus-${backend.redis ? "r" : "m"}-${++tenantSeq}`;

    async function client(tenantId: string, userId: string, auth: Record<string, unknown> = {}) {
      const { socket, connected } = await connectWith(tenantId, userId, auth);
      sockets.push(socket);
      return { socket, connected };
    }

    function connectWith(tenantId: string, userId: string, auth: Record<string, unknown>) {
      // socket.io-client takes extra handshake fields next to the token.
      return connect(node.url, tokenFor(tenantId, userId), { auth });
    }

    async function publish(tenantId: string, event: Record<string, unknown>) {
      return node.broker.call<{ eventId: string; position: string; duplicate: boolean }, object>("eventbus.publish", { tenantId, ...event });
    }

    async function poll(tenantId: string, userId: string, query: string) {
      return fetchJson(`${node.url}/api/events/poll${query}`, {
        headers: { Authorization: `Bearer ${tokenFor(tenantId, userId)}`, "X-Tenant-ID": tenantId }
      });
    }

    beforeAll(async () => {
      node = await startNode({
        config: { pollRateLimit: 1000, ...(backend.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {}) }
      });
    });
    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });
    afterAll(async () => {
      await node.stop();
      if (backend.redis) await dropPrefix(prefix);
    });

    describe("publish", () => {
      it("stores the seed's event shape, pushes it to the tenant with its position, idempotently", async () => {
        const t = freshTenant();
        const { socket } = await client(t, "u1");
        const { socket: other } = await client(freshTenant(), "u1");
        const leaked = recorder(other, "event");
        const got = nextEvent(socket, "event");
        const first = await publish(t, { eventId: "evt-1", eventType: "order.placed", payload: { orderId: "o-1" }, metadata: { source: "orders" } });
        expect(first.duplicate).toBe(false);
        expect(await got).toMatchObject({
          eventId: "evt-1",
          eventType: "order.placed",
          tenantId: t,
          payload: { orderId: "o-1" },
          metadata: { source: "orders" },
          schemaVersion: "1.0",
          position: first.position
        });
        const again = await publish(t, { eventId: "evt-1", eventType: "order.placed", payload: { orderId: "changed" } });
        expect(again).toEqual({ eventId: "evt-1", position: first.position, duplicate: true });
        await settle();
        expect(leaked).toEqual([]);
      });

      it("targets a user or a room when the event names an audience", async () => {
        const t = freshTenant();
        const { socket: alice } = await client(t, "alice");
        const { socket: bob } = await client(t, "bob");
        await request(bob, "join_room", { roomId: "ops" });
        const aliceGot = recorder(alice, "event");
        const bobGot = recorder(bob, "event");
        await publish(t, { eventType: "note", audience: { userId: "alice" }, payload: 1 });
        await publish(t, { eventType: "note", audience: { roomId: "ops" }, payload: 2 });
        await eventually(() => aliceGot.length === 1 && bobGot.length === 1, 3000, "targeted events");
        expect(aliceGot[0].payload).toBe(1);
        expect(bobGot[0].payload).toBe(2);
      });

      it("is offered over REST to service tokens only, within their tenant", async () => {
        const t = freshTenant();
        const post = (token: string, tenantHeader: string, body: unknown) =>
          fetch(`${node.url}/api/events/publish`, {
            method: "POST",
            headers: { Authorization: `Bearer ${token}`, "X-Tenant-ID": tenantHeader, "Content-Type": "application/json" },
            body: JSON.stringify(body)
          });
        const ok = await post(tokenFor(t, "orders-svc", { role: "service" }), t, { eventType: "order.placed", payload: { id: 1 } });
        expect(ok.status).toBe(200);
        expect(await ok.json()).toMatchObject({ position: expect.any(String), duplicate: false });
        const user = await post(tokenFor(t, "someone"), t, { eventType: "order.placed" });
        expect(user.status).toBe(403);
        expect(await user.json()).toMatchObject({ code: "AUTHZ_FAILED" });
        const crossed = await post(tokenFor(t, "orders-svc", { role: "service" }), t, { eventType: "x", tenantId: "someone-else" });
        expect(crossed.status).toBe(403);
        expect(await crossed.json()).toMatchObject({ code: "TENANT_VIOLATION" });
        const invalid = await post(tokenFor(t, "orders-svc", { role: "service" }), t, { eventType: "has spaces" });
        expect(invalid.status).toBe(400);
        expect(await invalid.json()).toMatchObject({ code: "INVALID_REQUEST" });
      });
    });

    describe("class B and C messages", () => {
      it("are acknowledged with the position they were logged at; class A is not logged", async () => {
        const t = freshTenant();
        const { socket: alice } = await client(t, "alice");
        const { socket: bob } = await client(t, "bob");
        const got = nextEvent(bob, "message");
        const ack = await request(alice, "message", { type: "chat", recipientId: "bob", payload: "hi" });
        expect(ack.position).toEqual(expect.any(String));
        expect(await got).toMatchObject({ messageId: ack.messageId, position: ack.position, senderId: "alice" });
        const volatileAck = await request(alice, "message", { type: "typing", interactionClass: "CLASS_A", recipientId: "bob", payload: null });
        expect(volatileAck.position).toBeUndefined();
      });
    });

    describe("GET /api/events/poll", () => {
      it("pages through what the user may see, from a cursor", async () => {
        const t = freshTenant();
        const positions: string[] = [];
        for (let i = 0; i < 5; i++) positions.push((await publish(t, { eventType: "tick", payload: i })).position);
        await publish(t, { eventType: "private", audience: { userId: "someone-else" }, payload: "hidden" });

        const all = await poll(t, "u1", "");
        expect(all.status).toBe(200);
        expect(all.body.events.map((e: { payload: unknown }) => e.payload)).toEqual([0, 1, 2, 3, 4]);
        expect(all.body.hasMore).toBe(false);

        const page = await poll(t, "u1", "?limit=2");
        expect(page.body.events.map((e: { payload: unknown }) => e.payload)).toEqual([0, 1]);
        expect(page.body).toMatchObject({ hasMore: true, nextEventId: positions[1] });
        const rest = await poll(t, "u1", `?lastEventId=${encodeURIComponent(page.body.nextEventId)}`);
        expect(rest.body.events.map((e: { payload: unknown }) => e.payload)).toEqual([2, 3, 4]);

        const nothing = await poll(t, "u1", `?lastEventId=${encodeURIComponent(rest.body.nextEventId)}`);
        expect(nothing.body.events).toEqual([]);
        expect(comparePositions(nothing.body.nextEventId, positions[4])).toBeGreaterThanOrEqual(0);

        const otherTenant = await poll(freshTenant(), "u1", "");
        expect(otherTenant.body.events).toEqual([]);
      });

      it("long-polls: returns as soon as an event arrives", async () => {
        const t = freshTenant();
        const head = (await publish(t, { eventType: "tick", payload: 0 })).position;
        const started = Date.now();
        const pending = poll(t, "u1", `?lastEventId=${encodeURIComponent(head)}&wait=10`);
        await new Promise(r => setTimeout(r, 300));
        await publish(t, { eventType: "tick", payload: 1 });
        const res = await pending;
        expect(res.body.events.map((e: { payload: unknown }) => e.payload)).toEqual([1]);
        expect(Date.now() - started).toBeLessThan(3000);
      });

      it("long-polls: answers empty when nothing arrives within `wait`", async () => {
        const t = freshTenant();
        const head = (await publish(t, { eventType: "tick", payload: 0 })).position;
        const started = Date.now();
        const res = await poll(t, "u1", `?lastEventId=${encodeURIComponent(head)}&wait=1`);
        expect(res.body).toMatchObject({ events: [], hasMore: false, nextEventId: head });
        expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      });

      it("says when a cursor can no longer be served", async () => {
        const t = freshTenant();
        await publish(t, { eventType: "tick", payload: 0 });
        const res = await poll(t, "u1", "?lastEventId=not-a-position");
        expect(res.body).toMatchObject({ events: [], historyLost: true });
      });

      it("validates its query", async () => {
        const res = await poll(freshTenant(), "u1", "?limit=5000");
        expect(res.status).toBe(400);
        expect(res.body.code).toBe("INVALID_REQUEST");
      });
    });

    describe("Socket.IO resume with auth.lastEventId", () => {
      it("replays every missed event exactly once, in order, then continues live", async () => {
        const t = freshTenant();
        const { socket: sender } = await client(t, "sender");
        await request(sender, "join_room", { roomId: "team" });
        const { socket: first } = await client(t, "reader", { rooms: ["team"] });
        const seen = nextEvent(first, "message");
        const lastAck = await request(sender, "message", { type: "chat", roomId: "team", payload: "before" });
        expect((await seen).position).toBe(lastAck.position);
        first.close();

        // Missed while away: room messages, a direct message, tenant events; and traffic for others.
        const missed: string[] = [];
        for (let i = 0; i < 30; i++) {
          const kind = i % 3;
          if (kind === 0) missed.push((await request(sender, "message", { type: "chat", roomId: "team", payload: i })).position);
          if (kind === 1) missed.push((await request(sender, "message", { type: "chat", recipientId: "reader", payload: i })).position);
          if (kind === 2) missed.push((await publish(t, { eventType: "tick", payload: i })).position);
          await request(sender, "message", { type: "chat", recipientId: "not-the-reader", payload: i });
        }

        // Keep publishing while the reader reconnects, so replay and live traffic overlap.
        const racing = (async () => {
          const positions: string[] = [];
          for (let i = 0; i < 40; i++) positions.push((await publish(t, { eventType: "live", payload: i })).position);
          return positions;
        })();
        // Listeners go on before the handshake: the replay follows `connected` immediately.
        const second = socketTo(node.url, tokenFor(t, "reader"), { auth: { lastEventId: lastAck.position, rooms: ["team"] } });
        sockets.push(second);
        const received: string[] = [];
        second.on("message", (m: { position: string }) => received.push(m.position));
        second.on("event", (e: { position: string }) => received.push(e.position));
        const connected = await nextEvent(second, "connected", 5000);
        const racedPositions = await racing;
        expect(connected.recovered).toBe(true);
        expect(connected.rooms).toEqual(["team"]);

        const expected = [...missed, ...racedPositions];
        await eventually(() => received.length >= expected.length, 5000, `${expected.length} events`);
        await settle(200);
        expect(received).toEqual(expected);

        const live = nextEvent(second, "message");
        const liveAck = await request(sender, "message", { type: "chat", roomId: "team", payload: "after" });
        expect((await live).position).toBe(liveAck.position);
      });

      it("answers recovered: false when the cursor cannot be served", async () => {
        const t = freshTenant();
        await publish(t, { eventType: "tick", payload: 0 });
        const { connected } = await client(t, "reader", { lastEventId: "zzz.1" });
        expect(connected.recovered).toBe(false);
        expect(typeof connected.lastEventId).toBe("string");
      });

      it("refuses a malformed resume handshake", async () => {
        await expect(connectWith(freshTenant(), "reader", { rooms: "not-a-list" })).rejects.toMatchObject({ data: { code: "INVALID_REQUEST" } });
      });
    });
  });
}

describe("event bus limits", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ services: ["gateway", "rooms", "eventbus"], config: { eventBusPublishRateLimit: 3, pollRateLimit: 2 } });
  });
  afterAll(() => node.stop());

  it("refuses publishes past EVENT_BUS_PUBLISH_RATE_LIMIT per tenant and second (429 over REST)", async () => {
    for (let i = 0; i < 3; i++) await node.broker.call("eventbus.publish", { tenantId: "lim-1", eventType: "tick", payload: i });
    await expect(node.broker.call("eventbus.publish", { tenantId: "lim-1", eventType: "tick" })).rejects.toMatchObject({ type: "RATE_LIMIT" });
    // Another tenant has its own budget.
    await node.broker.call("eventbus.publish", { tenantId: "lim-2", eventType: "tick" });
    const res = await fetch(`${node.url}/api/events/publish`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor("lim-1", "svc", { role: "service" })}`, "X-Tenant-ID": "lim-1", "Content-Type": "application/json" },
      body: JSON.stringify({ eventType: "tick" })
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).not.toBeNull();
  });

  it("refuses polls past POLL_RATE_LIMIT per user and minute", async () => {
    const pollOnce = () =>
      fetch(`${node.url}/api/events/poll`, { headers: { Authorization: `Bearer ${tokenFor("lim-3", "poller")}`, "X-Tenant-ID": "lim-3" } });
    expect((await pollOnce()).status).toBe(200);
    expect((await pollOnce()).status).toBe(200);
    const third = await pollOnce();
    expect(third.status).toBe(429);
    expect(((await third.json()) as { code: string }).code).toBe("RATE_LIMIT");
  });
});
