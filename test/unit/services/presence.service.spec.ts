import { ServiceBroker } from "moleculer";
import type { Config } from "../../../lib/config";
import type { Delivery } from "../../../lib/delivery";
import { createPresenceService } from "../../../services/presence.service";
import { createRoomsService } from "../../../services/rooms.service";
import {
  ISO_DATE,
  asClient,
  callAs,
  deliveryRecorder,
  eventually,
  newBroker,
  rejectionOf,
  settle,
  stopAll,
  testConfig,
  violationRecorder,
  type TenantViolationRecord
} from "./support";

interface PresenceView {
  userId: string;
  status: string;
  metadata?: Record<string, unknown>;
  lastSeen: string | null;
}

interface StoredPresence extends PresenceView {
  connections: number;
}

interface ConnRef {
  tenantId: string;
  userId: string;
  connectionId: string;
}

const brokers: ServiceBroker[] = [];
let broker: ServiceBroker;
let deliveries: Delivery[];
let violations: TenantViolationRecord[];

async function startBroker(config: Config = testConfig(), withRooms = true): Promise<ServiceBroker> {
  const b = newBroker();
  brokers.push(b);
  b.createService(createPresenceService(config));
  if (withRooms) b.createService(createRoomsService(config));
  b.createService(deliveryRecorder(deliveries));
  b.createService(violationRecorder(violations));
  await b.start();
  return b;
}

const connect = (tenantId: string, userId: string, connectionId: string, nodeId = "gw-1") =>
  broker.call<StoredPresence, ConnRef & { nodeId: string }>("presence.connect", { tenantId, userId, connectionId, nodeId });
const disconnect = (tenantId: string, userId: string, connectionId: string) =>
  broker.call<StoredPresence, ConnRef>("presence.disconnect", { tenantId, userId, connectionId });
const join = (tenantId: string, roomId: string, userId: string, connectionId: string, nodeId = "gw-1") =>
  broker.call("rooms.join", { tenantId, roomId, userId, connectionId, nodeId });
const get = (tenantId: string, userId: string) => broker.call<PresenceView, { tenantId: string; userId: string }>("presence.get", { tenantId, userId });

beforeEach(async () => {
  deliveries = [];
  violations = [];
  broker = await startBroker();
});

afterEach(() => stopAll(brokers));

