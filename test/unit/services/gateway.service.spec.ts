import type { ServiceBroker } from "moleculer";
import type { Socket } from "socket.io-client";
import type { Config } from "../../../lib/config";
import { createGatewayService } from "../../../services/gateway.service";
import { createPresenceService } from "../../../services/presence.service";
import { createRoomsService } from "../../../services/rooms.service";
import { createEventBusService } from "../../../services/eventbus.service";
import { connect, nextEvent } from "../../helpers/client";
import { REDIS_URL, uniquePrefix } from "../../helpers/redis";
import { TEST_SECRET, tokenFor } from "../../helpers/tokens";
import { ISO_DATE, asClient, callAs, eventually, newBroker, rejectionOf, settle, stopAll, testConfig, violationRecorder, type TenantViolationRecord } from "./support";

interface ServiceHealth {
  status: string;
  lastCheck: string;
  [key: string]: unknown;
}

interface HealthBody {
  status: "healthy" | "degraded" | "unhealthy";
  degradedBy?: string[];
  services: Record<string, ServiceHealth>;
  timestamp: string;
}

interface ConnectionsBody {
  nodeID: string;
  count: number;
  connections: Array<{ connectionId: string; clientId: string; tenantId: string; userId: string; rooms: string[]; connectedAt: string }>;
}

type Meta = { $statusCode?: number };

const brokers: ServiceBroker[] = [];

/** Starts one broker: the gateway with `gatewayConfig`, presence, rooms and eventbus (memory stores) when asked. */
async function startBroker(gatewayConfig: Config, options: { withPresenceAndRooms?: boolean; violations?: TenantViolationRecord[] } = {}) {
  const broker = newBroker();
  brokers.push(broker);
  broker.createService(createGatewayService(gatewayConfig));
  if (options.withPresenceAndRooms) {
    const servicesConfig = testConfig();
    broker.createService(createPresenceService(servicesConfig));
    broker.createService(createRoomsService(servicesConfig));
    broker.createService(createEventBusService(servicesConfig));
  }
  if (options.violations) broker.createService(violationRecorder(options.violations));
  await broker.start();
  return broker;
}

async function health(broker: ServiceBroker, meta: Meta = {}): Promise<HealthBody> {
  return callAs<HealthBody>(broker, "gateway.health", {}, { meta });
}

