import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { AuditRecord, VerifyReport } from "../../lib/audit-chain";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, firstEvent, nextEvent, refusal, request, settle, socketTo } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { uniqueSchema } from "../helpers/postgres";

/**
 * The audit trail end to end: a real node (gateway, services, audit on the file backend in a
 * temporary DATA_DIR), real HTTP and Socket.IO clients. Records are read back through the audit
 * service, as operators do.
 */

const WINDOW_MS = 400;

async function records(node: TestNode, tenantId: string, action?: string): Promise<AuditRecord[]> {
  const result = await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId, ...(action ? { action } : {}), limit: 1000 });
  return result.records;
}

async function waitForRecords(node: TestNode, tenantId: string, action: string, count: number, match: (r: AuditRecord) => boolean = () => true): Promise<AuditRecord[]> {
  let found: AuditRecord[] = [];
  await eventually(
    async () => {
      found = (await records(node, tenantId, action)).filter(match);
      return found.length >= count;
    },
    5000,
    `${count} ${action} record(s) in ${tenantId}`
  );
  return found;
}

describe("audit trail (integration)", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startNode({ config: { auditAggregationWindowMs: WINDOW_MS, wsMessageRateLimit: 5 } });
  });
  afterAll(() => node.stop());

  async function get(pathAndQuery: string, headers: Record<string, string> = {}) {
    const res = await fetch(`${node.url}${pathAndQuery}`, { headers });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  }
  const superAdmin = (tenantHeader: string, justification?: string, userId = "root") => ({
    Authorization: `Bearer ${tokenFor("platform", userId, { role: "super_admin" })}`,
    "X-Tenant-ID": tenantHeader,
    ...(justification !== undefined ? { "X-Admin-Justification": justification } : {})
  });

  describe("super-admin access (INV-003)", () => {
    it("refuses another tenant's data without X-Admin-Justification (403 AUTHZ_FAILED) and audits the refusal", async () => {
      const res = await get("/api/presence/alice", superAdmin("acme"));
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: "AUTHZ_FAILED", details: { reason: "justification_required", header: "X-Admin-Justification" } });
      const blank = await get("/api/presence/alice", superAdmin("acme", "   "));
      expect(blank.status).toBe(403);
      expect(blank.body).toMatchObject({ code: "AUTHZ_FAILED" });
      const [denied] = await waitForRecords(node, "acme", "admin.cross_tenant_access", 1, r => r.outcome === "denied");
      expect(denied).toMatchObject({
        tenantId: "acme",
        actor: { userId: "root", role: "super_admin", nodeID: node.broker.nodeID },
        target: "tenant:acme",
        details: { actorTenantId: "platform", route: "GET /api/presence/:userId", path: "/api/presence/alice", reason: "justification_required" }
      });
      expect(denied.justification).toBeUndefined();
    });

    it("serves another tenant's data with a justification, after recording who, why and what in that tenant's chain", async () => {
      const { socket } = await connect(node.url, tokenFor("acme", "alice"));
      try {
        const res = await get("/api/presence/alice", superAdmin("acme", "INC-1234: customer reports missing messages", "root-2"));
        expect(res.status).toBe(200);
        // acme's alice is online: the answer is acme's data, not the super-admin's own tenant's.
        expect(res.body).toMatchObject({ userId: "alice", status: "online" });
        const own = await get("/api/presence/alice", { Authorization: `Bearer ${tokenFor("platform", "x")}`, "X-Tenant-ID": "platform" });
        expect(own.body).toMatchObject({ status: "offline" });
        // Durable before the data was returned: it is there as soon as the response is.
        const granted = (await records(node, "acme", "admin.cross_tenant_access")).filter(r => r.outcome === "success" && r.actor.userId === "root-2");
        expect(granted).toHaveLength(1);
        expect(granted[0]).toMatchObject({
          justification: "INC-1234: customer reports missing messages",
          actor: { userId: "root-2", role: "super_admin" },
          target: "tenant:acme",
          details: { actorTenantId: "platform", route: "GET /api/presence/:userId", action: "presence.get" }
        });
      } finally {
        socket.close();
      }
    });

    it("accepts the tenant as a tenantId parameter too (X-Tenant-ID then the admin's own)", async () => {
      const res = await get("/api/events/poll?tenantId=acme", superAdmin("platform", "audit of acme's event feed"));
      expect(res.status).toBe(200);
      expect(res.body).toHaveProperty("events");
      const conflicting = await get("/api/events/poll?tenantId=acme", superAdmin("globex", "x"));
      expect(conflicting.status).toBe(400);
      expect(conflicting.body).toMatchObject({ code: "INVALID_REQUEST" });
    });

    it("is read-only: a write to another tenant is 403 AUTHZ_FAILED even with a justification", async () => {
      const res = await fetch(`${node.url}/api/events`, { method: "POST", headers: { ...superAdmin("acme", "fix data"), "Content-Type": "application/json" }, body: JSON.stringify({ message: "hi" }) });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ code: "AUTHZ_FAILED", details: { reason: "read_only" } });
      const feed = await get("/api/events", { Authorization: `Bearer ${tokenFor("acme", "alice")}`, "X-Tenant-ID": "acme" });
      expect(feed.body?.events).toEqual([]);
      await waitForRecords(node, "acme", "admin.cross_tenant_access", 1, r => r.outcome === "denied" && r.details.reason === "read_only");
    });

    it("needs no justification for the super-admin's own tenant", async () => {
      const res = await get("/api/presence/bob", superAdmin("platform"));
      expect(res.status).toBe(200);
    });

    it("gives other roles nothing: X-Tenant-ID of another tenant stays TENANT_VIOLATION, justification or not", async () => {
      const res = await get("/api/presence/alice", { Authorization: `Bearer ${tokenFor("platform", "ops", { role: "admin" })}`, "X-Tenant-ID": "acme", "X-Admin-Justification": "please" });
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: "TENANT_VIOLATION" });
    });

    it("gives super-admins no realtime access to other tenants", async () => {
      const token = tokenFor("platform", "root", { role: "super_admin" });
      const { socket } = await connect(node.url, token);
      try {
        const answer = await request(socket, "message", { type: "chat", tenantId: "acme", recipientId: "alice", payload: {} });
        expect(answer).toMatchObject({ code: "TENANT_VIOLATION" });
        const joined = await request(socket, "join_room", { roomId: "r1", tenantId: "acme" });
        expect(joined).toMatchObject({ code: "TENANT_VIOLATION" });
      } finally {
        socket.close();
      }
      const feed = socketTo(`${node.url}/events`, token, { auth: { tenantId: "acme" } });
      try {
        const { event, payload } = await firstEvent(feed, ["connect_error", "snapshot"]);
        expect(event).toBe("connect_error");
        expect(payload.data).toMatchObject({ code: "TENANT_VIOLATION" });
      } finally {
        feed.close();
      }
      await waitForRecords(node, "platform", "security.tenant_violation", 1, r => r.actor.userId === "root" && r.details.via === "socket.io");
    });
  });

  describe("audit API", () => {
    it("is for super-admins only (403 AUTHZ_FAILED), also for the caller's own tenant", async () => {
      for (const role of ["user", "admin", "service"]) {
        const headers = { Authorization: `Bearer ${tokenFor("acme", "alice", { role })}`, "X-Tenant-ID": "acme" };
        expect((await get("/api/audit?tenantId=acme", headers)).body).toMatchObject({ code: "AUTHZ_FAILED" });
        expect((await get("/api/audit/verify", headers)).status).toBe(403);
        expect((await get("/api/audit?tenantId=globex", headers)).body).toMatchObject({ code: "AUTHZ_FAILED" });
      }
    });

    it("lists a tenant's records oldest first with cursor paging and filters, and audits the read", async () => {
      const tenant = "paging-co";
      for (let i = 0; i < 7; i++) await node.broker.call("audit.append", { tenantId: tenant, actor: { userId: "svc", role: "service" }, action: i % 2 ? "test.odd" : "test.even", target: `item:${i}`, outcome: "success", details: { i } });
      const headers = superAdmin("platform", "quarterly review");
      const seen: number[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const res = await get(`/api/audit?tenantId=${tenant}&action=test.even&limit=2${cursor ? `&cursor=${cursor}` : ""}`, headers);
        expect(res.status).toBe(200);
        for (const r of res.body?.records as AuditRecord[]) {
          expect(r.action).toBe("test.even");
          seen.push(r.details.i as number);
        }
        cursor = res.body?.nextCursor as string | undefined;
        pages++;
      } while (cursor);
      expect(seen).toEqual([0, 2, 4, 6]);
      expect(pages).toBe(2);
      // The reads themselves are in paging-co's chain, after its records.
      const all = await records(node, tenant);
      expect(all.filter(r => r.action === "admin.cross_tenant_access" && r.justification === "quarterly review")).toHaveLength(pages);
      const inFuture = await get(`/api/audit?tenantId=${tenant}&from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`, headers);
      expect(inFuture.body).toMatchObject({ records: [] });
      const bad = await get(`/api/audit?tenantId=${tenant}&from=yesterday`, headers);
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ code: "INVALID_REQUEST" });
    });

    it("verifies a chain, and reports exactly the record that was altered on disk", async () => {
      const tenant = "verify-co";
      for (let i = 0; i < 4; i++) await node.broker.call("audit.append", { tenantId: tenant, actor: { userId: "svc", role: "service" }, action: "test.step", target: `step:${i}`, outcome: "success", details: { step: `s${i}` } });
      const headers = superAdmin("platform", "integrity check");
      const intact = await get(`/api/audit/verify?tenantId=${tenant}`, headers);
      expect(intact.status).toBe(200);
      expect(intact.body).toMatchObject({ tenantId: tenant, ok: true });
      const dir = path.join(node.config.dataDir, "audit");
      const file = readdirSync(dir)
        .map(name => path.join(dir, name))
        .find(f => readFileSync(f, "utf8").includes(`"tenantId":"${tenant}"`)) as string;
      const text = readFileSync(file, "utf8");
      // Same length, so the running store's index still fits the file: only the content changed.
      writeFileSync(file, text.replace('"step":"s2"', '"step":"S2"'));
      const report = (await get(`/api/audit/verify?tenantId=${tenant}`, headers)).body as VerifyReport;
      expect(report).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, reason: "hash_mismatch" } });
    });
  });

  describe("what is audited", () => {
    it("refused REST tokens: one record at once, the flood that follows as one counted record (in the _system chain)", async () => {
      const before = (await records(node, "_system", "security.auth_failed")).filter(r => r.details.via === "rest").length;
      for (let i = 0; i < 20; i++) {
        const res = await get("/api/presence/u1", { Authorization: "Bearer not-a-jwt", "X-Tenant-ID": "acme" });
        expect(res.status).toBe(401);
      }
      const found = await waitForRecords(node, "_system", "security.auth_failed", before + 2, r => r.details.via === "rest");
      const mine = found.slice(before);
      expect(mine[0]).toMatchObject({ actor: { userId: "anonymous" }, outcome: "denied", details: { via: "rest", reason: "malformed", count: 1, source: expect.stringContaining("127.0.0.1") } });
      expect(mine[1].details).toMatchObject({ count: 19, aggregated: true, windowMs: WINDOW_MS });
      await settle(WINDOW_MS * 2);
      expect((await records(node, "_system", "security.auth_failed")).filter(r => r.details.via === "rest")).toHaveLength(before + 2);
    });

    it("refused Socket.IO handshakes", async () => {
      // Expired beyond JWT_CLOCK_SKEW_SECONDS (30 s).
      const refused = await refusal(node.url, tokenFor("acme", "x", {}, { expiresIn: -120 }));
      expect(refused.data).toMatchObject({ code: "AUTH_FAILED" });
      await waitForRecords(node, "_system", "security.auth_failed", 1, r => r.details.via === "socket.io" && r.details.reason === "expired");
    });

    it("TENANT_VIOLATION on REST, in the caller's chain", async () => {
      const res = await get("/api/presence/u1", { Authorization: `Bearer ${tokenFor("acme", "mallory")}`, "X-Tenant-ID": "globex" });
      expect(res.status).toBe(403);
      const [violation] = await waitForRecords(node, "acme", "security.tenant_violation", 1, r => r.actor.userId === "mallory");
      expect(violation).toMatchObject({ outcome: "denied", target: "tenant:globex", actor: { role: "user" }, details: { requestedTenantId: "globex", via: "rest" } });
    });

    it("class D on the realtime path and rate-limit trips", async () => {
      const { socket } = await connect(node.url, tokenFor("acme", "trader"));
      try {
        const answer = await request(socket, "message", { type: "payment.create", interactionClass: "CLASS_D", recipientId: "bank", payload: { amount: 1 } });
        expect(answer).toMatchObject({ code: "INVALID_REQUEST" });
        const [classD] = await waitForRecords(node, "acme", "security.class_d_refused", 1, r => r.actor.userId === "trader");
        expect(classD).toMatchObject({ target: "user:bank", details: { via: "socket.io", type: "payment.create", event: "message" } });
        // WS_MESSAGE_RATE_LIMIT is 5 here; the class D attempt counted as one.
        const answers = [];
        for (let i = 0; i < 6; i++) answers.push(await request(socket, "message", { type: "chat", recipientId: "bob", payload: {}, interactionClass: "CLASS_A" }));
        expect(answers.filter(a => a.code === "RATE_LIMIT").length).toBeGreaterThan(0);
        const [limited] = await waitForRecords(node, "acme", "security.rate_limited", 1, r => r.actor.userId === "trader");
        expect(limited).toMatchObject({ target: "user:trader", details: { limit: "message", via: "socket.io", max: 5 } });
      } finally {
        socket.close();
      }
    });

    it("an operator's kick: recorded before the connection closes, with the result after", async () => {
      const { socket } = await connect(node.url, tokenFor("acme", "troll"));
      const kicked = nextEvent(socket, "system:disconnect");
      const result = await node.broker.call<{ disconnected: number }, object>("gateway.kick", { tenantId: "acme", userId: "troll", reason: "abuse report 42" });
      expect(result.disconnected).toBe(1);
      expect(await kicked).toEqual({ reason: "abuse report 42" });
      await eventually(() => socket.disconnected, 2000, "disconnect");
      const kicks = await waitForRecords(node, "acme", "admin.disconnect", 2);
      expect(kicks.map(r => r.outcome)).toEqual(["requested", "success"]);
      expect(kicks[0]).toMatchObject({ actor: { userId: "operator", role: "operator" }, target: "user:troll", details: { reason: "abuse report 42" } });
      expect(kicks[1].details).toMatchObject({ requestId: kicks[0].id, disconnected: 1 });
    });

    it("a dead-letter redrive: request and result", async () => {
      const result = await node.broker.call<{ redriven: string[] }, object>("eventbus.redrive", { ids: ["no-such-dead-letter"] });
      expect(result.redriven).toEqual([]);
      const redrives = await waitForRecords(node, "_system", "eventbus.redrive", 2);
      expect(redrives.map(r => r.outcome).slice(-2)).toEqual(["requested", "success"]);
      expect(redrives[redrives.length - 1].details).toMatchObject({ ids: 1, idsSample: ["no-such-dead-letter"], redriven: 0, requestId: redrives[redrives.length - 2].id });
    });

    it("every chain written by this test verifies", async () => {
      const { tenants } = await node.broker.call<{ tenants: string[] }>("audit.tenants");
      expect(tenants).toEqual(expect.arrayContaining(["_system", "acme", "platform", "paging-co"]));
      for (const tenantId of tenants.filter(t => t !== "verify-co")) {
        expect(await node.broker.call<VerifyReport, object>("audit.verify", { tenantId })).toMatchObject({ ok: true });
      }
    });
  });
});

