import jwt from "jsonwebtoken";
import { startNode, type TestNode } from "../helpers/node";
import { connect, refusal } from "../helpers/client";
import { expiredToken, tokenFor, unsignedToken } from "../helpers/tokens";

/** REST over moleculer-web on the gateway's port: authentication, tenant binding, errors, health. */
describe("REST API", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startNode({ config: { wsMaxConnections: 2 } });
  });
  afterAll(() => node.stop());

  async function get(path: string, headers: Record<string, string> = {}) {
    const res = await fetch(`${node.url}${path}`, { headers });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : undefined, headers: res.headers };
  }
  const auth = (tenantId: string, userId = "u1", extra: Record<string, unknown> = {}) => ({
    Authorization: `Bearer ${tokenFor(tenantId, userId, extra)}`,
    "X-Tenant-ID": tenantId
  });

  describe("authentication (seed 000)", () => {
    it("accepts a valid token with its own tenant", async () => {
      const res = await get("/api/presence/u2", auth("t1"));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ userId: "u2", status: "offline", lastSeen: null });
    });

    it.each([
      ["no Authorization header", {}],
      ["a non-Bearer scheme", { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}`, "X-Tenant-ID": "t1" }],
      ["a malformed token", { Authorization: "Bearer garbage", "X-Tenant-ID": "t1" }],
      ["an expired token", { Authorization: `Bearer ${expiredToken("t1", "u1")}`, "X-Tenant-ID": "t1" }],
      ["an unsigned token", { Authorization: `Bearer ${unsignedToken("t1", "u1")}`, "X-Tenant-ID": "t1" }],
      ["a token signed with another key", { Authorization: `Bearer ${jwt.sign({ tenantId: "t1", userId: "u" }, "nope")}`, "X-Tenant-ID": "t1" }]
    ])("answers %s with 401 AUTH_FAILED", async (_label, headers) => {
      const res = await get("/api/presence/u2", headers as Record<string, string>);
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ code: "AUTH_FAILED" });
      expect(typeof res.body?.error).toBe("string");
      expect(JSON.stringify(res.body)).not.toMatch(/stack|at .*\.js/);
    });

    it("answers an X-Tenant-ID other than the token's with 403 TENANT_VIOLATION", async () => {
      const res = await get("/api/presence/u2", { Authorization: `Bearer ${tokenFor("t1", "u1")}`, "X-Tenant-ID": "t2" });
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: "TENANT_VIOLATION" });
    });

    it("answers a tenantId parameter naming another tenant with 403 TENANT_VIOLATION", async () => {
      const res = await get("/api/presence/u2?tenantId=t2", auth("t1"));
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: "TENANT_VIOLATION" });
    });

    it("requires X-Tenant-ID", async () => {
      const res = await get("/api/presence/u2", { Authorization: `Bearer ${tokenFor("t1", "u1")}` });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: "INVALID_REQUEST" });
    });
  });

  describe("errors", () => {
    it("answers unknown routes with 404 NOT_FOUND in the error shape", async () => {
      const res = await get("/api/nothing-here", auth("t1"));
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: "NOT_FOUND" });
    });

    it("answers invalid parameters with 400 INVALID_REQUEST and the failing field", async () => {
      const res = await get(`/api/presence/${"x".repeat(200)}`, auth("t1"));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: "INVALID_REQUEST" });
      expect(res.body?.details[0].field).toBe("userId");
    });

    it("refuses listing a room the caller is not in with 403 AUTHZ_FAILED", async () => {
      const res = await get("/api/rooms/secret/members", auth("t1"));
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: "AUTHZ_FAILED" });
    });
  });

  describe("health", () => {
    it("reports the seed's shape without authentication", async () => {
      const res = await get("/health");
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: "healthy",
        services: { websocket: { status: "healthy", activeConnections: 0 }, presence: { status: "healthy" }, rooms: { status: "healthy" } }
      });
      expect(res.body?.services.redis).toBeUndefined();
      expect(new Date(res.body?.timestamp).toISOString()).toBe(res.body?.timestamp);
    });

    it("answers liveness and readiness probes", async () => {
      expect((await get("/health/live")).status).toBe(200);
      const ready = await get("/health/ready");
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ status: "ready", maxConnections: 2 });
    });

    it("enforces WS_MAX_CONNECTIONS: the connection past the limit is refused and readiness drops", async () => {
      const a = await connect(node.url, tokenFor("t1", "a"));
      const b = await connect(node.url, tokenFor("t1", "b"));
      try {
        expect((await get("/health")).body?.services.websocket.activeConnections).toBe(2);
        const err = await refusal(node.url, tokenFor("t1", "c"));
        expect(err.data).toMatchObject({ code: "RATE_LIMIT", details: { reason: "max_connections", limit: 2 } });
        const ready = await get("/health/ready");
        expect(ready.status).toBe(503);
      } finally {
        a.socket.close();
        b.socket.close();
      }
    });
  });
});

describe("health with Redis unreachable", () => {
  it("reports degraded instead of failing; class A still flows, class C is refused rather than falsely acknowledged", async () => {
    // Nothing listens on 6390: every Redis command fails fast.
    const node = await startNode({ services: ["gateway"], config: { redisUrl: "redis://127.0.0.1:6390" } });
    try {
      const res = await fetch(`${node.url}/health`);
      const body = (await res.json()) as { status: string; services: Record<string, { status: string }> };
      expect(res.status).toBe(200);
      expect(body.status).toBe("degraded");
      expect(body.services.redis.status).toBe("unhealthy");
      const { socket } = await connect(node.url, tokenFor("t1", "u1"));
      const volatile = await socket.timeout(3000).emitWithAck("message", { type: "typing", interactionClass: "CLASS_A", recipientId: "u2", payload: 1 });
      expect(volatile).toHaveProperty("messageId");
      const durable = await socket.timeout(3000).emitWithAck("message", { type: "m", recipientId: "u2", payload: 1 });
      expect(durable).toMatchObject({ code: "INTERNAL_ERROR" });
      expect(durable.messageId).toBeUndefined();
      socket.close();
    } finally {
      await node.stop();
    }
  });
});