describe("presence.connect / presence.disconnect", () => {
  it("marks the user online without a push when the user is in no room", async () => {
    const presence = await connect("t1", "u1", "c1");
    expect(presence).toMatchObject({ userId: "u1", status: "online", connections: 1 });
    expect(presence.lastSeen).toMatch(ISO_DATE);
    await settle();
    expect(deliveries).toEqual([]);
    expect(await get("t1", "u1")).toEqual({ userId: "u1", status: "online", lastSeen: presence.lastSeen });
  });

  it("pushes `presence` to the user's rooms when the first device connects, not for the second", async () => {
    await join("t1", "r1", "u1", "c1");
    await join("t1", "r2", "u1", "c1");
    const first = await connect("t1", "u1", "c1");
    await eventually(() => deliveries.length === 1, 1000, "online push");
    expect(deliveries[0]).toEqual({
      tenantId: "t1",
      target: { roomIds: expect.arrayContaining(["r1", "r2"]) },
      event: "presence",
      payload: { userId: "u1", status: "online", lastSeen: first.lastSeen },
      volatile: true
    });
    expect((deliveries[0].target as { roomIds: string[] }).roomIds).toHaveLength(2);

    const second = await connect("t1", "u1", "c2");
    expect(second).toMatchObject({ status: "online", connections: 2 });
    await settle();
    expect(deliveries).toHaveLength(1);
  });

  it("asks another node's rooms service through rooms.ofUsers when this node has none", async () => {
    // Presence here, rooms on a second node: the lookup is an action call over the transporter.
    const transporter = `Fake`;
    const namespace = `presence-remote-${process.pid}-${Date.now()}`;
    const presenceNode = new ServiceBroker({ logger: false, nodeID: "presence-node", namespace, transporter });
    const roomsNode = new ServiceBroker({ logger: false, nodeID: "rooms-node", namespace, transporter });
    brokers.push(presenceNode, roomsNode);
    const config = testConfig();
    presenceNode.createService(createPresenceService(config));
    presenceNode.createService(deliveryRecorder(deliveries));
    presenceNode.createService(violationRecorder(violations));
    roomsNode.createService(createRoomsService(config));
    await Promise.all([presenceNode.start(), roomsNode.start()]);
    await presenceNode.waitForServices(["rooms"], 5000);
    expect(presenceNode.getLocalService("rooms")).toBeFalsy();

    await roomsNode.call("rooms.join", { tenantId: "t1", roomId: "r9", userId: "u9", connectionId: "c9", nodeId: "gw-1" });
    await presenceNode.call("presence.connect", { tenantId: "t1", userId: "u9", connectionId: "c9", nodeId: "gw-1" });
    await eventually(() => deliveries.some(d => d.event === "presence"), 2000, "online push via the remote rooms service");
    expect(deliveries.find(d => d.event === "presence")).toMatchObject({ tenantId: "t1", target: { roomIds: ["r9"] }, payload: { userId: "u9", status: "online" } });
  });

  it("is idempotent per connection id", async () => {
    await join("t1", "r1", "u1", "c1");
    await connect("t1", "u1", "c1");
    const again = await connect("t1", "u1", "c1");
    expect(again.connections).toBe(1);
    await settle();
    expect(deliveries).toHaveLength(1);
  });

  it("pushes offline only when the last device disconnects", async () => {
    await join("t1", "r1", "u1", "c1");
    await connect("t1", "u1", "c1");
    await connect("t1", "u1", "c2");
    await eventually(() => deliveries.length === 1, 1000, "online push");

    const afterFirst = await disconnect("t1", "u1", "c2");
    expect(afterFirst).toMatchObject({ status: "online", connections: 1 });
    await settle();
    expect(deliveries).toHaveLength(1);

    const afterLast = await disconnect("t1", "u1", "c1");
    expect(afterLast).toMatchObject({ userId: "u1", status: "offline", connections: 0 });
    await eventually(() => deliveries.length === 2, 1000, "offline push");
    expect(deliveries[1]).toEqual({
      tenantId: "t1",
      target: { roomIds: ["r1"] },
      event: "presence",
      payload: { userId: "u1", status: "offline", lastSeen: afterLast.lastSeen },
      volatile: true
    });
    expect(await get("t1", "u1")).toEqual({ userId: "u1", status: "offline", lastSeen: afterLast.lastSeen });
  });

  it("ignores a disconnect of an unknown connection", async () => {
    await join("t1", "r1", "u1", "c1");
    await connect("t1", "u1", "c1");
    await eventually(() => deliveries.length === 1, 1000, "online push");
    const result = await disconnect("t1", "u1", "nope");
    expect(result).toMatchObject({ status: "online", connections: 1 });
    await settle();
    expect(deliveries).toHaveLength(1);
  });

  it("keeps tenants apart: the same user id in another tenant is another user", async () => {
    await join("t1", "r1", "u1", "c1");
    await connect("t1", "u1", "c1");
    expect(await get("t2", "u1")).toEqual({ userId: "u1", status: "offline", lastSeen: null });
    await eventually(() => deliveries.length === 1, 1000, "online push");
    expect(deliveries[0].tenantId).toBe("t1");
  });

  it("still registers presence when the rooms service is missing (the push is best effort)", async () => {
    await stopAll(brokers);
    broker = await startBroker(testConfig(), false);
    const presence = await connect("t1", "u1", "c1");
    expect(presence).toMatchObject({ status: "online", connections: 1 });
    await settle();
    expect(deliveries).toEqual([]);
  });
});

describe("presence.update", () => {
  beforeEach(async () => {
    await join("t1", "r1", "u1", "c1");
    await connect("t1", "u1", "c1");
    await eventually(() => deliveries.length === 1, 1000, "online push");
    deliveries.length = 0;
  });

  it("pushes a status change with its metadata, and nothing for the same status again", async () => {
    const away = await callAs<StoredPresence>(broker, "presence.update", { tenantId: "t1", userId: "u1", status: "away", metadata: { text: "lunch" } });
    expect(away).toMatchObject({ status: "away", metadata: { text: "lunch" } });
    await eventually(() => deliveries.length === 1, 1000, "away push");
    expect(deliveries[0]).toEqual({
      tenantId: "t1",
      target: { roomIds: ["r1"] },
      event: "presence",
      payload: { userId: "u1", status: "away", metadata: { text: "lunch" }, lastSeen: away.lastSeen },
      volatile: true
    });

    await broker.call("presence.update", { tenantId: "t1", userId: "u1", status: "away", metadata: { text: "lunch" } });
    await settle();
    expect(deliveries).toHaveLength(1);

    await broker.call("presence.update", { tenantId: "t1", userId: "u1", status: "away", metadata: { text: "meeting" } });
    await eventually(() => deliveries.length === 2, 1000, "metadata push");
    expect(deliveries[1].payload).toMatchObject({ status: "away", metadata: { text: "meeting" } });

    expect(await get("t1", "u1")).toEqual({ userId: "u1", status: "away", metadata: { text: "meeting" }, lastSeen: expect.stringMatching(ISO_DATE) });
  });

  it("does not bring a disconnected user back online", async () => {
    const result = await callAs<StoredPresence>(broker, "presence.update", { tenantId: "t1", userId: "ghost", status: "online" });
    expect(result).toMatchObject({ userId: "ghost", status: "offline", connections: 0 });
    await settle();
    expect(deliveries).toEqual([]);
  });

  it("refuses an unknown status and a non-object metadata", async () => {
    const badStatus = await rejectionOf(broker.call("presence.update", { tenantId: "t1", userId: "u1", status: "busy" }));
    expect(badStatus.type).toBe("VALIDATION_ERROR");
    const badMeta = await rejectionOf(broker.call("presence.update", { tenantId: "t1", userId: "u1", status: "away", metadata: "text" }));
    expect(badMeta.type).toBe("VALIDATION_ERROR");
    await settle();
    expect(deliveries).toEqual([]);
  });
});