/** Rejects when `promise` takes longer than `ms`: a hanging health check must fail, not stall the run. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe("health with Redis", () => {
  afterEach(() => stopAll(brokers));

  it("is degraded, not failing nor hanging, when Redis is unreachable", async () => {
    // Only the gateway uses the unreachable Redis; presence and rooms are up, so Redis alone degrades it.
    const broker = await startBroker(testConfig({ redisUrl: "redis://127.0.0.1:6390" }), { withPresenceAndRooms: true });
    const started = Date.now();
    const meta: Meta = {};
    const body = await within(3000, health(broker, meta));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(body.status).toBe("degraded");
    expect(body.services.redis).toMatchObject({ status: "unhealthy", error: expect.any(String), lastCheck: expect.stringMatching(ISO_DATE) });
    expect(body.services.presence.status).toBe("healthy");
    expect(body.services.rooms.status).toBe("healthy");
    expect(meta.$statusCode).toBeUndefined();
    await stopAll(brokers);
  });

  it("reports a reachable Redis as healthy with its latency", async () => {
    const broker = await startBroker(testConfig({ redisUrl: REDIS_URL, redisKeyPrefix: uniquePrefix("gateway-health") }), { withPresenceAndRooms: true });
    // The client connects in the background after start; until then Redis is (correctly) unhealthy.
    let body: HealthBody | undefined;
    await eventually(
      async () => {
        body = await health(broker);
        return body.services.redis?.status === "healthy";
      },
      3000,
      "Redis to be reported healthy"
    );
    expect(body?.status).toBe("healthy");
    expect(body?.services.redis).toEqual({ status: "healthy", latency: expect.any(Number), lastCheck: expect.stringMatching(ISO_DATE) });
    expect(body?.services.redis.latency).toBeGreaterThanOrEqual(0);
  });
});

describe("gateway alone", () => {
  let broker: ServiceBroker;
  const violations: TenantViolationRecord[] = [];

  beforeAll(async () => {
    broker = await startBroker(testConfig(), { violations });
  });
  afterAll(() => stopAll(brokers));
  beforeEach(() => {
    violations.length = 0;
  });

  describe("gateway.send", () => {
    it("accepts exactly one target and answers which", async () => {
      expect(await broker.call("gateway.send", { tenantId: "t1", userId: "u1", event: "notice" })).toEqual({ event: "notice", target: { userId: "u1" } });
      expect(await broker.call("gateway.send", { tenantId: "t1", roomId: "r1", event: "a.b:c-d_e" })).toEqual({ event: "a.b:c-d_e", target: { roomId: "r1" } });
      expect(await broker.call("gateway.send", { tenantId: "t1", connectionId: "c1", event: "e" })).toEqual({ event: "e", target: { connectionId: "c1" } });
      expect(await broker.call("gateway.send", { tenantId: "t1", all: true, event: "e" })).toEqual({ event: "e", target: { tenant: true } });
    });

    it.each([
      ["no target", { tenantId: "t1", event: "notice" }],
      ["userId and roomId", { tenantId: "t1", userId: "u1", roomId: "r1", event: "notice" }],
      ["connectionId and all", { tenantId: "t1", connectionId: "c1", all: true, event: "notice" }]
    ])("refuses %s with INVALID_REQUEST", async (_label, params) => {
      const err = await rejectionOf(broker.call("gateway.send", params));
      expect(err).toMatchObject({ type: "INVALID_REQUEST", code: 400 });
    });

    it.each(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"])(
      "refuses the Socket.IO reserved event name %s",
      async event => {
        const err = await rejectionOf(broker.call("gateway.send", { tenantId: "t1", userId: "u1", event }));
        expect(err).toMatchObject({ type: "INVALID_REQUEST", code: 400 });
        expect(err.message).toContain(event);
      }
    );

    it.each([
      ["a missing tenantId", { userId: "u1", event: "notice" }],
      ["an empty tenantId", { tenantId: "", userId: "u1", event: "notice" }],
      ["a missing event", { tenantId: "t1", userId: "u1" }],
      ["an event with a space", { tenantId: "t1", userId: "u1", event: "bad event" }],
      ["an event longer than 64", { tenantId: "t1", userId: "u1", event: "e".repeat(65) }],
      ["all: false", { tenantId: "t1", all: false, event: "notice" }],
      ["a non-boolean volatile", { tenantId: "t1", userId: "u1", event: "notice", volatile: "yes" }]
    ])("refuses %s with VALIDATION_ERROR", async (_label, params) => {
      const err = await rejectionOf(broker.call("gateway.send", params));
      expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
    });

    it("refuses a client of another tenant and reports it", async () => {
      const err = await rejectionOf(broker.call("gateway.send", { tenantId: "t2", all: true, event: "notice" }, asClient("t1", "u1")));
      expect(err).toMatchObject({ type: "TENANT_VIOLATION", code: 403 });
      await eventually(() => violations.length === 1, 1000, "violation event");
      expect(violations[0]).toMatchObject({ tenantId: "t1", userId: "u1", requestedTenantId: "t2", action: "gateway.send" });
    });

    it("lets a client of the same tenant send", async () => {
      await expect(broker.call("gateway.send", { tenantId: "t1", all: true, event: "notice" }, asClient("t1", "u1"))).resolves.toEqual({ event: "notice", target: { tenant: true } });
      await settle();
      expect(violations).toEqual([]);
    });
  });

  describe("health", () => {
    it("is degraded with presence and rooms missing, in the seed shape, without a 503", async () => {
      const meta: Meta = {};
      const body = await health(broker, meta);
      expect(Object.keys(body).sort()).toEqual(["degradedBy", "services", "status", "timestamp"]);
      expect(body.status).toBe("degraded");
      expect(body.degradedBy).toEqual(["eventbus", "presence", "rooms"]);
      expect(body.timestamp).toMatch(ISO_DATE);
      expect(Object.keys(body.services).sort()).toEqual(["eventbus", "presence", "rooms", "websocket"]);
      expect(body.services.websocket).toMatchObject({ status: "healthy", activeConnections: 0, lastCheck: expect.stringMatching(ISO_DATE) });
      expect(body.services.presence).toEqual({ status: "unhealthy", lastCheck: expect.stringMatching(ISO_DATE) });
      expect(body.services.rooms).toEqual({ status: "unhealthy", lastCheck: expect.stringMatching(ISO_DATE) });
      expect(body.services.eventbus).toEqual({ status: "unhealthy", lastCheck: expect.stringMatching(ISO_DATE) });
      expect(meta.$statusCode).toBeUndefined();
    });

    it("gateway.live answers ok with the node id", async () => {
      expect(await broker.call("gateway.live")).toEqual({ status: "ok", nodeID: broker.nodeID, timestamp: expect.stringMatching(ISO_DATE) });
    });

    it("gateway.ready answers ready below the connection limit", async () => {
      const meta: Meta = {};
      expect(await broker.call("gateway.ready", {}, { meta })).toEqual({
        status: "ready",
        activeConnections: 0,
        maxConnections: 50000,
        timestamp: expect.stringMatching(ISO_DATE)
      });
      expect(meta.$statusCode).toBeUndefined();
    });

    it("gateway.connections lists nothing without clients", async () => {
      expect(await broker.call("gateway.connections", {})).toEqual({ nodeID: broker.nodeID, count: 0, connections: [] });
      expect(await broker.call("gateway.connections", { tenantId: "t1" })).toEqual({ nodeID: broker.nodeID, count: 0, connections: [] });
    });
  });
});

describe("gateway with presence and rooms", () => {
  afterEach(() => stopAll(brokers));

  it("is healthy", async () => {
    const broker = await startBroker(testConfig(), { withPresenceAndRooms: true });
    const body = await health(broker);
    expect(body.status).toBe("healthy");
    expect(body.services.presence.status).toBe("healthy");
    expect(body.services.rooms.status).toBe("healthy");
    expect(body.services.eventbus).toMatchObject({ status: "healthy", eventsPerSecond: 0, backend: "memory" });
    expect(body.services.redis).toBeUndefined();
  });

  it("reports unhealthy with 503, and not ready, once it stops accepting connections (shutdown)", async () => {
    const broker = await startBroker(testConfig(), { withPresenceAndRooms: true });
    const gateway = broker.getLocalService("gateway") as unknown as { accepting: boolean };
    gateway.accepting = false;
    const healthMeta: Meta = {};
    const body = await health(broker, healthMeta);
    expect(body.status).toBe("unhealthy");
    expect(body.services.websocket.status).toBe("unhealthy");
    expect(healthMeta.$statusCode).toBe(503);
    const readyMeta: Meta = {};
    expect(await broker.call("gateway.ready", {}, { meta: readyMeta })).toMatchObject({ status: "not_ready" });
    expect(readyMeta.$statusCode).toBe(503);
    gateway.accepting = true;
  });
});

describe("delivery to connected clients", () => {
  let broker: ServiceBroker;
  let url: string;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    broker = await startBroker(testConfig({ jwtSecret: TEST_SECRET, wsMaxConnections: 2 }), { withPresenceAndRooms: true });
    const gateway = broker.getLocalService("gateway") as unknown as { server: { address(): { port: number } } };
    url = `http://127.0.0.1:${gateway.server.address().port}`;
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await stopAll(brokers);
  });

  it("pushes gateway.send to the target's sockets of the named tenant only, and lists connections", async () => {
    const a = await connect(url, tokenFor("t1", "u1"), { clientId: "client-a" });
    sockets.push(a.socket);
    const b = await connect(url, tokenFor("t2", "u1"));
    sockets.push(b.socket);
    const aId = (a.connected as { connectionId: string }).connectionId;
    const bId = (b.connected as { connectionId: string }).connectionId;
    expect(typeof aId === "string" && typeof bId === "string").toBe(true);
    const seenByB: unknown[] = [];
    b.socket.on("notice", (payload: unknown) => seenByB.push(payload));

    const toA = nextEvent<unknown>(a.socket, "notice");
    await broker.call("gateway.send", { tenantId: "t1", userId: "u1", event: "notice", payload: { n: 1 } });
    expect(await toA).toEqual({ n: 1 });

    // a connection id of another tenant is not reachable by naming it under t1
    await broker.call("gateway.send", { tenantId: "t1", connectionId: bId, event: "notice", payload: { n: 2 } });
    const toAll = nextEvent<unknown>(a.socket, "notice");
    await broker.call("gateway.send", { tenantId: "t1", all: true, event: "notice" });
    expect(await toAll).toBeNull();
    await settle(100);
    expect(seenByB).toEqual([]);

    const toB = nextEvent<unknown>(b.socket, "notice");
    await broker.call("gateway.send", { tenantId: "t2", connectionId: bId, event: "notice", payload: "direct" });
    expect(await toB).toBe("direct");

    const all = await callAs<ConnectionsBody>(broker, "gateway.connections", {});
    expect(all.count).toBe(2);
    const t1 = await callAs<ConnectionsBody>(broker, "gateway.connections", { tenantId: "t1" });
    expect(t1).toEqual({
      nodeID: broker.nodeID,
      count: 1,
      connections: [{ namespace: "/", connectionId: aId, clientId: "client-a", tenantId: "t1", userId: "u1", rooms: [], connectedAt: expect.stringMatching(ISO_DATE) }]
    });

    // registered with presence, and the node is full at WS_MAX_CONNECTIONS = 2
    await eventually(async () => (await callAs<{ status: string }>(broker, "presence.get", { tenantId: "t1", userId: "u1" })).status === "online", 1000, "presence");
    const meta: Meta = {};
    expect(await broker.call("gateway.ready", {}, { meta })).toMatchObject({ status: "not_ready", activeConnections: 2, maxConnections: 2 });
    expect(meta.$statusCode).toBe(503);
    expect((await health(broker)).services.websocket.activeConnections).toBe(2);
  });
});

describe("the gateway's Socket.IO namespaces", () => {
  it("have only the gateway's own event handlers, so nothing reads the principal moleculer-io would keep on socket.client", () => {
    const schema = createGatewayService(testConfig());
    const namespaces = (schema.settings as { io: { namespaces: Record<string, { events?: Record<string, unknown> }> } }).io.namespaces;
    expect(Object.keys(namespaces).length).toBeGreaterThan(0);
    for (const [name, namespace] of Object.entries(namespaces)) {
      for (const [event, handler] of Object.entries(namespace.events ?? {})) expect([name, event, typeof handler]).toEqual([name, event, "function"]);
    }
    expect((schema.actions as Record<string, unknown>).call).toBe(false);
  });
});
