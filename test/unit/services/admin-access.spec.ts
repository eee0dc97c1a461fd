import type { Context, ServiceBroker } from "moleculer";
import type { AdminAccess } from "../../../lib/context";
import { TenantScopeMixin } from "../../../mixins/tenant-scope.mixin";
import { authorizeRestRequest } from "../../../protocols/admin-access";
import { createAuditService } from "../../../services/audit.service";
import type { AuditRecord } from "../../../lib/audit-chain";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { newBroker, rejectionOf, stopAll, testConfig } from "./support";

/**
 * The super-admin path in isolation: the tenant-scope mixin honours an admin-access grant only for
 * the super-admin it was given to and the tenant it names, and the REST authorizer grants one only
 * after the audit record is durable.
 */
const brokers: ServiceBroker[] = [];
let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(tmpdir(), "pf2-admin-access-"));
});
afterEach(async () => {
  await stopAll(brokers);
  rmSync(dataDir, { recursive: true, force: true });
});

async function brokerWithScopedAction(): Promise<ServiceBroker> {
  const broker = newBroker();
  brokers.push(broker);
  broker.createService({
    name: "scoped",
    mixins: [TenantScopeMixin()],
    actions: {
      read: {
        params: { tenantId: "string" },
        handler: (ctx: Context<{ tenantId: string }>) => ({ tenantId: ctx.params.tenantId })
      }
    }
  });
  broker.createService(createAuditService(testConfig({ dataDir })));
  await broker.start();
  return broker;
}

const grant = (over: Partial<AdminAccess> = {}): AdminAccess => ({ tenantId: "acme", userId: "root", justification: "INC-1", auditId: "a1", ...over });
const superAdmin = { tenantId: "platform", userId: "root", role: "super_admin" };

describe("the tenant-scope mixin and admin-access grants", () => {
  it("lets a super-admin's granted call name the granted tenant", async () => {
    const broker = await brokerWithScopedAction();
    expect(await broker.call("scoped.read", { tenantId: "acme" }, { meta: { auth: superAdmin, adminAccess: grant() } })).toEqual({ tenantId: "acme" });
  });

  it.each([
    ["another tenant than granted", { tenantId: "globex" }, superAdmin, grant()],
    ["a grant made out to another user", { tenantId: "acme" }, superAdmin, grant({ userId: "someone-else" })],
    ["a caller who is not a super-admin", { tenantId: "acme" }, { ...superAdmin, role: "admin" }, grant()],
    ["no grant", { tenantId: "acme" }, superAdmin, undefined]
  ])("refuses %s with TENANT_VIOLATION", async (_label, params, auth, adminAccess) => {
    const broker = await brokerWithScopedAction();
    const err = await rejectionOf(broker.call("scoped.read", params, { meta: { auth, ...(adminAccess ? { adminAccess } : {}) } }));
    expect(err.type).toBe("TENANT_VIOLATION");
  });
});

describe("authorizeRestRequest", () => {
  const request = (over: Record<string, unknown> = {}) => ({
    principal: superAdmin,
    method: "GET",
    path: "/api/presence/alice",
    route: "GET /api/presence/:userId",
    action: "presence.get",
    headers: { "x-tenant-id": "acme", "x-admin-justification": "INC-9" } as Record<string, string>,
    params: { userId: "alice" } as Record<string, unknown>,
    ...over
  });

  it("grants a justified read only after its audit record is in the target tenant's chain", async () => {
    const broker = await brokerWithScopedAction();
    const req = request();
    const access = await authorizeRestRequest({ broker, logger: broker.logger }, req);
    expect(access).toMatchObject({ tenantId: "acme", userId: "root", justification: "INC-9" });
    expect(req.params.tenantId).toBe("acme");
    const { records } = await broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: "acme" });
    expect(records).toMatchObject([{ id: access?.auditId, action: "admin.cross_tenant_access", outcome: "success", justification: "INC-9", actor: { userId: "root", role: "super_admin" } }]);
  });

  it("binds other roles to their token's tenant, as before", async () => {
    const broker = await brokerWithScopedAction();
    const req = request({ principal: { tenantId: "acme", userId: "u", role: "user" }, headers: { "x-tenant-id": "acme" } });
    expect(await authorizeRestRequest({ broker, logger: broker.logger }, req)).toBeUndefined();
    expect(req.params.tenantId).toBe("acme");
    const err = await rejectionOf(authorizeRestRequest({ broker, logger: broker.logger }, request({ principal: { tenantId: "acme", userId: "u", role: "user" }, params: { tenantId: "globex" } })));
    expect(err.type).toBe("TENANT_VIOLATION");
  });

  it("refuses an over-long justification with INVALID_REQUEST", async () => {
    const broker = await brokerWithScopedAction();
    const err = await rejectionOf(authorizeRestRequest({ broker, logger: broker.logger }, request({ headers: { "x-tenant-id": "acme", "x-admin-justification": "x".repeat(1001) } })));
    expect(err.type).toBe("INVALID_REQUEST");
  });
});
