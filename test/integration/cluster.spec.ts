import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io-client";
import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { connect, eventually, nextEvent, recorder, request, settle, socketTo } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { spawnNode } from "../helpers/process-node";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";

/**
 * The cluster: two gateway nodes on different ports and one node running presence and rooms,
 * as real brokers over the real NATS server. Everything a client does on one gateway must reach
 * clients of the other exactly as in one process. Runs with Redis-backed stores (several nodes
 * share state) and with the services node's in-process stores.
 */
const variants = [
  { name: "Redis stores", redis: true },
  { name: "memory stores on the services node", redis: false }
];

for (const variant of variants) {
  describe(`cluster over NATS: 2 gateways + services node (${variant.name})`, () => {
    const namespace = `test-${randomUUID().slice(0, 8)}`;
    const prefix = uniquePrefix("cluster");
    const storeConfig = variant.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {};
    let services: TestNode;
    let gw1: TestNode;
    let gw2: TestNode;
    const sockets: Socket[] = [];

    const brokerOptions = (nodeID: string) => ({ transporter: NATS_URL, namespace, nodeID: `${nodeID}-${namespace}` });

    async function client(gateway: TestNode, tenantId: string, userId: string) {
      const { socket, connected } = await connect(gateway.url, tokenFor(tenantId, userId));
      sockets.push(socket);
      return { socket, connected };
    }

    async function presenceVia(gateway: TestNode, tenantId: string, userId: string) {
      const res = await fetch(`${gateway.url}/api/presence/${userId}`, {
        headers: { Authorization: `Bearer ${tokenFor(tenantId, "observer")}`, "X-Tenant-ID": tenantId }
      });
      return (await res.json()) as { status: string };
    }

    beforeAll(async () => {
      services = await startNode({ services: ["presence", "rooms", "eventbus"], config: storeConfig, broker: brokerOptions("services") });
      gw1 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw1") });
      gw2 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOptions("gw2") });
      for (const node of [gw1, gw2]) await node.broker.waitForServices(["presence", "rooms"], 10_000);
      await services.broker.waitForServices([{ name: "gateway" }], 10_000);
      // Both gateways must know each other before a broadcast can reach both.
      await eventually(() => gw1.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).length === 3, 10_000, "3 nodes");
      await eventually(() => gw2.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).length === 3, 10_000, "3 nodes");
      expect(gw1.port).not.toBe(gw2.port);
    }, 30_000);

    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });

    afterAll(async () => {
      await Promise.all([gw1?.stop(), gw2?.stop()]);
      await services?.stop();
      if (variant.redis) await dropPrefix(prefix);
    });

    it("delivers a direct message from gateway 1 to every device of the recipient on both gateways", async () => {
      const { socket: alice } = await client(gw1, "t1", "alice");
      const { socket: bobOn1 } = await client(gw1, "t1", "bob");
      const { socket: bobOn2 } = await client(gw2, "t1", "bob");
      const { socket: otherTenantBob } = await client(gw2, "t2", "bob");
      const leaked = recorder(otherTenantBob, "message");
      const got1 = nextEvent(bobOn1, "message");
      const got2 = nextEvent(bobOn2, "message");
      const { messageId } = await request(alice, "message", { type: "chat.message", recipientId: "bob", payload: { text: "across" } });
      const [m1, m2] = await Promise.all([got1, got2]);
      expect(m1).toMatchObject({ messageId, senderId: "alice", tenantId: "t1", payload: { text: "across" } });
      expect(m2).toEqual(m1);
      await settle();
      expect(leaked).toEqual([]);
    });

    it("delivers room messages to members on the other gateway, per tenant, in order", async () => {
      const { socket: a } = await client(gw1, "t1", "alice");
      const { socket: b } = await client(gw2, "t1", "bob");
      const { socket: c } = await client(gw2, "t2", "carol");
      await request(a, "join_room", { roomId: "room-x" });
      await request(b, "join_room", { roomId: "room-x" });
      await request(c, "join_room", { roomId: "room-x" });
      const bobGot = recorder(b, "message");
      const carolGot = recorder(c, "message");
      for (let i = 0; i < 10; i++) a.emit("message", { type: "m", roomId: "room-x", payload: i });
      await eventually(() => bobGot.length === 10, 3000, "10 room messages on gateway 2");
      expect(bobGot.map(m => m.payload)).toEqual([...Array(10).keys()]);
      await settle();
      expect(carolGot).toEqual([]);

      // Leaving on gateway 2 stops delivery there.
      await request(b, "leave_room", { roomId: "room-x" });
      await request(a, "message", { type: "m", roomId: "room-x", payload: "after leave" });
      await settle();
      expect(bobGot).toHaveLength(10);
    });

    it("shares presence and room membership between nodes", async () => {
      const { socket: dana } = await client(gw2, "t3", "dana");
      const { socket: eli } = await client(gw1, "t3", "eli");
      expect((await presenceVia(gw1, "t3", "dana")).status).toBe("online");
      await request(dana, "join_room", { roomId: "team" });
      await request(eli, "join_room", { roomId: "team" });
      const members = await services.broker.call<{ members: Array<{ userId: string }> }, object>("rooms.members", { tenantId: "t3", roomId: "team" });
      expect(members.members.map(m => m.userId).sort()).toEqual(["dana", "eli"]);

      const pushed = nextEvent(eli, "presence");
      dana.emit("presence_update", { status: "away" });
      expect(await pushed).toMatchObject({ userId: "dana", status: "away" });

      const offline = nextEvent(eli, "presence");
      dana.close();
      expect(await offline).toMatchObject({ userId: "dana", status: "offline" });
      expect((await presenceVia(gw1, "t3", "dana")).status).toBe("offline");
    });

    it("lets any node push to sockets on every gateway (gateway.send)", async () => {
      const { socket: on1 } = await client(gw1, "t4", "fay");
      const { socket: on2 } = await client(gw2, "t4", "fay");
      const got1 = nextEvent(on1, "notification");
      const got2 = nextEvent(on2, "notification");
      await services.broker.call("gateway.send", { tenantId: "t4", userId: "fay", event: "notification", payload: { n: 1 } });
      expect(await got1).toEqual({ n: 1 });
      expect(await got2).toEqual({ n: 1 });
    });

    it("resumes a client on the other gateway from its cursor, with nothing lost or repeated", async () => {
      const { socket: sender } = await client(gw1, "t5", "sender");
      const { socket: reader } = await client(gw1, "t5", "reader");
      const first = nextEvent(reader, "message");
      const lastSeen = await request(sender, "message", { type: "chat", recipientId: "reader", payload: "seen" });
      expect((await first).position).toBe(lastSeen.position);
      reader.close();
      const missed: string[] = [];
      for (let i = 0; i < 10; i++) missed.push((await request(sender, "message", { type: "chat", recipientId: "reader", payload: i })).position);
      const resumed = socketTo(gw2.url, tokenFor("t5", "reader"), { auth: { lastEventId: lastSeen.position } });
      sockets.push(resumed);
      const received: string[] = [];
      resumed.on("message", (m: { position: string }) => received.push(m.position));
      const connected = await nextEvent(resumed, "connected", 5000);
      expect(connected.recovered).toBe(true);
      await eventually(() => received.length >= 10, 5000, "10 replayed messages");
      const live = await request(sender, "message", { type: "chat", recipientId: "reader", payload: "live" });
      await eventually(() => received.length >= 11, 5000, "the live message");
      expect(received).toEqual([...missed, live.position]);
    });

    it("applies the tenant guard to calls made across nodes", async () => {
      await expect(
        gw1.broker.call("presence.get", { tenantId: "t2", userId: "x" }, { meta: { auth: { tenantId: "t1", userId: "mallory", role: "user" } } })
      ).rejects.toMatchObject({ type: "TENANT_VIOLATION", code: 403 });
    });
  });
}

