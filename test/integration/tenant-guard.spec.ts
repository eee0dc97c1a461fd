import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { Context, Service, ServiceSchema } from "moleculer";
import { startNode, type TestNode } from "../helpers/node";
import { minimalParams } from "../helpers/action-params";
import { eventually } from "../helpers/client";
import { TENANT_GUARD_METADATA, TENANT_VIOLATION_EVENT, checkTenant, isTenantScoped } from "../../mixins/tenant-scope.mixin";
import type { Principal } from "../../lib/auth";

/**
 * Tenant guard everywhere (issue #5, seed 001 INV-002): one broker with every service of
 * services/, every action it registers enumerated from the registry. A service or action added
 * later is covered without touching this file: it is either tenant-scoped (its params declare
 * `tenantId`) and then must refuse another tenant, or it must be added to the reviewed allow-list.
 */

/**
 * Actions that take no tenant, each reviewed: none may expose tenant data. A new action without
 * `tenantId` fails the test until it is reviewed and listed here with its reason.
 */
const NOT_TENANT_SCOPED: Record<string, string> = {
  "gateway.health": "GET /health: node and dependency status, no tenant data",
  "gateway.live": "GET /health/live: liveness probe",
  "gateway.ready": "GET /health/ready: readiness probe (connection counts only)",
  "presence.heartbeat": "gateway → presence, cluster-internal (visibility public): refreshes the gateway's own connections across tenants",
  "rooms.removeNode": "presence → rooms, cluster-internal (visibility public): drops a dead node's memberships across tenants",
  "eventbus.stats": "health figures (events/s, backend, dead-letter count), no event content",
  "reconciliation.stats": "health figures (store backend and latency), no tenant data",
  "audit.tenants": "operators (REPL/CLI): the tenants that have an audit chain; refuses every caller with a principal but a super-admin",
  "audit.purge": "operators: the retention purge across tenants (also daily); refuses every caller with a principal",
  "audit.stats": "health figures of the audit backend (status, backend name, retention), no records",
  "presence.applyMany": "gateway → presence, cluster-internal (visibility public): one batch of the gateway's connects and disconnects of several tenants, each op carrying its own tenantId; a caller with a principal may only send its own tenant's",
  "eventbus.appendMany": "gateway → eventbus, cluster-internal (visibility public): one batch of class B/C messages of several tenants, each event carrying its own tenantId; a caller with a principal may only append its own tenant's"
};

/** Services the test adds itself. */
const TEST_SERVICES = new Set(["$node", "tenant-guard-probe"]);

/** Roles tried in each cross-tenant attempt: roles never cross tenants. */
const ROLES = ["user", "admin", "super_admin"];

const TENANT = "tenant-a";
const OTHER = "tenant-b";

interface Violation {
  tenantId: string;
  userId: string;
  requestedTenantId: string;
  action?: string;
  nodeID?: string;
  at: string;
}

interface ScopedAction {
  name: string;
  params: Record<string, unknown>;
}

const asClient = (tenantId: string, userId: string, role: string): { meta: { auth: Principal } } => ({ meta: { auth: { tenantId, userId, role } } });

async function outcomeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    const e = err as { type?: unknown; code?: unknown };
    return `${String(e.type)}/${String(e.code)}`;
  }
}

/** Every `create…Service` factory of services/*.service.ts, keyed by file. */
function serviceFactories(): Array<{ file: string; factory: (config: TestNode["config"]) => ServiceSchema }> {
  const dir = join(__dirname, "../../services");
  return readdirSync(dir)
    .filter(file => file.endsWith(".service.ts"))
    .map(file => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const module = require(join(dir, file)) as Record<string, unknown>;
      const name = Object.keys(module).find(key => /^create\w*Service$/.test(key) && typeof module[key] === "function");
      if (!name) throw new Error(`services/${file} exports no create…Service(config) factory`);
      return { file, factory: module[name] as (config: TestNode["config"]) => ServiceSchema };
    });
}