describe("presence.get / presence.getMany", () => {
  it("returns exactly {userId, status, lastSeen} (and metadata when set), never the connection count", async () => {
    const stored = await connect("t1", "u1", "c1");
    const view = await get("t1", "u1");
    expect(Object.keys(view).sort()).toEqual(["lastSeen", "status", "userId"]);
    expect(view).toEqual({ userId: "u1", status: "online", lastSeen: stored.lastSeen });

    await broker.call("presence.update", { tenantId: "t1", userId: "u1", status: "away", metadata: { x: 1 } });
    expect(Object.keys(await get("t1", "u1")).sort()).toEqual(["lastSeen", "metadata", "status", "userId"]);
  });

  it("answers offline with lastSeen null for a user never seen", async () => {
    expect(await get("t1", "nobody")).toEqual({ userId: "nobody", status: "offline", lastSeen: null });
  });

  it("getMany answers in the order asked", async () => {
    await connect("t1", "b", "cb");
    const many = await callAs<PresenceView[]>(broker, "presence.getMany", { tenantId: "t1", userIds: ["a", "b", "c"] });
    expect(many).toEqual([
      { userId: "a", status: "offline", lastSeen: null },
      { userId: "b", status: "online", lastSeen: expect.stringMatching(ISO_DATE) },
      { userId: "c", status: "offline", lastSeen: null }
    ]);
    expect(await broker.call("presence.getMany", { tenantId: "t1", userIds: [] })).toEqual([]);
  });

  it("getMany refuses more than 500 users", async () => {
    const userIds = Array.from({ length: 501 }, (_, i) => `u${i}`);
    expect((await rejectionOf(broker.call("presence.getMany", { tenantId: "t1", userIds }))).type).toBe("VALIDATION_ERROR");
    await expect(broker.call("presence.getMany", { tenantId: "t1", userIds: userIds.slice(0, 500) })).resolves.toHaveLength(500);
  });
});

describe("presence.heartbeat", () => {
  it("returns the connections the store does not know, stripped of extra fields", async () => {
    await connect("t1", "u1", "c1");
    const result = await callAs<{ unknown: ConnRef[] }>(broker, "presence.heartbeat", {
      connections: [
        { tenantId: "t1", userId: "u1", connectionId: "c1" },
        { tenantId: "t1", userId: "u1", connectionId: "c-lost", extra: "dropped" },
        // the same connection id under another tenant is not the known one
        { tenantId: "t2", userId: "u1", connectionId: "c1" }
      ]
    });
    expect(result).toEqual({
      unknown: [
        { tenantId: "t1", userId: "u1", connectionId: "c-lost" },
        { tenantId: "t2", userId: "u1", connectionId: "c1" }
      ]
    });
    expect(Object.keys(result.unknown[0])).not.toContain("extra");
  });

  it("answers an empty list for an empty heartbeat and refuses a malformed one", async () => {
    expect(await broker.call("presence.heartbeat", { connections: [] })).toEqual({ unknown: [] });
    const bad = await rejectionOf(broker.call("presence.heartbeat", { connections: [{ tenantId: "t1", userId: "u1" }] }));
    expect(bad.type).toBe("VALIDATION_ERROR");
  });
});

