import type { Context, ServiceBroker } from "moleculer";
import { TENANT_VIOLATION_EVENT, TenantScopeMixin, isTenantScoped } from "../../../mixins/tenant-scope.mixin";
import { createGatewayService } from "../../../services/gateway.service";
import { createPresenceService } from "../../../services/presence.service";
import { createRoomsService } from "../../../services/rooms.service";
import { createEventBusService } from "../../../services/eventbus.service";
import { ISO_DATE, asClient, eventually, newBroker, rejectionOf, settle, stopAll, testConfig, violationRecorder, type TenantViolationRecord } from "./support";

const brokers: ServiceBroker[] = [];
afterEach(() => stopAll(brokers));

describe("isTenantScoped", () => {
  it("is true exactly when the params schema declares tenantId", () => {
    expect(isTenantScoped({ params: { tenantId: "string" } })).toBe(true);
    expect(isTenantScoped({ params: { tenantId: { type: "string", optional: true } } })).toBe(true);
    expect(isTenantScoped({ params: { userId: "string" } })).toBe(false);
    expect(isTenantScoped({ params: undefined })).toBe(false);
    expect(isTenantScoped({})).toBe(false);
    expect(isTenantScoped(null)).toBe(false);
    expect(isTenantScoped(undefined)).toBe(false);
  });
});

describe("TenantScopeMixin", () => {
  let broker: ServiceBroker;
  let violations: TenantViolationRecord[];
  let handled: string[];

  beforeEach(async () => {
    violations = [];
    handled = [];
    broker = newBroker();
    brokers.push(broker);
    broker.createService({
      name: "scoped",
      mixins: [TenantScopeMixin()],
      actions: {
        withTenant: {
          params: { tenantId: { type: "string", min: 1 }, value: { type: "string", optional: true } },
          handler(ctx: Context<{ tenantId: string }>) {
            handled.push("withTenant");
            return { tenantId: ctx.params.tenantId };
          }
        },
        optionalTenant: {
          params: { tenantId: { type: "string", optional: true } },
          handler(ctx: Context<{ tenantId?: string }>) {
            handled.push("optionalTenant");
            return { tenantId: ctx.params.tenantId ?? null };
          }
        },
        withoutTenant: {
          params: { value: { type: "string" } },
          handler(ctx: Context<{ value: string }>) {
            handled.push("withoutTenant");
            return { value: ctx.params.value };
          }
        },
        noParams() {
          handled.push("noParams");
          return "ok";
        }
      }
    });
    broker.createService(violationRecorder(violations));
    await broker.start();
  });

  it("lets internal callers (no meta.auth) name any tenant", async () => {
    expect(await broker.call("scoped.withTenant", { tenantId: "t1" })).toEqual({ tenantId: "t1" });
    expect(await broker.call("scoped.withTenant", { tenantId: "t2" })).toEqual({ tenantId: "t2" });
    await settle();
    expect(violations).toEqual([]);
    expect(handled).toEqual(["withTenant", "withTenant"]);
  });

  it("lets a client act in its own tenant", async () => {
    expect(await broker.call("scoped.withTenant", { tenantId: "t1" }, asClient("t1", "u1"))).toEqual({ tenantId: "t1" });
    await settle();
    expect(violations).toEqual([]);
  });

  it("refuses a client naming another tenant, before the handler runs, and reports it", async () => {
    const err = await rejectionOf(broker.call("scoped.withTenant", { tenantId: "t2", value: "v" }, asClient("t1", "u1", "admin")));
    expect(err).toMatchObject({ type: "TENANT_VIOLATION", code: 403, data: { action: "scoped.withTenant" } });
    expect(handled).toEqual([]);
    await eventually(() => violations.length === 1, 1000, "violation event");
    expect(violations[0]).toEqual({
      tenantId: "t1",
      userId: "u1",
      requestedTenantId: "t2",
      action: "scoped.withTenant",
      nodeID: broker.nodeID,
      at: expect.stringMatching(ISO_DATE)
    });
  });

  it("refuses a client that leaves an optional tenantId out (no defaulting to someone else's tenant)", async () => {
    const err = await rejectionOf(broker.call("scoped.optionalTenant", {}, asClient("t1", "u1")));
    expect(err.type).toBe("TENANT_VIOLATION");
    expect(handled).toEqual([]);
    await eventually(() => violations.length === 1, 1000, "violation event");
    expect(violations[0].requestedTenantId).toBe("undefined");
    expect(await broker.call("scoped.optionalTenant", { tenantId: "t1" }, asClient("t1", "u1"))).toEqual({ tenantId: "t1" });
  });

  it("does not check actions without a tenantId param", async () => {
    expect(await broker.call("scoped.withoutTenant", { value: "t2" }, asClient("t1", "u1"))).toEqual({ value: "t2" });
    expect(await broker.call("scoped.noParams", {}, asClient("t1", "u1"))).toBe("ok");
    await settle();
    expect(violations).toEqual([]);
    expect(handled).toEqual(["withoutTenant", "noParams"]);
  });

  it("emits the violation under the documented event name", () => {
    expect(TENANT_VIOLATION_EVENT).toBe("security.tenantViolation");
  });
});