describe("tenant guard on every action of every service", () => {
  let node: TestNode;
  /** Violation events received, by action: one per refused attempt. */
  const violationsByAction = new Map<string, Violation[]>();
  let scoped: ScopedAction[];
  let unscoped: string[];

  beforeAll(async () => {
    node = await startNode();
    // Services startNode does not know yet are created from their factory, so every file counts.
    for (const { factory } of serviceFactories()) {
      const schema = factory(node.config);
      if (!node.broker.getLocalService(schema.name)) node.broker.createService(schema);
    }
    node.broker.createService({
      name: "tenant-guard-probe",
      events: {
        [TENANT_VIOLATION_EVENT](ctx: Context<Violation>) {
          const key = ctx.params.action ?? "?";
          violationsByAction.set(key, [...(violationsByAction.get(key) ?? []), ctx.params]);
        }
      }
    });
    await node.broker.waitForServices(node.broker.services.map(s => s.name).filter(n => n !== "$node"), 10_000);
    const actions = node.broker.registry.getActionList({ onlyLocal: true, skipInternal: true, withEndpoints: false });
    scoped = actions.filter(a => isTenantScoped(a.action)).map(a => ({ name: a.name, params: (a.action?.params ?? {}) as Record<string, unknown> }));
    unscoped = actions.filter(a => !isTenantScoped(a.action)).map(a => a.name);
  });

  afterAll(() => node?.stop());

  it("runs every service of services/", () => {
    const names = serviceFactories().map(({ factory }) => factory(node.config).name);
    expect(names.length).toBeGreaterThanOrEqual(4);
    for (const name of names) expect([name, Boolean(node.broker.getLocalService(name))]).toEqual([name, true]);
  });

  it("has the tenant-check mixin on every service (marked, and its hook installed on all actions)", () => {
    const services = node.broker.services.filter((s: Service) => !TEST_SERVICES.has(s.name));
    expect(services.length).toBeGreaterThanOrEqual(4);
    for (const service of services) {
      const before = (service.schema.hooks as { before?: Record<string, unknown> } | undefined)?.before?.["*"];
      const hooks = ([] as unknown[]).concat(before ?? []);
      expect([service.name, service.metadata?.[TENANT_GUARD_METADATA] === true, hooks.includes(checkTenant)]).toEqual([service.name, true, true]);
    }
  });

  it("finds the tenant-scoped actions (the enumeration is not empty)", () => {
    expect(scoped.map(a => a.name)).toEqual(
      expect.arrayContaining(["gateway.send", "presence.get", "rooms.join", "rooms.create", "rooms.update", "rooms.get", "eventbus.publish", "eventbus.poll"])
    );
  });

  it("lists every action that is not tenant-scoped in the reviewed allow-list, and nothing else", () => {
    expect([...unscoped].sort()).toEqual(Object.keys(NOT_TENANT_SCOPED).sort());
  });

  it("maps every authenticated REST alias to a tenant-scoped action", () => {
    const gateway = node.broker.getLocalService("gateway") as Service;
    const routes = gateway.settings.routes as Array<{ path: string; authentication?: boolean; aliases?: Record<string, string> }>;
    const aliased = routes.filter(r => r.authentication).flatMap(r => Object.entries(r.aliases ?? {}).map(([route, action]) => ({ route: `${r.path} ${route}`, action })));
    expect(aliased.length).toBeGreaterThan(5);
    const names = new Set(scoped.map(a => a.name));
    for (const { route, action } of aliased) expect([route, action, names.has(action)]).toEqual([route, action, true]);
  });

  it("builds params that pass validation and the guard for the caller's own tenant", async () => {
    for (const action of scoped) {
      const outcome = await outcomeOf(node.broker.call(action.name, { ...minimalParams(action.params), tenantId: TENANT }, asClient(TENANT, "probe", "user")));
      // Refusals by the handler (no target, wrong role, not a member…) are fine; validation or the guard are not.
      expect([action.name, outcome]).not.toEqual([action.name, expect.stringMatching(/^(VALIDATION_ERROR|TENANT_VIOLATION)\//)]);
    }
  });

  it("refuses a caller naming another tenant in each of them with TENANT_VIOLATION, for every role, and reports each attempt", async () => {
    violationsByAction.clear();
    const outcomes: Array<[string, string, string]> = [];
    for (const action of scoped) {
      for (const role of ROLES) {
        const params = { ...minimalParams(action.params), tenantId: OTHER };
        outcomes.push([action.name, role, await outcomeOf(node.broker.call(action.name, params, asClient(TENANT, `probe-${role}`, role)))]);
      }
    }
    expect(outcomes).toEqual(scoped.flatMap(a => ROLES.map(role => [a.name, role, "TENANT_VIOLATION/403"])));

    const expected = scoped.length * ROLES.length;
    await eventually(() => [...violationsByAction.values()].reduce((n, list) => n + list.length, 0) >= expected, 3000, "one violation event per attempt");
    for (const action of scoped) {
      const seen = violationsByAction.get(action.name) ?? [];
      expect([action.name, seen.map(v => [v.tenantId, v.requestedTenantId, v.userId]).sort()]).toEqual([
        action.name,
        ROLES.map(role => [TENANT, OTHER, `probe-${role}`]).sort()
      ]);
      expect(seen.every(v => v.nodeID === node.broker.nodeID && !Number.isNaN(Date.parse(v.at)))).toBe(true);
    }
    expect([...violationsByAction.keys()].sort()).toEqual(scoped.map(a => a.name).sort());

    // And each attempt is in the audit trail: one `security.tenant_violation` record per action and
    // role, in the caller's (tenant A's) chain, naming the tenant it asked for.
    type AuditRecord = { actor: { userId: string; role: string }; target: string; outcome: string; details: { action?: string; requestedTenantId?: string } };
    let audited: AuditRecord[] = [];
    await eventually(
      async () => {
        audited = (await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: TENANT, action: "security.tenant_violation", limit: 1000 })).records;
        return audited.filter(r => r.actor.userId.startsWith("probe-")).length >= expected;
      },
      5000,
      "one audit record per attempt"
    );
    for (const action of scoped) {
      const mine = audited.filter(r => r.details.action === action.name && r.actor.userId.startsWith("probe-"));
      expect([action.name, mine.map(r => [r.actor.userId, r.actor.role, r.target, r.outcome]).sort()]).toEqual([
        action.name,
        ROLES.map(role => [`probe-${role}`, role, `tenant:${OTHER}`, "denied"]).sort()
      ]);
    }
    expect(await node.broker.call("audit.verify", { tenantId: TENANT })).toMatchObject({ ok: true });
  });

  it("refuses another tenant whatever else the params hold (validation first, then the guard: never success)", async () => {
    for (const action of scoped) {
      const bare = await outcomeOf(node.broker.call(action.name, { tenantId: OTHER }, asClient(TENANT, "probe", "admin")));
      expect([action.name, bare]).toEqual([action.name, expect.stringMatching(/^(TENANT_VIOLATION\/403|VALIDATION_ERROR\/422)$/)]);
      const junk = await outcomeOf(node.broker.call(action.name, { ...minimalParams(action.params), tenantId: OTHER, unexpected: { deep: [1, "x"] } }, asClient(TENANT, "probe", "admin")));
      expect([action.name, junk]).toEqual([action.name, expect.stringMatching(/^(TENANT_VIOLATION\/403|VALIDATION_ERROR\/422)$/)]);
    }
  });

  it("refuses a client that leaves tenantId out where it is optional (no defaulting to another tenant)", async () => {
    const optional = scoped.filter(a => {
      const rule = a.params.tenantId;
      return typeof rule === "object" && rule !== null && (rule as { optional?: unknown }).optional === true;
    });
    for (const action of optional) {
      const params = minimalParams(action.params);
      delete params.tenantId;
      expect([action.name, await outcomeOf(node.broker.call(action.name, params, asClient(TENANT, "probe", "admin")))]).toEqual([action.name, "TENANT_VIOLATION/403"]);
    }
  });
});
