import type { Context, ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../../../lib/config";
import { PUSH_EVENT, type PushNotice } from "../../../lib/push";
import type { ReconcileResponse, StateSnapshot } from "../../../lib/reconciliation/types";
import { createEventBusService } from "../../../services/eventbus.service";
import { createReconciliationService } from "../../../services/reconciliation.service";
import { asClient, callAs, newBroker, rejectionOf, stopAll, testConfig, violationRecorder, type TenantViolationRecord } from "./support";

const T = "2026-01-30T12:00:00.000Z";
const brokers: ServiceBroker[] = [];
let pushes: PushNotice[];

/** A stand-in for the gateway nodes: records every push notice handed to them. */
function pushRecorder(seen: PushNotice[]): ServiceSchema {
  return {
    name: "gateway",
    events: {
      [PUSH_EVENT](ctx: Context<PushNotice>) {
        seen.push(ctx.params);
      }
    }
  };
}
let violations: TenantViolationRecord[];

async function startBroker(config: Config, withEventBus = true): Promise<ServiceBroker> {
  const broker = newBroker();
  brokers.push(broker);
  broker.createService(createReconciliationService(config));
  if (withEventBus) broker.createService(createEventBusService(config));
  broker.createService(pushRecorder(pushes));
  broker.createService(violationRecorder(violations));
  await broker.start();
  return broker;
}

const op = (clientId: string, rest: Record<string, unknown> = {}) => ({
  operationId: `op-${Math.random().toString(36).slice(2, 10)}`,
  clientId,
  tenantId: "t1",
  entityType: "document",
  entityId: "d1",
  operationType: "UPDATE",
  payload: { v: clientId },
  timestamp: T,
  vectorClock: { [clientId]: 1 },
  ...rest
});

const reconcile = (broker: ServiceBroker, params: Record<string, unknown>, opts?: { meta: object }) =>
  callAs<ReconcileResponse>(broker, "reconciliation.reconcile", { requestId: "r", tenantId: "t1", requestedAt: T, ...params }, opts);

beforeEach(() => {
  pushes = [];
  violations = [];
});
afterEach(() => stopAll(brokers));

describe("reconciliation service", () => {
  it("publishes each applied change to the tenant's stream and pushes it to the tenant's sockets", async () => {
    const broker = await startBroker(testConfig());
    const create = op("A", { operationType: "CREATE" });
    const res = await reconcile(broker, { clientId: "A", operations: [create] });
    const tail = await callAs<Array<{ eventType: string; position: string; payload: { version: string }; metadata: Record<string, unknown> }>>(broker, "eventbus.tail", { tenantId: "t1", count: 10 });
    expect(tail).toEqual([expect.objectContaining({ eventType: "reconciliation.applied", metadata: expect.objectContaining({ interactionClass: "CLASS_C" }), payload: expect.objectContaining({ version: res.currentVersion }) })]);
    expect(pushes).toEqual([{ stored: tail[0] }]);
  });

  it("still reconciles when the stream is unavailable (the state is durable; clients catch up)", async () => {
    const broker = await startBroker(testConfig(), false);
    const res = await reconcile(broker, { clientId: "A", operations: [op("A", { operationType: "CREATE" })] });
    expect(res.resolvedOperations).toEqual([expect.objectContaining({ status: "APPLIED" })]);
    expect(pushes).toEqual([]);
    expect(await callAs<StateSnapshot>(broker, "reconciliation.snapshot", { tenantId: "t1", entityType: "document", entityId: "d1" })).toMatchObject({ data: { v: "A" } });
  });

  it("resolves by entity type (RECONCILIATION_ENTITY_STRATEGIES), else the default; a request's strategy overrides both", async () => {
    const broker = await startBroker(testConfig({ reconciliationDefaultStrategy: "CLIENT_WINS", reconciliationEntityStrategies: { invoice: "SERVER_WINS" } }));
    const concurrentPair = async (entityType: string, strategy?: string) => {
      await reconcile(broker, { clientId: "A", operations: [op("A", { entityType, operationType: "CREATE" })] });
      const res = await reconcile(broker, { clientId: "B", operations: [op("B", { entityType })], ...(strategy ? { strategy } : {}) });
      return res.conflicts[0];
    };
    expect(await concurrentPair("invoice")).toMatchObject({ strategy: "SERVER_WINS", resolution: "SERVER_WON" });
    expect(await concurrentPair("note")).toMatchObject({ strategy: "CLIENT_WINS", resolution: "CLIENT_WON" });
    expect(await concurrentPair("memo", "MANUAL")).toMatchObject({ strategy: "MANUAL", resolution: "UNRESOLVED" });
  });

  it("refuses another tenant, from the caller's token or inside operations, and reports it", async () => {
    const broker = await startBroker(testConfig());
    const asUser = asClient("t1", "alice");
    const viaParams = await rejectionOf(reconcile(broker, { tenantId: "t2", clientId: "A", operations: [] }, asUser));
    expect(viaParams).toMatchObject({ type: "TENANT_VIOLATION", code: 403 });
    const viaOperation = await rejectionOf(reconcile(broker, { clientId: "A", operations: [op("A"), op("A", { tenantId: "t2" })] }, asUser));
    expect(viaOperation).toMatchObject({ type: "TENANT_VIOLATION", code: 403, data: { operationIndex: 1, field: "operations[1].tenantId" } });
    expect(violations.map(v => [v.tenantId, v.userId, v.requestedTenantId])).toEqual([
      ["t1", "alice", "t2"],
      ["t1", "alice", "t2"]
    ]);
    const snapshot = await rejectionOf(callAs(broker, "reconciliation.snapshot", { tenantId: "t2", entityType: "document", entityId: "d1" }, asUser));
    expect(snapshot.type).toBe("TENANT_VIOLATION");
  });

  it("counts RECONCILIATION_RATE_LIMIT per client and tenant", async () => {
    const broker = await startBroker(testConfig({ reconciliationRateLimit: 2 }));
    await reconcile(broker, { clientId: "A", operations: [] });
    await reconcile(broker, { clientId: "A", operations: [] });
    expect(await rejectionOf(reconcile(broker, { clientId: "A", operations: [] }))).toMatchObject({ type: "RATE_LIMIT", code: 429, data: { limit: 2, windowMs: 60_000 } });
    await reconcile(broker, { clientId: "B", operations: [] });
    await reconcile(broker, { tenantId: "t2", clientId: "A", operations: [] });
  });

  it("refuses an invalid requestedAt", async () => {
    const broker = await startBroker(testConfig());
    expect(await rejectionOf(reconcile(broker, { clientId: "A", operations: [], requestedAt: "soon" }))).toMatchObject({ type: "INVALID_REQUEST", data: { field: "requestedAt" } });
  });

  it("reports its store in stats (for /health)", async () => {
    const broker = await startBroker(testConfig());
    expect(await callAs(broker, "reconciliation.stats")).toEqual({ status: "healthy", backend: "memory", latency: 0 });
  });

  it("reports an unreachable database as unhealthy and refuses with INTERNAL_ERROR, not a crash", async () => {
    const broker = await startBroker(testConfig({ databaseUrl: "postgres://postgres@127.0.0.1:1/none" }));
    expect(await callAs(broker, "reconciliation.stats")).toMatchObject({ status: "unhealthy", backend: "postgres", error: expect.any(String) });
    const err = await rejectionOf(reconcile(broker, { clientId: "A", operations: [op("A")] }));
    expect(err.code).toBeGreaterThanOrEqual(500);
  });
});
