import { AppendBatcher, type AppendOutcome } from "../../lib/append-batcher";
import { TurnBatcher } from "../../lib/turn-batcher";
import type { BusEvent } from "../../stores/event-log";

const event = (n: number, tenantId = "t1"): BusEvent => ({ eventId: `e${n}`, eventType: "x", tenantId, timestamp: new Date(0).toISOString(), payload: n, metadata: {}, schemaVersion: "1.0" });
const at = (position: string): AppendOutcome => ({ ok: { position } });

describe("AppendBatcher", () => {
  it("sends the appends of one event-loop turn as one request, in order, resolving each with its own result", async () => {
    const calls: string[][] = [];
    const batcher = new AppendBatcher(async events => {
      calls.push(events.map(e => e.eventId));
      return events.map((_, i) => at(`1.${i + 1}`));
    });
    const results = await Promise.all([1, 2, 3].map(n => batcher.append(event(n))));
    expect(calls).toEqual([["e1", "e2", "e3"]]);
    expect(results.map(r => [r.event.eventId, r.event.position, r.duplicate])).toEqual([["e1", "1.1", false], ["e2", "1.2", false], ["e3", "1.3", false]]);
    expect(results[1].event).toEqual({ ...event(2), position: "1.2" });
    await batcher.append(event(4));
    expect(calls).toEqual([["e1", "e2", "e3"], ["e4"]]);
  });

  it("answers a duplicate with the event stored earlier under that eventId", async () => {
    const earlier = { ...event(1), payload: "first", position: "1.7" };
    const batcher = new AppendBatcher(async () => [{ ok: { duplicate: earlier } }]);
    expect(await batcher.append(event(1))).toEqual({ event: earlier, duplicate: true });
  });

  it("splits large turns into batches of at most maxBatch", async () => {
    const sizes: number[] = [];
    const batcher = new AppendBatcher(async events => {
      sizes.push(events.length);
      return events.map(() => at("1.1"));
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map(n => batcher.append(event(n))));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it("rejects only the events the log refused, and every event of a failed request", async () => {
    const batcher = new AppendBatcher(async events => events.map(e => (e.eventId === "e2" ? { error: { message: "refused", code: "INVALID_REQUEST" } } : at("1.1"))));
    const settled = await Promise.allSettled([1, 2, 3].map(n => batcher.append(event(n))));
    expect(settled.map(s => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ message: "refused", code: "INVALID_REQUEST" });

    const down = new AppendBatcher(async () => {
      throw new Error("eventbus unreachable");
    });
    const failed = await Promise.allSettled([1, 2].map(n => down.append(event(n))));
    expect(failed.every(s => s.status === "rejected" && (s.reason as Error).message === "eventbus unreachable")).toBe(true);
  });

  it("rejects an item the answer left out instead of leaving it pending", async () => {
    const batcher = new AppendBatcher(async () => [at("1.1")]);
    const settled = await Promise.allSettled([1, 2].map(n => batcher.append(event(n))));
    expect(settled.map(s => s.status)).toEqual(["fulfilled", "rejected"]);
  });
});

describe("TurnBatcher with one request in flight", () => {
  it("sends requests one after another, gathering what arrives meanwhile into the next, in order", async () => {
    const applied: number[] = [];
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const batcher = new TurnBatcher<number, number>(
      async items => {
        batches.push(items);
        if (batches.length === 1) await new Promise<void>(resolve => (release = resolve));
        applied.push(...items);
        return items.map(n => ({ ok: n * 10 }));
      },
      { maxInFlight: 1 }
    );
    const first = batcher.submit(1);
    await new Promise(resolve => setImmediate(resolve));
    const later = [2, 3, 4].map(n => batcher.submit(n));
    await new Promise(resolve => setImmediate(resolve));
    expect(batches).toEqual([[1]]);
    expect(batcher.pending).toBe(3);
    release();
    expect(await Promise.all([first, ...later])).toEqual([10, 20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    expect(applied).toEqual([1, 2, 3, 4]);
  });

  it("goes on with the next batch after a failed request", async () => {
    let calls = 0;
    const batcher = new TurnBatcher<number, number>(
      async items => {
        calls += 1;
        if (calls === 1) throw new Error("down");
        return items.map(n => ({ ok: n }));
      },
      { maxInFlight: 1 }
    );
    await expect(batcher.submit(1)).rejects.toThrow("down");
    await expect(batcher.submit(2)).resolves.toBe(2);
  });
});
