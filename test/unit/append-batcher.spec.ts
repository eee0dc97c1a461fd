import { AppendBatcher, type AppendOutcome } from "../../lib/append-batcher";
import type { BusEvent } from "../../stores/event-log";

const event = (n: number, tenantId = "t1"): BusEvent => ({ eventId: `e${n}`, eventType: "x", tenantId, timestamp: new Date(0).toISOString(), payload: n, metadata: {}, schemaVersion: "1.0" });
const stored = (e: BusEvent, position: string): AppendOutcome => ({ event: { ...e, position }, duplicate: false });

describe("AppendBatcher", () => {
  it("sends the appends of one event-loop turn as one request, in order, resolving each with its own result", async () => {
    const calls: string[][] = [];
    const batcher = new AppendBatcher(async events => {
      calls.push(events.map(e => e.eventId));
      return events.map((e, i) => stored(e, `1.${i + 1}`));
    });
    const results = await Promise.all([1, 2, 3].map(n => batcher.append(event(n))));
    expect(calls).toEqual([["e1", "e2", "e3"]]);
    expect(results.map(r => [r.event.eventId, r.event.position, r.duplicate])).toEqual([["e1", "1.1", false], ["e2", "1.2", false], ["e3", "1.3", false]]);
    await batcher.append(event(4));
    expect(calls).toEqual([["e1", "e2", "e3"], ["e4"]]);
  });

  it("splits large turns into batches of at most maxBatch", async () => {
    const sizes: number[] = [];
    const batcher = new AppendBatcher(async events => {
      sizes.push(events.length);
      return events.map(e => stored(e, "1.1"));
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map(n => batcher.append(event(n))));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it("rejects only the events the log refused, and every event of a failed request", async () => {
    const batcher = new AppendBatcher(async events => events.map(e => (e.eventId === "e2" ? { error: { message: "refused", code: "INVALID_REQUEST" } } : stored(e, "1.1"))));
    const settled = await Promise.allSettled([1, 2, 3].map(n => batcher.append(event(n))));
    expect(settled.map(s => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ message: "refused", code: "INVALID_REQUEST" });

    const down = new AppendBatcher(async () => {
      throw new Error("eventbus unreachable");
    });
    const failed = await Promise.allSettled([1, 2].map(n => down.append(event(n))));
    expect(failed.every(s => s.status === "rejected" && (s.reason as Error).message === "eventbus unreachable")).toBe(true);
  });
});