/* ------------------------------------------------------------------------------------------------
 * Every tenant-scoped action of the product refuses a client of another tenant. The list is read
 * from the registry, so an action added later is covered without touching this test.
 * ---------------------------------------------------------------------------------------------- */

type Rule = { type: string; optional: boolean; value?: unknown; values?: unknown[] };

/** Normalises a fastest-validator rule (shorthand string, object, or list of alternatives). */
function ruleOf(raw: unknown): Rule {
  if (Array.isArray(raw)) return ruleOf(raw[0]);
  if (typeof raw === "string") {
    const [type, ...flags] = raw.split("|");
    return { type, optional: flags.includes("optional") };
  }
  if (typeof raw === "object" && raw !== null) {
    const r = raw as Record<string, unknown>;
    return {
      type: typeof r.type === "string" ? r.type : "object",
      optional: r.optional === true,
      value: r.value,
      values: Array.isArray(r.values) ? r.values : undefined
    };
  }
  throw new Error(`Unsupported params rule ${JSON.stringify(raw)}`);
}

/** Smallest params that pass validation: each required field gets a plain value of its type. */
function minimalParams(schema: Record<string, unknown>): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const [field, raw] of Object.entries(schema)) {
    if (field.startsWith("$$")) continue;
    const rule = ruleOf(raw);
    if (rule.optional) continue;
    switch (rule.type) {
      case "string":
      case "any":
        params[field] = "x";
        break;
      case "number":
        params[field] = 1;
        break;
      case "boolean":
        params[field] = true;
        break;
      case "array":
        params[field] = [];
        break;
      case "object":
        params[field] = {};
        break;
      case "equal":
        params[field] = rule.value;
        break;
      case "enum":
        params[field] = rule.values?.[0];
        break;
      default:
        throw new Error(`minimalParams does not know rule type '${rule.type}' (field '${field}'); teach it`);
    }
  }
  return params;
}

describe("every tenant-scoped action of gateway, presence and rooms", () => {
  let broker: ServiceBroker;
  let violations: TenantViolationRecord[];
  let scoped: Array<{ name: string; params: Record<string, unknown> }>;

  beforeAll(async () => {
    violations = [];
    broker = newBroker();
    const config = testConfig();
    broker.createService(createGatewayService(config));
    broker.createService(createPresenceService(config));
    broker.createService(createRoomsService(config));
    broker.createService(createEventBusService(config));
    broker.createService(violationRecorder(violations));
    await broker.start();
    scoped = broker.registry
      .getActionList({ onlyLocal: true, skipInternal: true })
      .filter(item => isTenantScoped(item.action))
      .map(item => ({ name: item.name, params: item.action?.params as Record<string, unknown> }));
  });

  afterAll(() => broker.stop());

  it("finds the tenant-scoped actions (the enumeration is not empty)", () => {
    expect(scoped.map(a => a.name)).toEqual(
      expect.arrayContaining([
        "gateway.send",
        "gateway.connections",
        "presence.connect",
        "presence.disconnect",
        "presence.update",
        "presence.get",
        "presence.getMany",
        "rooms.join",
        "rooms.leave",
        "rooms.leaveAll",
        "rooms.members",
        "rooms.ofUser",
        "rooms.ofConnection",
        "eventbus.publish",
        "eventbus.append",
        "eventbus.read",
        "eventbus.poll",
        "eventbus.tail"
      ])
    );
  });

  it("builds params that pass validation (same-tenant calls are never VALIDATION_ERROR nor TENANT_VIOLATION)", async () => {
    for (const action of scoped) {
      const params = { ...minimalParams(action.params), tenantId: "t1" };
      try {
        await broker.call(action.name, params, asClient("t1", "probe"));
      } catch (err) {
        // e.g. gateway.send without a target, rooms.members for a non-member: refused later, by the handler
        const type = (err as { type?: unknown }).type;
        expect([action.name, type]).not.toEqual([action.name, "VALIDATION_ERROR"]);
        expect([action.name, type]).not.toEqual([action.name, "TENANT_VIOLATION"]);
      }
    }
  });

  it("refuses a client of t1 naming t2 in each of them and reports every attempt", async () => {
    violations.length = 0;
    const outcomes: Array<[string, string]> = [];
    for (const action of scoped) {
      const params = { ...minimalParams(action.params), tenantId: "t2" };
      const err = await rejectionOf(broker.call(action.name, params, asClient("t1", "probe")));
      outcomes.push([action.name, `${err.type}/${err.code}`]);
    }
    expect(outcomes).toEqual(scoped.map(a => [a.name, "TENANT_VIOLATION/403"]));
    await eventually(() => violations.length === scoped.length, 1000, "one violation event per action");
    expect(violations.map(v => v.action).sort()).toEqual(scoped.map(a => a.name).sort());
    expect(violations.every(v => v.tenantId === "t1" && v.requestedTenantId === "t2")).toBe(true);
  });
});