describe("audit trail unreachable", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ services: ["gateway", "presence", "rooms", "eventbus"] });
  });
  afterAll(() => node.stop());

  it("a super-admin reads nothing unaudited (5xx, retryable), an operator kicks no one unaudited", async () => {
    const res = await fetch(`${node.url}/api/presence/alice`, {
      headers: { Authorization: `Bearer ${tokenFor("platform", "root", { role: "super_admin" })}`, "X-Tenant-ID": "acme", "X-Admin-Justification": "INC-1" }
    });
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(await res.json()).toMatchObject({ code: "INTERNAL_ERROR", details: { retryable: true, reason: "audit_unavailable" } });
    const { socket } = await connect(node.url, tokenFor("acme", "troll"));
    try {
      await expect(node.broker.call("gateway.kick", { tenantId: "acme", userId: "troll", reason: "x" })).rejects.toMatchObject({ type: "INTERNAL_ERROR", data: { reason: "audit_unavailable" } });
      await expect(node.broker.call("eventbus.redrive", { all: true })).rejects.toMatchObject({ type: "INTERNAL_ERROR", data: { reason: "audit_unavailable" } });
      await settle();
      expect(socket.connected).toBe(true);
    } finally {
      socket.close();
    }
  });

  it("spools the security records it could not send, and delivers them once an audit node is there", async () => {
    const refused = await fetch(`${node.url}/api/presence/u1`, { headers: { Authorization: "Bearer nope", "X-Tenant-ID": "acme" } });
    expect(refused.status).toBe(401);
    const spoolDir = path.join(node.config.dataDir, "audit-spool");
    await eventually(() => {
      try {
        return readdirSync(spoolDir).some(name => readFileSync(path.join(spoolDir, name), "utf8").includes("security.auth_failed"));
      } catch {
        return false;
      }
    }, 5000, "a spooled record");
    // An audit node appears (same process, same data directory): the spool drains into it.
    const { createAuditService } = await import("../../services/audit.service");
    node.broker.createService(createAuditService(node.config));
    await node.broker.waitForServices(["audit"], 5000);
    await eventually(async () => {
      const { records: found } = await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: "_system", action: "security.auth_failed" });
      return found.some(r => r.details.via === "rest");
    }, 10_000, "the spooled record in the audit trail");
  });
});

describe("audit trail on PostgreSQL (DATABASE_URL)", () => {
  let node: TestNode;
  let schema: Awaited<ReturnType<typeof uniqueSchema>>;
  beforeAll(async () => {
    schema = await uniqueSchema("audit_node");
    node = await startNode({ config: { databaseUrl: schema.url } });
  });
  afterAll(async () => {
    await node.stop();
    await schema.drop();
  });

  it("records a super-admin's justified read in PostgreSQL and verifies it", async () => {
    const res = await fetch(`${node.url}/api/presence/alice`, {
      headers: { Authorization: `Bearer ${tokenFor("platform", "root", { role: "super_admin" })}`, "X-Tenant-ID": "acme", "X-Admin-Justification": "INC-77" }
    });
    expect(res.status).toBe(200);
    const { records: found } = await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: "acme" });
    expect(found).toMatchObject([{ seq: 1, action: "admin.cross_tenant_access", justification: "INC-77", outcome: "success" }]);
    expect(await node.broker.call("audit.stats")).toMatchObject({ status: "healthy", backend: "postgres" });
    expect(await node.broker.call("audit.verify", { tenantId: "acme" })).toMatchObject({ ok: true, checked: 1 });
  });
});
