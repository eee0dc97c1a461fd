import { ID_INDEX_FACTOR } from "../../stores/event-log/event-log";
import { MemoryEventLog } from "../../stores/event-log/event-log.memory";
import type { BusEvent } from "../../stores/event-log";

const event = (eventId: string): BusEvent => ({
  eventId,
  eventType: "t",
  tenantId: "acme",
  timestamp: new Date(0).toISOString(),
  payload: null,
  metadata: {},
  schemaVersion: "1.0"
});

describe("MemoryEventLog idempotency index bound", () => {
  const maxEvents = 5;
  const now = Date.now();

  // The window itself (duplicates inside it, new events beyond it) is in the EventLog contract.
  it("holds at most the bound under sustained traffic", async () => {
    const log = new MemoryEventLog({ retentionMs: 7 * 24 * 3600_000, maxEventsPerTenant: maxEvents });
    for (let i = 0; i < 1000; i++) await log.append("acme", event(`s${i}`), now);
    const ids = (log as unknown as { tenants: Map<string, { ids: Map<string, unknown> }> }).tenants.get("acme")?.ids;
    expect(ids?.size).toBe(maxEvents * ID_INDEX_FACTOR);
  });
});