describe("cluster over NATS: a gateway process killed with SIGKILL", () => {
  const namespace = `test-${randomUUID().slice(0, 8)}`;
  const prefix = uniquePrefix("leave");
  const storeConfig = { redisUrl: REDIS_URL, redisKeyPrefix: prefix };

  afterAll(() => dropPrefix(prefix));

  it("marks the users of the dead gateway offline and clears their memberships", async () => {
    const services = await startNode({
      services: ["presence", "rooms", "eventbus"],
      config: storeConfig,
      broker: { transporter: NATS_URL, namespace, nodeID: `services-${namespace}`, heartbeatInterval: 1, heartbeatTimeout: 3 }
    });
    const gw1 = await startNode({ services: ["gateway"], config: storeConfig, broker: { transporter: NATS_URL, namespace, nodeID: `gw1-${namespace}` } });
    // The second gateway is a real process started by the Moleculer runner, as `npm start` does.
    const gw2 = await spawnNode({ SERVICES: "gateway", TRANSPORTER: NATS_URL, NAMESPACE: namespace, NODEID: `gw2-${namespace}`, REDIS_URL, REDIS_KEY_PREFIX: prefix });
    try {
      await eventually(() => services.broker.registry.getNodeList({ onlyAvailable: true }).length === 3, 10_000, "3 nodes");
      const { socket: stays } = await connect(gw1.url, tokenFor("t1", "stays"));
      const { socket: leaves } = await connect(gw2.url, tokenFor("t1", "leaves"));
      await request(stays, "join_room", { roomId: "lobby" });
      await request(leaves, "join_room", { roomId: "lobby" });
      const got = nextEvent(stays, "message");
      leaves.emit("message", { type: "m", roomId: "lobby", payload: "from the process" });
      expect((await got).payload).toBe("from the process");

      const offline = nextEvent(stays, "presence", 15_000);
      await gw2.kill("SIGKILL");
      leaves.close();
      expect(await offline).toMatchObject({ userId: "leaves", status: "offline" });
      // The offline push goes out before the memberships are dropped (it is addressed through them).
      const members = async () => (await services.broker.call<{ members: Array<{ userId: string }> }, object>("rooms.members", { tenantId: "t1", roomId: "lobby" })).members.map(m => m.userId);
      await eventually(async () => JSON.stringify(await members()) === JSON.stringify(["stays"]), 5000, "the dead gateway's memberships dropped");
      stays.close();
    } finally {
      await gw2.kill("SIGKILL");
      await gw1.stop();
      await services.stop();
    }
  }, 40_000);
});