describe("$node.disconnected", () => {
  it("marks the departed node's users offline, pushes it, then drops their room memberships", async () => {
    await join("t1", "r1", "u1", "c1", "gw-x");
    await join("t1", "r1", "u2", "c2", "gw-y");
    await connect("t1", "u1", "c1", "gw-x");
    await connect("t1", "u2", "c2", "gw-y");
    // u3 has one device on each node: still online after gw-x leaves
    await connect("t1", "u3", "c3x", "gw-x");
    await connect("t1", "u3", "c3y", "gw-y");
    await eventually(() => deliveries.length === 2, 1000, "online pushes");
    deliveries.length = 0;

    broker.broadcastLocal("$node.disconnected", { node: { id: "gw-x" }, unexpected: true });

    await eventually(async () => (await callAs<string[]>(broker, "rooms.ofUser", { tenantId: "t1", userId: "u1" })).length === 0, 2000, "room cleanup");
    expect(await get("t1", "u1")).toMatchObject({ status: "offline" });
    expect(await get("t1", "u2")).toMatchObject({ status: "online" });
    expect(await get("t1", "u3")).toMatchObject({ status: "online" });
    // the push went to the rooms u1 was in *before* the memberships were dropped
    expect(deliveries).toEqual([
      {
        tenantId: "t1",
        target: { roomIds: ["r1"] },
        event: "presence",
        payload: { userId: "u1", status: "offline", lastSeen: expect.stringMatching(ISO_DATE) },
        volatile: true
      }
    ]);
    expect(await broker.call("rooms.members", { tenantId: "t1", roomId: "r1" })).toEqual({ roomId: "r1", members: [{ userId: "u2", connectionId: "c2" }] });
    expect(await broker.call("presence.heartbeat", { connections: [{ tenantId: "t1", userId: "u3", connectionId: "c3x" }] })).toEqual({
      unknown: [{ tenantId: "t1", userId: "u3", connectionId: "c3x" }]
    });
  });
});

describe("TTL expiry", () => {
  it("expires a connection that is never heartbeated and pushes offline; a heartbeated one stays", async () => {
    await stopAll(brokers);
    broker = await startBroker(testConfig({ presenceTtlSeconds: 1 }));
    await join("t1", "r1", "silent", "c-silent");
    await connect("t1", "silent", "c-silent");
    await connect("t1", "alive", "c-alive");
    await eventually(() => deliveries.length === 1, 1000, "online push");
    const beat = setInterval(() => {
      broker.call("presence.heartbeat", { connections: [{ tenantId: "t1", userId: "alive", connectionId: "c-alive" }] }).catch(() => undefined);
    }, 200);
    try {
      const started = Date.now();
      await eventually(async () => (await get("t1", "silent")).status === "offline", 2500, "expiry");
      expect(Date.now() - started).toBeLessThan(2500);
      await eventually(() => deliveries.length === 2, 500, "offline push");
      expect(deliveries[1]).toMatchObject({ tenantId: "t1", target: { roomIds: ["r1"] }, event: "presence", payload: { userId: "silent", status: "offline" }, volatile: true });
      expect(await get("t1", "alive")).toMatchObject({ status: "online" });
    } finally {
      clearInterval(beat);
    }
  });
});

describe("tenant guard", () => {
  it("refuses a client of t1 reading presence of t2 and reports it", async () => {
    const err = await rejectionOf(broker.call("presence.get", { tenantId: "t2", userId: "u1" }, asClient("t1", "u")));
    expect(err).toMatchObject({ type: "TENANT_VIOLATION", code: 403 });
    await eventually(() => violations.length === 1, 1000, "violation event");
    expect(violations[0]).toMatchObject({ tenantId: "t1", userId: "u", requestedTenantId: "t2", action: "presence.get" });
  });

  it("lets a client read its own tenant", async () => {
    await connect("t1", "u1", "c1");
    expect(await broker.call("presence.get", { tenantId: "t1", userId: "u1" }, asClient("t1", "u"))).toMatchObject({ userId: "u1", status: "online" });
    await expect(broker.call("presence.getMany", { tenantId: "t1", userIds: ["u1"] }, asClient("t1", "u"))).resolves.toHaveLength(1);
    await settle();
    expect(violations).toEqual([]);
  });

  it("refuses a client of t1 changing presence in t2 without changing it", async () => {
    await connect("t2", "u1", "c1");
    const err = await rejectionOf(broker.call("presence.update", { tenantId: "t2", userId: "u1", status: "away" }, asClient("t1", "u1")));
    expect(err.type).toBe("TENANT_VIOLATION");
    expect(await get("t2", "u1")).toMatchObject({ status: "online" });
  });
});

describe("validation", () => {
  it.each([
    ["presence.connect", { tenantId: "t1", userId: "u1", connectionId: "c1" }],
    ["presence.connect", { tenantId: "", userId: "u1", connectionId: "c1", nodeId: "n" }],
    ["presence.connect", { tenantId: "t".repeat(129), userId: "u1", connectionId: "c1", nodeId: "n" }],
    ["presence.disconnect", { tenantId: "t1", userId: 5, connectionId: "c1" }],
    ["presence.get", { tenantId: "t1" }],
    ["presence.get", { userId: "u1" }],
    ["presence.getMany", { tenantId: "t1", userIds: "u1" }],
    ["presence.getMany", { tenantId: "t1", userIds: [""] }],
    ["presence.heartbeat", {}]
  ])("%s refuses %j", async (action, params) => {
    const err = await rejectionOf(broker.call(action, params));
    expect(err.type).toBe("VALIDATION_ERROR");
    expect(err.code).toBe(422);
  });
});
