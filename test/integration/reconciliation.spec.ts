import { createHash, randomUUID } from "node:crypto";
import { Client as PgClient } from "pg";
import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, nextEvent, recorder, settle, socketTo } from "../helpers/client";
import { uniqueSchema } from "../helpers/postgres";
import { tokenFor } from "../helpers/tokens";
import { fetchJson } from "../helpers/http";

/**
 * Reconciliation over REST on a real gateway (seed 000): `POST /api/reconciliation/reconcile` and
 * `GET /api/reconciliation/snapshot/:entityType/:entityId`, every error code, the class C push of
 * applied operations to online clients, and the PostgreSQL backend (durability, timeout).
 */

const freshTenant = () => `t-${randomUUID().slice(0, 8)}`;
const T = "2026-01-30T12:00:00.000Z";
const later = (ms: number) => new Date(Date.parse(T) + ms).toISOString();

/** An independent check of the checksum rule for plain data: keys sorted, no whitespace, SHA-256 hex. */
function jcsSha256(value: unknown): string {
  const encode = (v: unknown): string => {
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    if (Array.isArray(v)) return `[${v.map(encode).join(",")}]`;
    return `{${Object.keys(v)
      .sort()
      .map(k => `${JSON.stringify(k)}:${encode((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  };
  return createHash("sha256").update(encode(value), "utf8").digest("hex");
}

interface OpInput {
  operationId?: string;
  clientId: string;
  tenantId: string;
  entityType?: string;
  entityId?: string;
  operationType?: string;
  payload?: unknown;
  timestamp?: string;
  vectorClock?: Record<string, number>;
}

function op(input: OpInput) {
  return {
    operationId: input.operationId ?? `op-${randomUUID().slice(0, 8)}`,
    entityType: "document",
    entityId: "doc-456",
    operationType: "UPDATE",
    payload: {},
    timestamp: T,
    vectorClock: { [input.clientId]: 1 },
    ...input
  };
}

function suite(label: string, nodeConfig: () => Promise<{ config: Record<string, unknown>; cleanup(): Promise<void> }>) {
  describe(`reconciliation REST (${label})`, () => {
    let node: TestNode;
    let cleanup: () => Promise<void>;
    const sockets: Socket[] = [];

    beforeAll(async () => {
      const prepared = await nodeConfig();
      cleanup = prepared.cleanup;
      node = await startNode({ services: ["gateway", "presence", "rooms", "eventbus", "reconciliation"], config: { reconciliationMaxQueueSize: 20, reconciliationMaxRequestBytes: 16 * 1024, ...prepared.config } });
    });
    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });
    afterAll(async () => {
      await node.stop();
      await cleanup();
    });

    const headers = (tenantId: string, userId = "u1") => ({ Authorization: `Bearer ${tokenFor(tenantId, userId)}`, "X-Tenant-ID": tenantId, "Content-Type": "application/json" });

    async function reconcile(tenantId: string, body: Record<string, unknown>, extraHeaders: Record<string, string> = {}) {
      return fetchJson(`${node.url}/api/reconciliation/reconcile`, { method: "POST", headers: { ...headers(tenantId), ...extraHeaders }, body: JSON.stringify(body) });
    }

    async function snapshot(tenantId: string, entityType: string, entityId: string) {
      return fetchJson(`${node.url}/api/reconciliation/snapshot/${encodeURIComponent(entityType)}/${encodeURIComponent(entityId)}`, { headers: headers(tenantId) });
    }

    const request = (tenantId: string, clientId: string, operations: unknown[], extra: Record<string, unknown> = {}) => ({
      requestId: `req-${randomUUID().slice(0, 8)}`,
      clientId,
      tenantId,
      operations,
      requestedAt: T,
      ...extra
    });

    describe("reconcile and snapshot", () => {
      it("applies an offline CREATE, answers in the seed shape with deltas, and serves the snapshot with a verifiable checksum", async () => {
        const t = freshTenant();
        // A client's first request (no lastKnownVersion) gets the tenant's state as a full snapshot.
        const first = await reconcile(t, request(t, "client-789", []));
        expect(first.status).toBe(200);
        expect(first.body).toMatchObject({ conflicts: [], resolvedOperations: [], snapshot: { full: true, hasMore: false, entities: [] }, currentVersion: expect.stringMatching(/\.0$/) });
        expect(first.body.deltaUpdates).toBeUndefined();

        const create = op({ clientId: "client-789", tenantId: t, operationType: "CREATE", payload: { content: "Hello", tags: ["a", "b"], meta: { z: 1, a: 2 } } });
        const res = await reconcile(t, request(t, "client-789", [create], { lastKnownVersion: first.body.currentVersion }));
        expect(res.status).toBe(200);
        expect(res.body).toEqual({
          requestId: expect.any(String),
          conflicts: [],
          resolvedOperations: [{ ...create, status: "APPLIED", version: res.body.currentVersion }],
          currentVersion: expect.stringMatching(/^[A-Za-z0-9_-]+\.1$/),
          deltaUpdates: [
            expect.objectContaining({ version: res.body.currentVersion, entityType: "document", entityId: "doc-456", operationId: create.operationId, data: create.payload, deleted: false, checksum: jcsSha256(create.payload) })
          ],
          duplicates: [],
          completedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/)
        });

        const snap = await snapshot(t, "document", "doc-456");
        expect(snap.status).toBe(200);
        expect(snap.body).toEqual({
          snapshotId: expect.any(String),
          tenantId: t,
          entityType: "document",
          entityId: "doc-456",
          version: res.body.currentVersion,
          data: { content: "Hello", tags: ["a", "b"], meta: { z: 1, a: 2 } },
          deleted: false,
          vectorClock: { "client-789": 1 },
          createdAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
          checksum: jcsSha256({ content: "Hello", tags: ["a", "b"], meta: { z: 1, a: 2 } })
        });
        // The same state has the same snapshot id.
        expect((await snapshot(t, "document", "doc-456")).body.snapshotId).toBe(snap.body.snapshotId);
      });

      it("reports a concurrent write as a conflict with both sides (LAST_WRITE_WINS by default)", async () => {
        const t = freshTenant();
        await reconcile(t, request(t, "A", [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { title: "t0", body: "b0" }, timestamp: later(0) })]));
        // B and C both saw A's create, then edited offline.
        const b = await reconcile(t, request(t, "B", [op({ clientId: "B", tenantId: t, payload: { body: "from B" }, timestamp: later(10), vectorClock: { A: 1, B: 1 } })]));
        expect(b.body.conflicts).toEqual([]);
        const cOp = op({ clientId: "C", tenantId: t, payload: { body: "from C" }, timestamp: later(5), vectorClock: { A: 1, C: 1 } });
        const c = await reconcile(t, request(t, "C", [cOp], { lastKnownVersion: b.body.currentVersion }));
        expect(c.status).toBe(200);
        expect(c.body.conflicts).toEqual([
          expect.objectContaining({
            operationId: cOp.operationId,
            kind: "CONCURRENT",
            strategy: "LAST_WRITE_WINS",
            resolution: "SERVER_WON",
            serverVersion: expect.objectContaining({ data: { title: "t0", body: "from B" }, vectorClock: { A: 1, B: 1 } }),
            clientVersion: expect.objectContaining({ payload: { body: "from C" }, vectorClock: { A: 1, C: 1 } })
          })
        ]);
        expect(c.body.resolvedOperations).toEqual([expect.objectContaining({ operationId: cOp.operationId, status: "REJECTED", version: null, conflictId: c.body.conflicts[0].conflictId })]);
        // Nothing changed since B: no deltas after B's version.
        expect(c.body.deltaUpdates).toEqual([]);
        expect(c.body.currentVersion).toBe(b.body.currentVersion);
      });

      it("lets a request choose its strategy (MANUAL: nothing applied, both versions returned)", async () => {
        const t = freshTenant();
        const created = await reconcile(t, request(t, "A", [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { n: 1 } })]));
        const mine = op({ clientId: "B", tenantId: t, payload: { n: 2 }, timestamp: later(60_000), vectorClock: { B: 1 } });
        const res = await reconcile(t, request(t, "B", [mine], { strategy: "MANUAL", lastKnownVersion: created.body.currentVersion }));
        expect(res.body.conflicts).toEqual([expect.objectContaining({ operationId: mine.operationId, strategy: "MANUAL", resolution: "UNRESOLVED", serverVersion: expect.objectContaining({ data: { n: 1 } }), clientVersion: expect.objectContaining({ payload: { n: 2 } }) })]);
        expect(res.body.resolvedOperations).toEqual([]);
        expect((await snapshot(t, "document", "doc-456")).body.data).toEqual({ n: 1 });
      });

      it("never applies a replayed request or operation twice, and answers it with the same outcome", async () => {
        const t = freshTenant();
        const body = request(t, "A", [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { n: 1 } }), op({ clientId: "A", tenantId: t, payload: { n: 2 }, vectorClock: { A: 2 } })]);
        const first = await reconcile(t, body);
        const again = await reconcile(t, body);
        expect(again.status).toBe(200);
        expect(again.body.resolvedOperations).toEqual(first.body.resolvedOperations);
        expect(again.body.conflicts).toEqual(first.body.conflicts);
        expect(again.body.duplicates.sort()).toEqual(body.operations.map(o => (o as { operationId: string }).operationId).sort());
        expect(again.body.currentVersion).toBe(first.body.currentVersion);
        const snap = await snapshot(t, "document", "doc-456");
        expect(snap.body.data).toEqual({ n: 2 });
        expect(snap.body.version).toBe(first.body.currentVersion);
      });

      it("sends a snapshot instead of deltas when the client's version is unknown", async () => {
        const t = freshTenant();
        await reconcile(t, request(t, "A", [op({ clientId: "A", tenantId: t, entityId: "x", operationType: "CREATE", payload: { n: 1 } })]));
        const res = await reconcile(t, request(t, "B", [], { lastKnownVersion: "v1.0" }));
        expect(res.status).toBe(200);
        expect(res.body.deltaUpdates).toBeUndefined();
        expect(res.body.snapshot).toMatchObject({ full: true, hasMore: false, version: res.body.currentVersion, entities: [expect.objectContaining({ entityId: "x", data: { n: 1 }, checksum: jcsSha256({ n: 1 }) })] });
      });

      it("publishes applied operations to the tenant's stream as class C events, live and on resume", async () => {
        const t = freshTenant();
        const { socket: online } = await connect(node.url, tokenFor(t, "viewer"));
        sockets.push(online);
        const { socket: elsewhere } = await connect(node.url, tokenFor(freshTenant(), "viewer"));
        sockets.push(elsewhere);
        const leaked = recorder(elsewhere, "event");
        const got = nextEvent(online, "event");
        const create = op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { live: true } });
        const res = await reconcile(t, request(t, "A", [create]));
        const event = await got;
        expect(event).toMatchObject({
          eventType: "reconciliation.applied",
          tenantId: t,
          metadata: { interactionClass: "CLASS_C", source: "reconciliation", clientId: "A", requestId: expect.any(String) },
          payload: { version: res.body.currentVersion, operationId: create.operationId, entityType: "document", entityId: "doc-456", data: { live: true }, checksum: jcsSha256({ live: true }) },
          position: expect.any(String)
        });

        // An offline socket catches up from its last position.
        online.close();
        const update = op({ clientId: "A", tenantId: t, payload: { live: false }, vectorClock: { A: 2 } });
        const second = await reconcile(t, request(t, "A", [update]));
        // Listeners go on before the handshake: the replay follows `connected` immediately.
        const back = socketTo(node.url, tokenFor(t, "viewer"), { auth: { lastEventId: event.position } });
        sockets.push(back);
        const replayed: any[] = recorder(back, "event");
        expect(await nextEvent(back, "connected", 5000)).toMatchObject({ recovered: true });
        await eventually(() => replayed.length > 0, 3000, "the replayed event");
        expect(replayed[0]).toMatchObject({ eventType: "reconciliation.applied", payload: { version: second.body.currentVersion, data: { live: false } } });
        await settle();
        expect(leaked).toEqual([]);
      });
    });

    it("appears in /health", async () => {
      const res = await fetch(`${node.url}/health`);
      expect(await res.json()).toMatchObject({ status: "healthy", services: { reconciliation: { status: "healthy", backend: label === "memory" ? "memory" : "postgres" } } });
    });

    describe("errors", () => {
      it("401 AUTH_FAILED without a valid token", async () => {
        const t = freshTenant();
        const res = await fetch(`${node.url}/api/reconciliation/reconcile`, { method: "POST", headers: { "X-Tenant-ID": t, "Content-Type": "application/json" }, body: JSON.stringify(request(t, "A", [])) });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ code: "AUTH_FAILED" });
        const snap = await fetch(`${node.url}/api/reconciliation/snapshot/document/x`, { headers: { Authorization: "Bearer nope", "X-Tenant-ID": t } });
        expect(snap.status).toBe(401);
      });

      it("403 TENANT_VIOLATION for a body tenantId, an X-Tenant-ID or an operation of another tenant, applying nothing", async () => {
        const t = freshTenant();
        const other = freshTenant();
        const body = await reconcile(t, request(other, "A", [op({ clientId: "A", tenantId: other })]));
        expect(body.status).toBe(403);
        expect(body.body).toMatchObject({ code: "TENANT_VIOLATION" });

        const header = await reconcile(t, request(t, "A", []), { "X-Tenant-ID": other });
        expect(header.status).toBe(403);
        expect(header.body).toMatchObject({ code: "TENANT_VIOLATION" });

        const mine = op({ clientId: "A", tenantId: t, entityId: "kept-out", operationType: "CREATE", payload: { n: 1 } });
        const foreign = op({ clientId: "A", tenantId: other, entityId: "kept-out-2", operationType: "CREATE", payload: { n: 1 } });
        const ops = await reconcile(t, request(t, "A", [mine, foreign]));
        expect(ops.status).toBe(403);
        expect(ops.body).toMatchObject({ code: "TENANT_VIOLATION", details: { operationIndex: 1, operationId: foreign.operationId, field: "operations[1].tenantId" } });
        expect((await snapshot(t, "document", "kept-out")).status).toBe(404);
        expect((await snapshot(other, "document", "kept-out-2")).status).toBe(404);
      });

      it("400 INVALID_REQUEST naming the failing operation, applying none of the request", async () => {
        const t = freshTenant();
        const good = op({ clientId: "A", tenantId: t, entityId: "never", operationType: "CREATE", payload: { n: 1 } });
        const cases: Array<[Record<string, unknown>, string]> = [
          [{ operationType: "UPSERT" }, "operationType"],
          [{ vectorClock: { A: -1 } }, "vectorClock"],
          [{ vectorClock: { B: 1 } }, "vectorClock"],
          [{ timestamp: "yesterday" }, "timestamp"],
          [{ payload: [1, 2] }, "payload"],
          [{ clientId: "someone-else" }, "clientId"],
          [{ entityId: "" }, "entityId"]
        ];
        for (const [change, field] of cases) {
          const bad = { ...op({ clientId: "A", tenantId: t, operationId: "bad-op" }), ...change };
          const res = await reconcile(t, request(t, "A", [good, bad]));
          expect([field, res.status]).toEqual([field, 400]);
          expect(res.body).toMatchObject({ code: "INVALID_REQUEST", details: { operationIndex: 1, operationId: "bad-op", field: `operations[1].${field}` } });
          expect(res.body.error).toContain("bad-op");
        }
        expect((await snapshot(t, "document", "never")).status).toBe(404);

        const missing = await reconcile(t, { clientId: "A", tenantId: t, operations: [] });
        expect(missing.status).toBe(400);
        expect(missing.body).toMatchObject({ code: "INVALID_REQUEST", details: [expect.objectContaining({ field: "requestId" })] });
      });

      it("400 INVALID_REQUEST for more operations than RECONCILIATION_MAX_QUEUE_SIZE, applying none", async () => {
        const t = freshTenant();
        const ops = Array.from({ length: 21 }, (_, i) => op({ clientId: "A", tenantId: t, entityId: `e${i}`, operationType: "CREATE", payload: { i } }));
        const res = await reconcile(t, request(t, "A", ops));
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({ code: "INVALID_REQUEST", details: { reason: "too_many_operations", limit: 20, count: 21 } });
        expect((await snapshot(t, "document", "e0")).status).toBe(404);
        expect((await reconcile(t, request(t, "A", ops.slice(0, 20)))).status).toBe(200);
      });

      it("413 INVALID_REQUEST for a body over RECONCILIATION_MAX_REQUEST_BYTES", async () => {
        const t = freshTenant();
        const res = await reconcile(t, request(t, "A", [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { text: "x".repeat(20 * 1024) } })]));
        expect(res.status).toBe(413);
        expect(res.body).toMatchObject({ code: "INVALID_REQUEST" });
      });

      it("429 RATE_LIMIT after 10 requests of one client in a minute, with Retry-After; other clients unaffected", async () => {
        const t = freshTenant();
        for (let i = 0; i < 10; i++) {
          const ok = await reconcile(t, request(t, "busy", []));
          expect(ok.status).toBe(200);
          // The tighter of API_RATE_LIMIT and this client's reconcile limit.
          expect([ok.headers.get("x-ratelimit-limit"), ok.headers.get("x-ratelimit-remaining")]).toEqual(["10", String(9 - i)]);
        }
        const refused = await reconcile(t, request(t, "busy", []));
        expect(refused.status).toBe(429);
        expect(refused.body).toMatchObject({ code: "RATE_LIMIT", details: { limit: 10, windowMs: 60_000, retryAfterMs: expect.any(Number) } });
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
        expect((await reconcile(t, request(t, "calm", []))).status).toBe(200);
      });

      it("404 NOT_FOUND for an entity that never existed or was deleted", async () => {
        const t = freshTenant();
        const absent = await snapshot(t, "document", "nothing");
        expect(absent.status).toBe(404);
        expect(absent.body).toMatchObject({ code: "NOT_FOUND" });
        await reconcile(t, request(t, "A", [op({ clientId: "A", tenantId: t, entityId: "gone", operationType: "CREATE", payload: { n: 1 } }), op({ clientId: "A", tenantId: t, entityId: "gone", operationType: "DELETE", vectorClock: { A: 2 } })]));
        const gone = await snapshot(t, "document", "gone");
        expect(gone.status).toBe(404);
        expect(gone.body).toMatchObject({ code: "NOT_FOUND", details: { deleted: true, version: expect.any(String) } });
        expect((await snapshot(t, "bad type!", "x")).status).toBe(400);
      });
    });
  });
}

