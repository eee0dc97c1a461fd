import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { eventually } from "../helpers/client";
import { startNode, type TestNode } from "../helpers/node";
import { POSTGRES_URL, uniqueSchema } from "../helpers/postgres";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy";
import { tokenFor } from "../helpers/tokens";

/**
 * PostgreSQL (the audit trail's backend) goes away and comes back, behind a cuttable TCP proxy in
 * front of the real server. What must hold (issue 6): no crash; what must be audited first
 * (super-admin reads, operator actions) is refused while the audit trail cannot take its record;
 * records of refusals that already happened are spooled durably on the node and reach the trail
 * once it is back; nothing is dropped silently; the chain still verifies.
 */
const OUTAGE_MS = Number(process.env.OUTAGE_SECONDS ?? 5) * 1000;
const RECOVERY_MS = 5000;
const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

interface AuditRecord {
  action: string;
  outcome: string;
  details: Record<string, unknown>;
}

describe(`PostgreSQL down for ${OUTAGE_MS / 1000} s, then back (audit trail)`, () => {
  let proxy: TcpProxy;
  let schema: Awaited<ReturnType<typeof uniqueSchema>>;
  let node: TestNode;

  beforeAll(async () => {
    schema = await uniqueSchema("pg_outage");
    proxy = await startTcpProxy(Number(new URL(POSTGRES_URL).port || 5432));
    const viaProxy = new URL(schema.url);
    viaProxy.port = String(proxy.port);
    node = await startNode({ config: { databaseUrl: viaProxy.toString(), auditAggregationWindowMs: 0 } });
  });

  afterAll(async () => {
    await node?.stop();
    await proxy?.close();
    await schema?.drop();
  });

  const superAdminRead = () =>
    fetch(`${node.url}/api/presence/alice`, {
      headers: { Authorization: `Bearer ${tokenFor("platform", "root", { role: "super_admin" })}`, "X-Tenant-ID": "acme", "X-Admin-Justification": "INC-7" }
    });
  const refusedTenant = () =>
    fetch(`${node.url}/api/presence/alice`, { headers: { Authorization: `Bearer ${tokenFor("acme", "mallory")}`, "X-Tenant-ID": "globex" } });
  const violations = async () =>
    (await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: "acme", action: "security.tenant_violation", limit: 1000 })).records;

  it("refuses what must be audited first, spools what already happened, and catches up within 5 s of its return", async () => {
    expect((await superAdminRead()).status).toBe(200);
    expect((await refusedTenant()).status).toBe(403);
    await eventually(async () => (await violations()).length === 1, 3000, "the first violation record");

    await proxy.cut();
    const downAt = Date.now();
    // Operator actions and super-admin reads are refused, never done unaudited.
    const read = await superAdminRead();
    expect(read.status).toBeGreaterThanOrEqual(500);
    expect(await read.json()).toMatchObject({ code: "INTERNAL_ERROR", details: { reason: "audit_unavailable", retryable: true } });
    await expect(node.broker.call("gateway.kick", { tenantId: "acme", userId: "troll", reason: "x" })).rejects.toMatchObject({ data: { reason: "audit_unavailable" } });
    // /health names the dependency.
    await eventually(async () => {
      const h = (await (await fetch(`${node.url}/health`)).json()) as { status: string; degradedBy?: string[] };
      return h.status === "degraded" && (h.degradedBy ?? []).includes("audit");
    }, 5000, "/health degraded by audit");
    // Refusals go on (the tenant guard does not depend on the audit trail) and are spooled.
    const refusedWhileDown = 5;
    for (let i = 0; i < refusedWhileDown; i++) expect((await refusedTenant()).status).toBe(403);
    const spoolDir = path.join(node.config.dataDir, "audit-spool");
    await eventually(() => existsSync(spoolDir) && readdirSync(spoolDir).length > 0, 5000, "records spooled on disk");
    await delay(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));

    await proxy.restore();
    const backAt = Date.now();
    await eventually(async () => (await superAdminRead()).status === 200, RECOVERY_MS, "super-admin reads audited again");
    await eventually(async () => (await violations().catch(() => [])).length === 1 + refusedWhileDown, RECOVERY_MS - (Date.now() - backAt), "spooled records in the trail");
    const recoveredAfterMs = Date.now() - backAt;
    expect(await node.broker.call("audit.verify", { tenantId: "acme" })).toMatchObject({ ok: true });
    expect(await node.broker.call("audit.verify", { tenantId: "platform" })).toMatchObject({ ok: true });
    const reads = (await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: "acme", action: "admin.cross_tenant_access", limit: 100 })).records;
    // One before the outage, one after: the refused read left no grant behind.
    expect(reads.filter(r => r.outcome === "success")).toHaveLength(2);
    // eslint-disable-next-line no-console
    console.log(`[resilience] PostgreSQL outage: ${JSON.stringify({ outageMs: OUTAGE_MS, refusedWhileDown, spooledThenStored: refusedWhileDown, lost: 0, recoveredAfterMs })}`);
  }, 60_000);
});
