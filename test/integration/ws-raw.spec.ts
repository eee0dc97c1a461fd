import jwt from "jsonwebtoken";
import { connect, eventually, nextEvent, settle } from "../helpers/client";
import { startNode, type TestNode } from "../helpers/node";
import { TEST_SECRET, expiredToken, tokenFor, unsignedToken } from "../helpers/tokens";
import { wsConnect, wsRefusal, type WsClient } from "../helpers/ws-client";

/**
 * Seed 002 over a raw WebSocket (`ws` package as the client) on the gateway's one HTTP port,
 * beside Socket.IO: authentication before the upgrade, the envelope, channels, every event type,
 * the server push API, and tenant isolation on every channel.
 */
describe("seed 002 raw WebSocket /ws", () => {
  let node: TestNode;
  const clients: WsClient[] = [];
  const backend = tokenFor("acme", "backend", { role: "service" });

  async function client(tenantId: string, userId: string, query: Record<string, string | number | undefined> = {}) {
    const c = await wsConnect(node.url, tokenFor(tenantId, userId), query);
    clients.push(c);
    return c;
  }

  async function api(method: string, path: string, body: unknown, token = backend, tenant = "acme") {
    const res = await fetch(`${node.url}/api${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "x-tenant-id": tenant, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  beforeAll(async () => {
    node = await startNode({ config: { maxConnectionsPerUser: 3, wsRawRateLimit: 20, wsPingIntervalMs: 200, wsPingTimeoutMs: 400 } });
    // Conversations are declared by the application backend.
    await api("POST", "/conversations", { conversationId: "c1", members: ["ann", "bob"] });
    await api("POST", "/conversations", { conversationId: "c1", members: ["ann"] }, tokenFor("globex", "backend", { role: "service" }), "globex");
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(c => c.close()));
  });
  afterAll(() => node.stop());

  describe("connection", () => {
    it("refuses before the upgrade with 401 and {code, message}", async () => {
      expect(await wsRefusal(node.url)).toEqual({ status: 401, body: { code: "MISSING_TOKEN", message: expect.any(String) } });
      expect(await wsRefusal(node.url, { token: "not-a-jwt" })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: unsignedToken("acme", "ann") })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: jwt.sign({ tenantId: "acme", userId: "ann" }, "another-secret") })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: expiredToken("acme", "ann") })).toMatchObject({ status: 401, body: { code: "TOKEN_EXPIRED" } });
      expect(await wsRefusal(node.url, {}, { authorization: `Bearer ${expiredToken("acme", "ann")}` })).toMatchObject({ status: 401, body: { code: "TOKEN_EXPIRED" } });
    });

    it("accepts the token in the query or as a bearer header, and says `connect {user_id, timestamp}`", async () => {
      const a = await client("acme", "ann");
      expect(a.connected).toMatchObject({ type: "connect", id: expect.any(String), timestamp: expect.any(String), payload: { user_id: "ann", timestamp: expect.any(String), last_poll_id: expect.any(Number) } });
      const b = await wsConnect(node.url, undefined, {}, { authorization: `Bearer ${tokenFor("acme", "ann")}` });
      clients.push(b);
      expect(b.connected.payload.user_id).toBe("ann");
      // Seed 002 login services issue `user_id`; it is accepted as userId.
      const c = await wsConnect(node.url, jwt.sign({ tenantId: "acme", user_id: 42 }, TEST_SECRET, { expiresIn: "1h" }));
      clients.push(c);
      expect(c.connected.payload.user_id).toBe("42");
    });

    it("allows MAX_CONNECTIONS per user; the next is refused with 429 until one closes", async () => {
      const three = [await client("acme", "max"), await client("acme", "max"), await client("acme", "max")];
      expect(await wsRefusal(node.url, { token: tokenFor("acme", "max") })).toEqual({ status: 429, body: { code: "MAX_CONNECTIONS", message: expect.any(String), details: { limit: 3 } } });
      // Another user and the same user id in another tenant are not affected.
      await client("acme", "other");
      await client("globex", "max");
      await three[0].close();
      await eventually(async () => (await wsConnect(node.url, tokenFor("acme", "max")).then(c => (clients.push(c), true)).catch(() => false)), 3000, "a free slot");
    });

    it("keeps Socket.IO working on the same port and refuses unknown upgrade paths", async () => {
      const { socket, connected } = await connect(node.url, tokenFor("acme", "ann"));
      expect(connected.connectionId).toEqual(expect.any(String));
      socket.close();
      expect((await wsRefusal(node.url, { token: tokenFor("acme", "ann") }, {}, "/elsewhere")).status).toBe(404);
    });

    it("answers heartbeat and sends its own heartbeats and pings", async () => {
      const a = await client("acme", "ann");
      const ack = await a.request("heartbeat");
      expect(ack).toMatchObject({ status: "success", data: { timestamp: expect.any(String) } });
      expect(a.ofType("heartbeat").length).toBeGreaterThanOrEqual(1);
      let pinged = false;
      a.ws.once("ping", () => (pinged = true));
      await a.waitFor(f => f.type === "heartbeat" && a.ofType("heartbeat").length >= 3, 3000, "server heartbeats");
      await eventually(() => pinged, 2000, "a ping");
    });
  });

  describe("envelope", () => {
    it("answers invalid frames with error INVALID_MESSAGE, and requests with ack_id with an ack", async () => {
      const a = await client("acme", "ann");
      a.send("not json");
      expect((await a.waitFor(f => f.type === "error")).payload).toMatchObject({ code: "INVALID_MESSAGE", message: expect.any(String), details: { reason: "not_json" } });
      a.send({ payload: {} });
      expect((await a.waitFor(f => f.type === "error" && f.payload.details?.field === "type")).payload).toMatchObject({ code: "INVALID_MESSAGE", message: "Message type is required" });
      a.send("[1,2]");
      await a.waitFor(f => f.type === "error" && f.payload.details?.reason === "not_object");
      a.ws.send(Buffer.from([1, 2, 3]));
      await a.waitFor(f => f.type === "error" && f.payload.details?.reason === "binary");
      const unknown = await a.request("launch_rockets", {});
      expect(unknown).toMatchObject({ status: "error", data: { code: "INVALID_MESSAGE" } });
      const badPayload = await a.request("subscribe", "x" as never);
      expect(badPayload).toMatchObject({ status: "error", data: { code: "INVALID_MESSAGE", details: { field: "payload" } } });
      // The connection survives all of it.
      expect(await a.request("heartbeat")).toMatchObject({ status: "success" });
    });

    it("refuses more than WS_RAW_RATE_LIMIT frames per second with RATE_LIMITED", async () => {
      const a = await client("acme", "ann");
      for (let i = 0; i < 40; i++) a.send({ type: "heartbeat", payload: {} });
      const limited = await a.waitFor(f => f.type === "error" && f.payload.code === "RATE_LIMITED");
      expect(limited.payload).toMatchObject({ message: expect.any(String), details: { limit: 20 } });
      await settle(300);
      expect(a.ofType("heartbeat").filter(f => !("ack_id" in f)).length).toBeGreaterThanOrEqual(20);
      // A frame with ack_id gets its own refusal.
      const acked = await a.request("heartbeat");
      expect(["success", "error"]).toContain(acked.status);
      await settle(1100);
      expect(await a.request("heartbeat")).toMatchObject({ status: "success" });
    });
  });
});
