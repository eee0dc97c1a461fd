import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io-client";
import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { eventually, nextEvent, recorder, request, settle } from "../helpers/client";
import { appSocketTo, connectApp } from "../helpers/app-client";
import { tokenFor } from "../helpers/tokens";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";
import { fetchJson } from "../helpers/http";

/**
 * Seed 003 across a real cluster: two gateway nodes and a services node (presence, rooms, event
 * bus, conversations, push) over the real NATS server, stores in the real Redis. The pusher, the
 * conversation's members and the sender are on different nodes; every socket must get each event
 * exactly once.
 */
describe("seed 003 /ws/app over NATS: 2 gateways + services node (Redis stores)", () => {
  const namespace = `test-${randomUUID().slice(0, 8)}`;
  const prefix = uniquePrefix("app-cluster");
  const storeConfig = { redisUrl: REDIS_URL, redisKeyPrefix: prefix };
  let services: TestNode;
  let gw1: TestNode;
  let gw2: TestNode;
  const sockets: Socket[] = [];
  const brokerOptions = (nodeID: string) => ({ transporter: NATS_URL, namespace, nodeID: `${nodeID}-${namespace}` });

  async function app(gateway: TestNode, tenantId: string, userId: string, userAgent?: string) {
    const { socket } = await connectApp(gateway.url, tokenFor(tenantId, userId), { userAgent });
    sockets.push(socket);
    return socket;
  }

  async function post(gateway: TestNode, path: string, body: unknown, tenant = "acme") {
    return fetchJson(`${gateway.url}/api${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokenFor(tenant, "backend", { role: "service" })}`, "x-tenant-id": tenant, "content-type": "application/json" },
      body: JSON.stringify(body)
    });
  }

  beforeAll(async () => {
    services = await startNode({ services: ["presence", "rooms", "eventbus", "conversations", "push", "audit"], config: storeConfig, broker: brokerOptions("services") });
    gw1 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw1") });
    gw2 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw2") });
    for (const node of [gw1, gw2]) await node.broker.waitForServices(["presence", "rooms", "eventbus", "conversations", "push"], 10_000);
    for (const node of [services, gw1, gw2]) {
      await eventually(() => node.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).length === 3, 10_000, "3 nodes");
      await eventually(
        () => node.broker.registry.getServiceList({ onlyAvailable: true }).filter((s: { name: string }) => s.name === "gateway").length === 2,
        10_000,
        "both gateways known"
      );
    }
  }, 30_000);

  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  afterAll(async () => {
    await Promise.all([gw1?.stop(), gw2?.stop()]);
    await services?.stop();
    await dropPrefix(prefix);
  });

  it("delivers each message event exactly once to every socket, with pusher, members and sender on different nodes", async () => {
    await services.broker.call("conversations.create", { tenantId: "acme", conversationId: "c1", members: ["ann", "bob", "carol", "sam"] });
    await services.broker.call("conversations.create", { tenantId: "globex", conversationId: "c1", members: ["ann"] });
    // Members on gateway 1, the sender on gateway 2.
    const ann = await app(gw1, "acme", "ann"); // recipient, joined
    const bobOn1 = await app(gw1, "acme", "bob"); // recipient, not joined
    const carol = await app(gw1, "acme", "carol"); // member who joined, not a recipient
    const sam = await app(gw2, "acme", "sam"); // the sender, joined
    const bobOn2 = await app(gw2, "acme", "bob"); // the recipient's second device, other node
    const outsider = await app(gw2, "acme", "zed");
    const globexAnn = await app(gw2, "globex", "ann");
    for (const socket of [ann, carol, sam]) expect(await request(socket, "conversations:join", { conversationId: "c1" })).toEqual({ success: true });
    expect(await request(globexAnn, "conversations:join", { conversationId: "c1" })).toEqual({ success: true });
    expect(await request(outsider, "conversations:join", { conversationId: "c1" })).toMatchObject({ success: false });

    const seen = new Map<Socket, string[]>();
    for (const socket of [ann, bobOn1, carol, sam, bobOn2, outsider, globexAnn]) {
      const list: string[] = [];
      seen.set(socket, list);
      socket.onAny((event: string, payload: { message?: { id?: string } }) => {
        if (event.startsWith("messages:")) list.push(`${event}:${payload.message?.id}`);
      });
    }

    const message = { conversationId: "c1", senderId: "sam", recipients: ["ann", "bob"] };
    // The pusher: a backend over REST on either gateway, and an internal caller on the services node.
    await services.broker.call("push.message", { tenantId: "acme", ...message, message: { id: "m1" } });
    expect((await post(gw2, "/push/messages", { ...message, kind: "updated", message: { id: "m1" } })).status).toBe(200);
    expect((await post(gw1, "/push/messages", { ...message, kind: "deleted", message: { id: "m1", status: "deleted" } })).status).toBe(200);

    const expected = ["messages:new:m1", "messages:updated:m1", "messages:deleted:m1"];
    await eventually(() => [ann, bobOn1, carol, sam, bobOn2].every(s => (seen.get(s) ?? []).length >= 3), 5000, "every addressed socket got all three");
    await settle(300);
    for (const socket of [ann, bobOn1, carol, sam, bobOn2]) expect(seen.get(socket)).toEqual(expected);
    expect(seen.get(outsider)).toEqual([]);
    expect(seen.get(globexAnn)).toEqual([]);
  });

  it("delivers notifications:new to the user's devices on both gateways", async () => {
    const on1 = await app(gw1, "acme", "nina");
    const on2 = await app(gw2, "acme", "nina");
    const other = await app(gw2, "globex", "nina");
    const leaked = recorder(other, "notifications:new");
    const got = [nextEvent(on1, "notifications:new"), nextEvent(on2, "notifications:new")];
    expect((await post(gw1, "/push/notifications", { userId: "nina", eventKey: "invoice.paid", notification: { id: "n1" } })).status).toBe(200);
    expect(await Promise.all(got)).toEqual([
      { eventKey: "invoice.paid", notification: { id: "n1" } },
      { eventKey: "invoice.paid", notification: { id: "n1" } }
    ]);
    await settle();
    expect(leaked).toEqual([]);
  });

  it("lists a user's devices on every gateway in one presence snapshot, seen from both gateways", async () => {
    const watcherOn1 = await app(gw1, "acme", "watcher");
    const watcherOn2 = await app(gw2, "acme", "watcher2");
    const seen1 = recorder(watcherOn1, "presence:update");
    const seen2 = recorder(watcherOn2, "presence:update");
    const desk = await app(gw1, "acme", "gina", "Desk/1.0");
    const phone = appSocketTo(gw2.url, tokenFor("acme", "gina"), { userAgent: "Phone/2.0" });
    sockets.push(phone);
    await nextEvent(phone, "notifications:ready");
    const twoDevices = (list: any[]) => list.some(s => s.userId === "gina" && s.sockets.length === 2);
    await eventually(() => twoDevices(seen1) && twoDevices(seen2), 5000, "two-device snapshots on both gateways");
    const snapshot = seen2.find(s => s.userId === "gina" && s.sockets.length === 2);
    expect(snapshot.sockets.map((s: any) => [s.socketId, s.userAgent, s.ip])).toEqual([
      [desk.id, "Desk/1.0", null],
      [phone.id, "Phone/2.0", null]
    ]);
    desk.close();
    phone.close();
    await eventually(() => seen1.some(s => s.userId === "gina" && !s.isOnline) && seen2.some(s => s.userId === "gina" && !s.isOnline), 5000, "offline on both");
  });

  it("drops removed members' sockets from the conversation on every gateway", async () => {
    await services.broker.call("conversations.create", { tenantId: "acme", conversationId: "c2", members: ["ann", "carol"] });
    const carol = await app(gw2, "acme", "carol");
    const ann = await app(gw1, "acme", "ann");
    for (const socket of [carol, ann]) expect(await request(socket, "conversations:join", { conversationId: "c2" })).toEqual({ success: true });
    const carolSeen = recorder(carol, "messages:new");
    const annSeen = recorder(ann, "messages:new");
    expect((await post(gw1, "/conversations/c2/members/remove", { userIds: ["carol"] })).body.removed).toEqual(["carol"]);
    await settle(300);
    await services.broker.call("push.message", { tenantId: "acme", conversationId: "c2", senderId: "sys", recipients: ["nobody"], message: { id: "after-removal" } });
    await eventually(() => annSeen.length === 1, 5000, "the remaining member got it");
    await settle(300);
    expect(carolSeen).toEqual([]);
  });

  it("system:disconnect from any node reaches the user's sockets on every gateway", async () => {
    const on1 = await app(gw1, "acme", "kim");
    const on2 = await app(gw2, "acme", "kim");
    const bystander = await app(gw2, "acme", "lee");
    const told = [nextEvent(on1, "system:disconnect"), nextEvent(on2, "system:disconnect")];
    const result = await services.broker.call<{ disconnected: number; nodes: Array<{ nodeID: string; disconnected: number }> }, object>("gateway.systemDisconnect", {
      tenantId: "acme",
      userId: "kim",
      reason: "Planned maintenance"
    });
    expect(result.disconnected).toBe(2);
    expect(result.nodes.map(n => [n.nodeID, n.disconnected]).sort()).toEqual([
      [gw1.broker.nodeID, 1],
      [gw2.broker.nodeID, 1]
    ]);
    expect(await Promise.all(told)).toEqual([{ reason: "Planned maintenance" }, { reason: "Planned maintenance" }]);
    await eventually(() => !on1.connected && !on2.connected, 3000, "both closed");
    expect(bystander.connected).toBe(true);
  });
});
