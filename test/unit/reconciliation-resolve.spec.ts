import { decideEntity, type DecisionContext } from "../../lib/reconciliation/resolve";
import type { EntityState, Operation, OperationOutcome, Strategy } from "../../lib/reconciliation/types";
import type { VectorClock } from "../../lib/vector-clock";

const T = Date.parse("2026-01-30T12:00:00.000Z");
let counter = 0;

function op(clientId: string, vectorClock: VectorClock, rest: Partial<Operation> = {}): Operation {
  counter += 1;
  return {
    operationId: rest.operationId ?? `op-${counter}`,
    clientId,
    tenantId: "t1",
    entityType: "document",
    entityId: "doc-1",
    operationType: "UPDATE",
    payload: {},
    timestamp: new Date(T).toISOString(),
    vectorClock,
    ...rest
  };
}

const at = (secondsAfterT: number) => new Date(T + secondsAfterT * 1000).toISOString();

function ctx(strategy: Strategy, firstVersion = 1): DecisionContext {
  return { epoch: "e1", firstVersion, now: T + 3_600_000, strategy };
}

/** Runs operations one call after the other, feeding each call the state the previous left. */
function run(strategy: Strategy, operations: Operation[], start: EntityState | null = null) {
  let state = start;
  let version = (start?.version ?? 0) + 1;
  const outcomes: OperationOutcome[] = [];
  for (const operation of operations) {
    const decision = decideEntity(state, [operation], new Map(), ctx(strategy, version));
    version += decision.changes.length;
    state = decision.state;
    outcomes.push(decision.results[0].outcome);
  }
  return { state, outcomes };
}

/** The state after A's CREATE {title, body} and nothing else. */
function created(strategy: Strategy = "LAST_WRITE_WINS") {
  return run(strategy, [op("A", { A: 1 }, { operationType: "CREATE", payload: { title: "t0", body: "b0" }, timestamp: at(0) })]).state as EntityState;
}

