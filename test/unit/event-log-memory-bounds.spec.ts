import { ID_INDEX_FACTOR, MemoryEventLog } from "../../stores/event-log/event-log.memory";
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

  it("keeps ids of dropped events up to the factor, then forgets the oldest", async () => {
    const log = new MemoryEventLog({ retentionMs: 7 * 24 * 3600_000, maxEventsPerTenant: maxEvents });
    const total = maxEvents * ID_INDEX_FACTOR + 3;
    const positions: string[] = [];
    for (let i = 0; i < total; i++) positions.push((await log.append("acme", event(`e${i}`), now)).event.position);

    // Dropped from the log but still in the index: a retry is a duplicate with its first position.
    const remembered = await log.append("acme", event(`e${total - maxEvents * ID_INDEX_FACTOR}`), now);
    expect(remembered).toMatchObject({ duplicate: true, event: { position: positions[total - maxEvents * ID_INDEX_FACTOR] } });
    // Older than the bound: forgotten, so it is appended as new.
    const forgotten = await log.append("acme", event("e0"), now);
    expect(forgotten.duplicate).toBe(false);
    expect(forgotten.event.position).not.toBe(positions[0]);
  });

  it("holds at most the bound under sustained traffic", async () => {
    const log = new MemoryEventLog({ retentionMs: 7 * 24 * 3600_000, maxEventsPerTenant: maxEvents });
    for (let i = 0; i < 1000; i++) await log.append("acme", event(`s${i}`), now);
    const ids = (log as unknown as { tenants: Map<string, { ids: Map<string, unknown> }> }).tenants.get("acme")?.ids;
    expect(ids?.size).toBe(maxEvents * ID_INDEX_FACTOR);
  });
});
