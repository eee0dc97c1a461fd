import { randomUUID } from "node:crypto";
import { eventually, settle } from "../helpers/client";
import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";
import { tokenFor } from "../helpers/tokens";
import { wsConnect, wsRefusal, type WsClient } from "../helpers/ws-client";
import { fetchJson, type JsonBody } from "../helpers/http";

/**
 * Seed 002 in a cluster over the real NATS server: two gateway nodes and a services node with
 * Redis stores. Raw WebSocket clients on different gateways, pushes from the services node.
 */
describe("seed 002 /ws in a cluster over NATS (2 gateways + services node, Redis stores)", () => {
  const namespace = `test-${randomUUID().slice(0, 8)}`;
  const prefix = uniquePrefix("wscluster");
  const storeConfig = { redisUrl: REDIS_URL, redisKeyPrefix: prefix, maxConnectionsPerUser: 3 };
  let services: TestNode;
  let gw1: TestNode;
  let gw2: TestNode;
  const clients: WsClient[] = [];

  const brokerOptions = (nodeID: string) => ({ transporter: NATS_URL, namespace, nodeID: `${nodeID}-${namespace}` });

  async function client(gateway: TestNode, tenantId: string, userId: string, query: Record<string, string | number> = {}) {
    const c = await wsConnect(gateway.url, tokenFor(tenantId, userId), query);
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    services = await startNode({ services: ["presence", "rooms", "eventbus", "conversations", "push", "audit"], config: storeConfig, broker: brokerOptions("services") });
    gw1 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw1") });
    gw2 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw2") });
    for (const node of [gw1, gw2]) await node.broker.waitForServices(["presence", "rooms", "eventbus", "conversations", "push"], 10_000);
    await services.broker.waitForServices([{ name: "gateway" }], 10_000);
    for (const node of [gw1, gw2]) {
      await eventually(() => node.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).length === 3, 10_000, "3 nodes");
    }
    await services.broker.call("conversations.create", { tenantId: "acme", conversationId: "c1", members: ["ann", "bob"] });
    await services.broker.call("conversations.create", { tenantId: "globex", conversationId: "c1", members: ["ann", "bob"] });
  }, 30_000);

  afterEach(async () => {
    await Promise.all(clients.splice(0).map(c => c.close()));
  });

  afterAll(async () => {
    await Promise.all([gw1?.stop(), gw2?.stop()]);
    await services?.stop();
    await dropPrefix(prefix);
  });

  it("delivers a push from the services node to every device of the user on both gateways, once", async () => {
    const annOn1 = await client(gw1, "acme", "ann");
    const annOn2 = await client(gw2, "acme", "ann");
    const bobOn2 = await client(gw2, "acme", "bob");
    const spy = await client(gw2, "globex", "ann");
    const res = await services.broker.call<{ eventId: string }, object>("push.notification", { tenantId: "acme", userId: "ann", eventKey: "k", notification: { id: "n-cluster" } });
    const [a, b] = await Promise.all([annOn1.waitFor(f => f.type === "notification"), annOn2.waitFor(f => f.type === "notification")]);
    expect(a).toMatchObject({ id: res.eventId, payload: { id: "n-cluster" }, sequence: expect.any(Number) });
    expect(b).toEqual(a);
    await settle(200);
    expect(annOn1.ofType("notification")).toHaveLength(1);
    expect(annOn2.ofType("notification")).toHaveLength(1);
    expect(bobOn2.ofType("notification")).toEqual([]);
    expect(spy.ofType("notification")).toEqual([]);
  });

  it("carries messages, typing, read receipts and presence between gateways, within the tenant", async () => {
    const watcher = await client(gw2, "acme", "watcher", { channels: "presence:ann" });
    const globexWatcher = await client(gw2, "globex", "watcher", { channels: "presence:ann,presence" });
    const globexBob = await client(gw2, "globex", "bob", { channels: "conversation:c1" });
    const bob = await client(gw2, "acme", "bob", { channels: "conversation:c1" });
    const ann = await client(gw1, "acme", "ann");
    await watcher.waitFor(f => f.type === "presence" && f.payload.status === "online", 3000, "ann online across gateways");

    const ack = await ann.request("message", { content: "across" }, { channel: "conversation:c1" });
    expect(ack.status).toBe("success");
    expect((await bob.waitFor(f => f.type === "message")).payload).toMatchObject({ content: "across", sender_id: "ann", conversation_id: "c1" });
    await ann.request("typing_start", { conversation_id: "c1" });
    expect((await bob.waitFor(f => f.type === "typing_start")).payload).toMatchObject({ user_id: "ann", is_typing: true });
    await bob.request("read_receipt", { conversation_id: "c1", message_ids: [ack.data.id] });
    expect((await ann.waitFor(f => f.type === "read_receipt")).payload).toMatchObject({ user_id: "bob", message_ids: [ack.data.id] });
    await settle(300);
    const leaked = [...globexWatcher.frames, ...globexBob.frames].filter(f => f.type !== "heartbeat" && f.type !== "connect" && !(f.type === "presence" && f.payload.user_id !== "ann"));
    // globex's ann never connected: its watcher only saw the snapshot of globex's (offline) ann.
    expect(leaked.map(f => [f.type, f.payload.status])).toEqual([["presence", "offline"]]);
  });

  it("caps connections per user across the cluster", async () => {
    await client(gw1, "acme", "capped");
    await client(gw1, "acme", "capped");
    await client(gw2, "acme", "capped");
    expect(await wsRefusal(gw2.url, { token: tokenFor("acme", "capped") })).toMatchObject({ status: 429, body: { code: "MAX_CONNECTIONS" } });
    expect(await wsRefusal(gw1.url, { token: tokenFor("acme", "capped") })).toMatchObject({ status: 429, body: { code: "MAX_CONNECTIONS" } });
    await clients.pop()?.close();
    await eventually(async () => {
      const c = await wsConnect(gw1.url, tokenFor("acme", "capped")).catch(() => undefined);
      if (c) clients.push(c);
      return c !== undefined;
    }, 3000, "a freed slot");
  });

  it("resumes on one gateway from a number seen on the other, and polls through either", async () => {
    const first = await client(gw1, "acme", "hopper");
    await services.broker.call("push.notification", { tenantId: "acme", userId: "hopper", eventKey: "k", notification: { n: 1 } });
    const one = await first.waitFor(f => f.type === "notification");
    await first.close();
    await services.broker.call("push.notification", { tenantId: "acme", userId: "hopper", eventKey: "k", notification: { n: 2 } });
    const { body } = await fetchJson(`${gw2.url}/api/v1/realtime/poll?last_poll_id=${one.sequence}&timeout=5`, { headers: { authorization: `Bearer ${tokenFor("acme", "hopper")}` } });
    expect(body.events.map((e: JsonBody) => e.payload.n)).toEqual([2]);
    await services.broker.call("push.notification", { tenantId: "acme", userId: "hopper", eventKey: "k", notification: { n: 3 } });
    const again = await client(gw1, "acme", "hopper", { last_poll_id: body.last_poll_id });
    await again.waitFor(f => f.type === "notification");
    await settle(200);
    expect(again.ofType("notification").map(f => f.payload.n)).toEqual([3]);
    expect(again.connected.payload).toMatchObject({ recovered: true });
  });
});