describe("decideEntity", () => {
  describe("operations that descend from the entity's clock", () => {
    it("applies a CREATE of an absent entity as version firstVersion", () => {
      const create = op("A", { A: 1 }, { operationType: "CREATE", payload: { title: "hello" } });
      const decision = decideEntity(null, [create], new Map(), ctx("LAST_WRITE_WINS", 7));
      expect(decision.results).toEqual([{ duplicate: false, outcome: { operation: create, status: "APPLIED", version: "e1.7" } }]);
      expect(decision.state).toMatchObject({ data: { title: "hello" }, deleted: false, version: 7, vectorClock: { A: 1 } });
      expect(decision.changes).toEqual([expect.objectContaining({ version: 7, operationId: create.operationId, data: { title: "hello" }, deleted: false, vectorClock: { A: 1 } })]);
      expect(decision.records).toHaveLength(1);
    });

    it("applies an UPDATE as a patch of top-level fields, whatever its timestamp", () => {
      const base = created();
      // B saw A's create ({A:1}) and writes with a clock "in the past": causality, not time, decides.
      const { state, outcomes } = run("LAST_WRITE_WINS", [op("B", { A: 1, B: 1 }, { payload: { body: "b1", extra: null }, timestamp: at(-100) })], base);
      expect(outcomes[0]).toMatchObject({ status: "APPLIED", version: "e1.2" });
      expect(outcomes[0].conflict).toBeUndefined();
      expect(state).toMatchObject({ data: { title: "t0", body: "b1", extra: null }, version: 2, vectorClock: { A: 1, B: 1 } });
    });

    it("numbers several changes of one call consecutively", () => {
      const ops = [op("A", { A: 1 }, { operationType: "CREATE", payload: { n: 1 } }), op("A", { A: 2 }, { payload: { n: 2 } }), op("A", { A: 3 }, { operationType: "DELETE", payload: null })];
      const decision = decideEntity(null, ops, new Map(), ctx("LAST_WRITE_WINS", 10));
      expect(decision.changes.map(c => c.version)).toEqual([10, 11, 12]);
      expect(decision.results.map(r => r.outcome.version)).toEqual(["e1.10", "e1.11", "e1.12"]);
      expect(decision.state).toMatchObject({ deleted: true, data: null, version: 12 });
    });
  });

  describe("conflicts (concurrent with the entity)", () => {
    // Both edit after seeing A's create: B at {A:1,B:1} lands first, then C at {A:1,C:1}.
    const setup = (strategy: Strategy, cTimestamp: string, cPayload: Record<string, string> = { body: "from C" }) => {
      const base = created(strategy);
      const first = run(strategy, [op("B", { A: 1, B: 1 }, { payload: { body: "from B" }, timestamp: at(10) })], base);
      const cOp = op("C", { A: 1, C: 1 }, { payload: cPayload, timestamp: cTimestamp });
      const second = run(strategy, [cOp], first.state);
      return { before: first.state as EntityState, after: second.state as EntityState, outcome: second.outcomes[0], cOp };
    };

    it("reports both sides and the resolution", () => {
      const { outcome, cOp, before } = setup("LAST_WRITE_WINS", at(20));
      expect(outcome.conflict).toMatchObject({
        operationId: cOp.operationId,
        entityType: "document",
        entityId: "doc-1",
        kind: "CONCURRENT",
        strategy: "LAST_WRITE_WINS",
        resolution: "CLIENT_WON",
        serverVersion: { version: "e1.2", data: before.data, deleted: false, vectorClock: { A: 1, B: 1 }, lastWrite: { clientId: "B", timestamp: at(10) } },
        clientVersion: { operationType: "UPDATE", payload: { body: "from C" }, vectorClock: { A: 1, C: 1 }, clientId: "C", timestamp: at(20) },
        result: { version: "e1.3", data: { title: "t0", body: "from C" }, deleted: false, vectorClock: { A: 1, B: 1, C: 1 } }
      });
      expect(typeof outcome.conflict?.conflictId).toBe("string");
    });

    it("LAST_WRITE_WINS: the later timestamp wins", () => {
      const later = setup("LAST_WRITE_WINS", at(20));
      expect(later.outcome).toMatchObject({ status: "APPLIED", conflict: { resolution: "CLIENT_WON" } });
      expect(later.after.data).toEqual({ title: "t0", body: "from C" });

      const earlier = setup("LAST_WRITE_WINS", at(5));
      expect(earlier.outcome).toMatchObject({ status: "REJECTED", version: null, conflict: { resolution: "SERVER_WON" } });
      expect(earlier.outcome.conflict?.result).toBeUndefined();
      expect(earlier.after).toBe(earlier.before);
    });

    it("LAST_WRITE_WINS: equal timestamps go to the greater clientId, then the greater operationId, in either arrival order", () => {
      const base = created();
      const fromB = op("B", { A: 1, B: 1 }, { operationId: "x-1", payload: { body: "B" }, timestamp: at(10) });
      const fromC = op("C", { A: 1, C: 1 }, { operationId: "x-0", payload: { body: "C" }, timestamp: at(10) });
      expect(run("LAST_WRITE_WINS", [fromB, fromC], base).state?.data?.body).toBe("C");
      expect(run("LAST_WRITE_WINS", [fromC, fromB], base).state?.data?.body).toBe("C");

      const c1 = op("C", { A: 1, C: 1 }, { operationId: "op-a", payload: { body: "a" }, timestamp: at(10) });
      const c2 = op("C", { A: 1, C: 2 }, { operationId: "op-b", payload: { body: "b" }, timestamp: at(10) });
      const other = op("B", { A: 1, B: 1 }, { operationId: "op-z", payload: { body: "z" }, timestamp: at(10) });
      // C's two operations are concurrent with B's; C > B, and among C's, op-b > op-a.
      expect(run("LAST_WRITE_WINS", [other, c2], base).state?.data?.body).toBe("b");
      expect(run("LAST_WRITE_WINS", [c2, other], base).state?.data?.body).toBe("b");
      expect(run("LAST_WRITE_WINS", [c1, other], base).state?.data?.body).toBe("a");
    });

    it("SERVER_WINS keeps the entity; CLIENT_WINS applies the operation", () => {
      const server = setup("SERVER_WINS", at(99));
      expect(server.outcome).toMatchObject({ status: "REJECTED", conflict: { resolution: "SERVER_WON", strategy: "SERVER_WINS" } });
      expect(server.after.data).toEqual({ title: "t0", body: "from B" });

      const client = setup("CLIENT_WINS", at(-99));
      expect(client.outcome).toMatchObject({ status: "APPLIED", conflict: { resolution: "CLIENT_WON", strategy: "CLIENT_WINS" } });
      expect(client.after.data).toEqual({ title: "t0", body: "from C" });
      expect(client.after.vectorClock).toEqual({ A: 1, B: 1, C: 1 });
    });

    it("MANUAL applies nothing and returns both versions", () => {
      const { outcome, before, after } = setup("MANUAL", at(20));
      expect(after).toBe(before);
      expect(outcome).toMatchObject({ status: "PENDING", version: null, conflict: { resolution: "UNRESOLVED", serverVersion: { data: { title: "t0", body: "from B" } }, clientVersion: { payload: { body: "from C" } } } });
    });

    it("MERGE applies fields only one side changed, without a field conflict", () => {
      const { outcome, after } = setup("MERGE", at(1), { title: "title from C" });
      expect(outcome).toMatchObject({ status: "APPLIED", conflict: { resolution: "MERGED", fields: [] } });
      expect(after.data).toEqual({ title: "title from C", body: "from B" });
      expect(after.vectorClock).toEqual({ A: 1, B: 1, C: 1 });
    });

    it("MERGE: a field both changed goes to the later write and is listed; the rest merges", () => {
      const later = setup("MERGE", at(20), { body: "from C", title: "C title" });
      expect(later.outcome).toMatchObject({ status: "APPLIED", conflict: { resolution: "MERGED", fields: [{ field: "body", serverValue: "from B", clientValue: "from C", winner: "CLIENT" }] } });
      expect(later.after.data).toEqual({ title: "C title", body: "from C" });

      const earlier = setup("MERGE", at(5), { body: "from C", title: "C title" });
      expect(earlier.outcome).toMatchObject({ status: "MERGED", conflict: { resolution: "MERGED", fields: [{ field: "body", winner: "SERVER" }] } });
      expect(earlier.after.data).toEqual({ title: "C title", body: "from B" });

      const lost = setup("MERGE", at(5), { body: "from C" });
      expect(lost.outcome).toMatchObject({ status: "REJECTED", conflict: { resolution: "SERVER_WON", fields: [{ field: "body", winner: "SERVER" }] } });
      expect(lost.after).toBe(lost.before);
    });

    it("MERGE is order-independent for concurrent UPDATEs (per field, the later write)", () => {
      const base = created("MERGE");
      const b = op("B", { A: 1, B: 1 }, { payload: { body: "B", x: "B" }, timestamp: at(10) });
      const c = op("C", { A: 1, C: 1 }, { payload: { body: "C", y: "C" }, timestamp: at(20) });
      const d = op("D", { A: 1, D: 1 }, { payload: { x: "D", y: "D" }, timestamp: at(15) });
      const orders = [[b, c, d], [b, d, c], [c, b, d], [c, d, b], [d, b, c], [d, c, b]];
      for (const order of orders) {
        expect(run("MERGE", order, base).state?.data).toEqual({ title: "t0", body: "C", x: "D", y: "C" });
      }
    });

    it("MERGE falls back to LAST_WRITE_WINS against a DELETE (no fields to merge)", () => {
      const base = created("MERGE");
      const del = run("MERGE", [op("B", { A: 1, B: 1 }, { operationType: "DELETE", payload: null, timestamp: at(10) })], base);
      const late = run("MERGE", [op("C", { A: 1, C: 1 }, { payload: { body: "C" }, timestamp: at(20) })], del.state);
      expect(late.outcomes[0]).toMatchObject({ status: "APPLIED", conflict: { strategy: "MERGE", fallback: "LAST_WRITE_WINS", resolution: "CLIENT_WON" } });
      // Resurrected from its own fields: the deleted entity's fields are gone.
      expect(late.state).toMatchObject({ deleted: false, data: { body: "C" } });

      const early = run("MERGE", [op("C", { A: 1, C: 1 }, { payload: { body: "C" }, timestamp: at(5) })], del.state);
      expect(early.outcomes[0]).toMatchObject({ status: "REJECTED", conflict: { fallback: "LAST_WRITE_WINS", resolution: "SERVER_WON" } });
      expect(early.state).toMatchObject({ deleted: true, data: null });
    });
  });

  describe("tombstones", () => {
    it("a DELETE leaves a tombstone that a late concurrent UPDATE meets deterministically", () => {
      const base = created();
      const deleted = run("LAST_WRITE_WINS", [op("B", { A: 1, B: 1 }, { operationType: "DELETE", payload: null, timestamp: at(10) })], base);
      expect(deleted.state).toMatchObject({ deleted: true, data: null, version: 2, vectorClock: { A: 1, B: 1 } });
      const late = run("LAST_WRITE_WINS", [op("C", { A: 1, C: 1 }, { payload: { body: "C" }, timestamp: at(5) })], deleted.state);
      expect(late.outcomes[0]).toMatchObject({ status: "REJECTED", conflict: { kind: "CONCURRENT", serverVersion: { deleted: true, data: null } } });
      expect(late.state).toBe(deleted.state);
    });

    it("an UPDATE that saw the DELETE recreates the entity from its fields", () => {
      const base = created();
      const deleted = run("LAST_WRITE_WINS", [op("B", { A: 1, B: 1 }, { operationType: "DELETE", payload: null })], base);
      const again = run("SERVER_WINS", [op("A", { A: 2, B: 1 }, { payload: { title: "new" } })], deleted.state);
      expect(again.outcomes[0].status).toBe("APPLIED");
      expect(again.state).toMatchObject({ deleted: false, data: { title: "new" } });
    });
  });

  describe("stale operations and rejected clocks", () => {
    it("an operation the entity's clock already covers is a STALE conflict", () => {
      const base = run("LAST_WRITE_WINS", [op("A", { A: 1 }, { operationType: "CREATE", payload: { n: 1 } }), op("A", { A: 2 }, { payload: { n: 2 } })]).state;
      const replayedClock = run("SERVER_WINS", [op("A", { A: 1 }, { operationId: "other-id", payload: { n: 0 } })], base);
      expect(replayedClock.outcomes[0]).toMatchObject({ status: "REJECTED", conflict: { kind: "STALE" } });
    });

    it("a rejected operation leaves the entity's clock alone, so it conflicts no one later", () => {
      const base = created("SERVER_WINS");
      const b = run("SERVER_WINS", [op("B", { A: 1, B: 1 }, { payload: { body: "B" } })], base);
      const c = run("SERVER_WINS", [op("C", { A: 1, C: 1 }, { payload: { body: "C" } })], b.state);
      expect(c.outcomes[0].status).toBe("REJECTED");
      expect(c.state?.vectorClock).toEqual({ A: 1, B: 1 });
      // D read the entity after B (clock {A:1,B:1}) and was never told about C's rejected write.
      const d = run("SERVER_WINS", [op("D", { A: 1, B: 1, D: 1 }, { payload: { body: "D" } })], c.state);
      expect(d.outcomes[0]).toMatchObject({ status: "APPLIED" });
      expect(d.outcomes[0].conflict).toBeUndefined();
    });
  });

  describe("idempotency", () => {
    it("returns the recorded outcome of a known operation and applies nothing", () => {
      const base = created();
      const update = op("A", { A: 2 }, { payload: { title: "t1" } });
      const first = decideEntity(base, [update], new Map(), ctx("LAST_WRITE_WINS", 2));
      const recorded = first.records[0];
      const replay = decideEntity(first.state, [update], new Map([[update.operationId, recorded]]), ctx("LAST_WRITE_WINS", 3));
      expect(replay.changes).toEqual([]);
      expect(replay.records).toEqual([]);
      expect(replay.state).toBe(first.state);
      expect(replay.results).toEqual([{ outcome: recorded, duplicate: true }]);
    });

    it("applies an operation repeated within one call once", () => {
      const create = op("A", { A: 1 }, { operationType: "CREATE", payload: { n: 1 } });
      const decision = decideEntity(null, [create, create, create], new Map(), ctx("CLIENT_WINS", 1));
      expect(decision.changes).toHaveLength(1);
      expect(decision.records).toHaveLength(1);
      expect(decision.results.map(r => r.duplicate)).toEqual([false, true, true]);
      expect(new Set(decision.results.map(r => r.outcome)).size).toBe(1);
    });
  });

  it("treats fields named like Object.prototype members as data", () => {
    const payload = JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1, "toString": "x"}');
    const { state } = run("MERGE", [op("A", { A: 1 }, { operationType: "CREATE", payload }), op("B", { B: 1 }, { payload: JSON.parse('{"constructor": 2, "hasOwnProperty": 3}'), timestamp: at(50) })]);
    expect(Object.keys(state?.data ?? {}).sort()).toEqual(["__proto__", "constructor", "hasOwnProperty", "toString"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(state?.data)).toBe(Object.prototype);
    expect(JSON.stringify(state?.data)).toBe('{"__proto__":{"polluted":true},"constructor":2,"toString":"x","hasOwnProperty":3}');
  });
});
