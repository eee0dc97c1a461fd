import type { ServiceBroker } from "moleculer";
import type { AppendOutcome } from "../../../lib/append-batcher";
import { createEventBusService } from "../../../services/eventbus.service";
import type { BusEvent } from "../../../stores/event-log";
import { asClient, newBroker, testConfig } from "./support";

const event = (tenantId: string, n: number): BusEvent => ({ eventId: `${tenantId}-${n}`, eventType: "chat", tenantId, timestamp: new Date().toISOString(), payload: n, metadata: {}, schemaVersion: "1.0" });

describe("eventbus.appendMany (gateway batches)", () => {
  let broker: ServiceBroker;

  beforeEach(async () => {
    broker = newBroker();
    broker.createService(createEventBusService(testConfig()));
    await broker.start();
  });
  afterEach(() => broker.stop());

  it("appends a batch of several tenants in order and answers per event", async () => {
    const outcomes = await broker.call<AppendOutcome[], object>("eventbus.appendMany", { events: [event("t1", 1), event("t2", 1), event("t1", 2), event("t1", 1)] });
    // New events come back as their position only; a replayed eventId as the event stored first.
    expect(outcomes.map(o => ("ok" in o ? ("position" in o.ok ? o.ok.position.split(".")[1] : ["duplicate", o.ok.duplicate.eventId]) : o.error.code))).toEqual(["0", "0", "1", ["duplicate", "t1-1"]]);
    const t1 = await broker.call<{ events: Array<{ eventId: string }> }, object>("eventbus.read", { tenantId: "t1", userId: "u" });
    expect(t1.events.map(e => e.eventId)).toEqual(["t1-1", "t1-2"]);
  });

  it("keeps a caller with a principal inside its tenant", async () => {
    await expect(broker.call("eventbus.appendMany", { events: [event("t1", 1), event("t2", 1)] }, asClient("t1"))).rejects.toMatchObject({ type: "TENANT_VIOLATION" });
    const t2 = await broker.call<{ events: unknown[] }, object>("eventbus.read", { tenantId: "t2", userId: "u" });
    expect(t2.events).toEqual([]);
  });

  it("refuses events without a tenant", async () => {
    await expect(broker.call("eventbus.appendMany", { events: [{ eventId: "x" }] })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
  });
});