suite("memory", async () => ({ config: {}, cleanup: async () => undefined }));

suite("PostgreSQL", async () => {
  const schema = await uniqueSchema("reconciliation_rest");
  return { config: { databaseUrl: schema.url }, cleanup: schema.drop };
});

describe("reconciliation on PostgreSQL: durability and RECONCILIATION_PROCESSING_TIMEOUT", () => {
  let schema: Awaited<ReturnType<typeof uniqueSchema>>;
  beforeAll(async () => {
    schema = await uniqueSchema("reconciliation_durable");
  });
  afterAll(() => schema.drop());

  const post = (node: TestNode, tenantId: string, body: unknown) =>
    fetchJson(`${node.url}/api/reconciliation/reconcile`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor(tenantId, "u1")}`, "X-Tenant-ID": tenantId, "Content-Type": "application/json" },
      body: JSON.stringify(body)
    });

  it("keeps state and outcomes across a node restart", async () => {
    const t = freshTenant();
    const body = { requestId: "r1", clientId: "A", tenantId: t, operations: [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { kept: true } })] };
    const first = await startNode({ services: ["gateway", "eventbus", "reconciliation"], config: { databaseUrl: schema.url } });
    let applied;
    try {
      applied = await post(first, t, body);
      expect(applied.status).toBe(200);
    } finally {
      await first.stop();
    }
    const second = await startNode({ services: ["gateway", "eventbus", "reconciliation"], config: { databaseUrl: schema.url } });
    try {
      const replay = await post(second, t, body);
      expect(replay.body.resolvedOperations).toEqual(applied.body.resolvedOperations);
      expect(replay.body.duplicates).toEqual([body.operations[0].operationId]);
      expect(replay.body.currentVersion).toBe(applied.body.currentVersion);
      const res = await fetch(`${second.url}/api/reconciliation/snapshot/document/doc-456`, { headers: { Authorization: `Bearer ${tokenFor(t, "u1")}`, "X-Tenant-ID": t } });
      expect(await res.json()).toMatchObject({ data: { kept: true }, version: applied.body.currentVersion });
    } finally {
      await second.stop();
    }
  });

  it("fails a request that cannot finish in time with a retryable INTERNAL_ERROR, applying nothing; the retry applies it once", async () => {
    const t = freshTenant();
    const node = await startNode({ services: ["gateway", "eventbus", "reconciliation"], config: { databaseUrl: schema.url, reconciliationProcessingTimeoutMs: 300 } });
    const holder = new PgClient({ connectionString: schema.url });
    try {
      await post(node, t, { requestId: "warm", clientId: "A", tenantId: t, operations: [] });
      await holder.connect();
      // Another node is in the middle of a long transaction on this tenant.
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM reconciliation_tenants WHERE tenant_id = $1 FOR UPDATE", [t]);
      const body = { requestId: "slow", clientId: "A", tenantId: t, operations: [op({ clientId: "A", tenantId: t, operationType: "CREATE", payload: { n: 1 } })] };
      const timedOut = await post(node, t, body);
      expect(timedOut.status).toBeGreaterThanOrEqual(500);
      expect(timedOut.body).toMatchObject({ code: "INTERNAL_ERROR", details: { retryable: true, reason: "processing_timeout" } });
      await holder.query("ROLLBACK");
      const retried = await post(node, t, body);
      expect(retried.status).toBe(200);
      expect(retried.body.resolvedOperations).toEqual([expect.objectContaining({ status: "APPLIED" })]);
      expect(retried.body.duplicates).toEqual([]);
    } finally {
      await holder.end().catch(() => undefined);
      await node.stop();
    }
  });
});
