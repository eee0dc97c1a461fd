import type { Context, ServiceBroker } from "moleculer";
import { TENANT_GUARD_METADATA, TENANT_VIOLATION_EVENT, TenantScopeMixin, isTenantScoped } from "../../../mixins/tenant-scope.mixin";
import { ISO_DATE, asClient, eventually, newBroker, rejectionOf, settle, stopAll, violationRecorder, type TenantViolationRecord } from "./support";

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

  it("marks the service as guarded", () => {
    expect(broker.getLocalService("scoped")?.metadata?.[TENANT_GUARD_METADATA]).toBe(true);
  });

  it("emits the violation under the documented event name", () => {
    expect(TENANT_VIOLATION_EVENT).toBe("security.tenantViolation");
  });
});

// Every action of every service: test/integration/tenant-guard.spec.ts.
