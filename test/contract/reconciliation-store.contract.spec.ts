import { randomUUID } from "node:crypto";
import { Client } from "pg";
import { canonicalSha256 } from "../../lib/canonical-json";
import type { Change, EntityState, JsonObject, OperationRecord } from "../../lib/reconciliation/types";
import { createReconciliationStore, type ReconciliationStoreConfig } from "../../stores/reconciliation";
import type { BatchItem, EntityDecider, EntityWrite, ReconciliationStore } from "../../stores/reconciliation/reconciliation-store";
import { MemoryReconciliationStore } from "../../stores/reconciliation/reconciliation-store.memory";
import { PostgresReconciliationStore } from "../../stores/reconciliation/reconciliation-store.postgres";
import { POSTGRES_URL, uniqueSchema } from "../helpers/postgres";

/*
 * One contract, run against the embedded default and PostgreSQL (a schema of its own on the real
 * server; unreachable PostgreSQL fails the suite). Every test uses fresh tenants, so the tests of
 * one backend share its schema without seeing each other.
 */

interface ReconciliationBackend {
  name: "memory" | "postgres";
  durable: boolean;
  /** Prepares the backend (once per file) and returns the config stores are built from. */
  setUp(): Promise<Pick<ReconciliationStoreConfig, "databaseUrl">>;
  tearDown(): Promise<void>;
}

let dropSchema: (() => Promise<void>) | undefined;
const backends: ReconciliationBackend[] = [
  { name: "memory", durable: false, setUp: async () => ({ databaseUrl: undefined }), tearDown: async () => undefined },
  {
    name: "postgres",
    durable: true,
    setUp: async () => {
      const schema = await uniqueSchema("reconciliation");
      dropSchema = schema.drop;
      return { databaseUrl: schema.url };
    },
    tearDown: async () => {
      await dropSchema?.();
    }
  }
];

const T0 = 1_700_000_000_000;
const DAY = 24 * 60 * 60 * 1000;

const tenant = () => `t-${randomUUID().slice(0, 8)}`;

/**
 * A decider of its own (the store must not care what decides): every new operation increments
 * `count` and sets `last`, one change each; known operations are skipped.
 */
function counting(seen?: Array<{ item: BatchItem; current: EntityState | null; known: string[]; firstVersion: number; epoch: string }>): EntityDecider {
  return (item, current, known, ctx) => {
    seen?.push({ item, current, known: [...known.keys()], firstVersion: ctx.firstVersion, epoch: ctx.epoch });
    let state = current;
    const changes: Change[] = [];
    const records: OperationRecord[] = [];
    for (const operationId of item.operationIds) {
      if (known.has(operationId) || records.some(r => r.operationId === operationId)) continue;
      const version = ctx.firstVersion + changes.length;
      const data: JsonObject = { ...(state?.data ?? {}), count: (((state?.data ?? {}).count as number | undefined) ?? 0) + 1, last: operationId };
      state = {
        entityType: item.entityType,
        entityId: item.entityId,
        data,
        deleted: false,
        version,
        vectorClock: { c: version },
        meta: { fields: {}, reset: null, last: { ts: version, clientId: "c", operationId } },
        updatedAt: new Date(T0 + version).toISOString()
      };
      changes.push({ version, entityType: item.entityType, entityId: item.entityId, operationId, clientId: "c", operationType: "UPDATE", data, deleted: false, vectorClock: { c: version }, timestamp: new Date(T0).toISOString(), appliedAt: state.updatedAt });
      records.push({ operationId, entityType: item.entityType, entityId: item.entityId, recordedAt: 0, outcome: { operation: operationOf(item, operationId), status: "APPLIED", version: `${ctx.epoch}.${version}` } });
    }
    return { ...(changes.length > 0 && state ? { state } : {}), changes, records };
  };
}

function operationOf(item: BatchItem, operationId: string) {
  return { operationId, clientId: "c", tenantId: "x", entityType: item.entityType, entityId: item.entityId, operationType: "UPDATE" as const, payload: {}, timestamp: new Date(T0).toISOString(), vectorClock: { c: 1 } };
}

const item = (entityId: string, ...operationIds: string[]): BatchItem => ({ entityType: "doc", entityId, operationIds });

for (const backend of backends) {
  describe(`ReconciliationStore contract (${backend.name})`, () => {
    let base: Pick<ReconciliationStoreConfig, "databaseUrl">;
    const open: ReconciliationStore[] = [];
    const make = (limits: Partial<Omit<ReconciliationStoreConfig, "databaseUrl">> = {}) => {
      const store = createReconciliationStore({ reconciliationHistorySize: 1000, reconciliationOperationRetentionMs: 7 * DAY, ...base, ...limits });
      open.push(store);
      return store;
    };

    beforeAll(async () => {
      base = await backend.setUp();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map(s => s.close()));
    });
    afterAll(() => backend.tearDown());

    it("is built by the resolver from the config", () => {
      expect(make()).toBeInstanceOf(backend.name === "memory" ? MemoryReconciliationStore : PostgresReconciliationStore);
    });

    describe("head", () => {
      it("starts a tenant at seq 0 with an epoch that stays the same, per tenant", async () => {
        const store = make();
        const a = tenant();
        const b = tenant();
        const first = await store.head(a);
        expect(first).toEqual({ epoch: expect.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), seq: 0, trimmedThrough: 0 });
        expect(await store.head(a)).toEqual(first);
        await store.applyBatch(b, [item("d", "op1")], counting(), { now: T0 });
        expect((await store.head(b)).seq).toBe(1);
        expect((await store.head(a)).seq).toBe(0);
      });
    });

    describe("applyBatch", () => {
      it("writes states, changes and records, numbering changes from head.seq + 1 across items", async () => {
        const store = make();
        const t = tenant();
        const seen: Parameters<typeof counting>[0] = [];
        const epoch = (await store.head(t)).epoch;
        const writes = await store.applyBatch(t, [item("d1", "a", "b"), item("d2", "c")], counting(seen), { now: T0 });
        expect(writes.map(w => w.changes.map(c => c.version))).toEqual([[1, 2], [3]]);
        expect(seen.map(s => [s.item.entityId, s.firstVersion, s.current, s.epoch])).toEqual([
          ["d1", 1, null, epoch],
          ["d2", 3, null, epoch]
        ]);
        expect(await store.head(t)).toEqual({ epoch, seq: 3, trimmedThrough: 0 });
        expect(await store.getEntity(t, "doc", "d1")).toMatchObject({ version: 2, data: { count: 2, last: "b" } });
        expect(await store.getEntity(t, "doc", "d2")).toMatchObject({ version: 3, data: { count: 1, last: "c" } });
        expect(await store.getEntity(t, "doc", "nope")).toBeNull();
        expect(await store.getRecord(t, "b")).toMatchObject({ operationId: "b", entityId: "d1", recordedAt: T0, outcome: { status: "APPLIED", version: `${epoch}.2` } });
        expect(await store.getRecord(t, "zzz")).toBeNull();
        expect((await store.changes(t, 0, 3))?.map(c => [c.version, c.operationId])).toEqual([[1, "a"], [2, "b"], [3, "c"]]);
      });

      it("hands each decision the stored entity and the records of its own operations only", async () => {
        const store = make();
        const t = tenant();
        await store.applyBatch(t, [item("d1", "a"), item("d2", "b")], counting(), { now: T0 });
        const seen: Parameters<typeof counting>[0] = [];
        await store.applyBatch(t, [item("d1", "a", "x"), item("d2", "y")], counting(seen), { now: T0 + 1 });
        expect(seen[0].current).toMatchObject({ entityId: "d1", version: 1, data: { count: 1, last: "a" } });
        expect(seen[0].known).toEqual(["a"]);
        expect(seen[0].firstVersion).toBe(3);
        expect(seen[1].known).toEqual([]);
        expect(seen[1].current).toMatchObject({ entityId: "d2", version: 2 });
        expect((await store.getEntity(t, "doc", "d1"))?.data).toEqual({ count: 2, last: "x" });
      });

      it("lets a later item of the batch see what an earlier item decided for the same entity", async () => {
        const store = make();
        const t = tenant();
        const seen: Parameters<typeof counting>[0] = [];
        await store.applyBatch(t, [item("d", "a"), item("d", "b")], counting(seen), { now: T0 });
        expect(seen[1].current).toMatchObject({ version: 1, data: { count: 1 } });
        expect(await store.getEntity(t, "doc", "d")).toMatchObject({ version: 2, data: { count: 2, last: "b" } });
      });

      it("keeps tenants apart: same entity and operation ids, separate state and records", async () => {
        const store = make();
        const [a, b] = [tenant(), tenant()];
        await store.applyBatch(a, [item("d", "op")], counting(), { now: T0 });
        const seen: Parameters<typeof counting>[0] = [];
        await store.applyBatch(b, [item("d", "op")], counting(seen), { now: T0 });
        expect(seen[0].current).toBeNull();
        expect(seen[0].known).toEqual([]);
        expect(await store.getRecord(b, "op")).not.toBeNull();
        expect((await store.getEntity(a, "doc", "d"))?.data).toEqual({ count: 1, last: "op" });
      });

      it("writes nothing when a decision throws (atomic across the batch)", async () => {
        const store = make();
        const t = tenant();
        await store.applyBatch(t, [item("d1", "a")], counting(), { now: T0 });
        const failing: EntityDecider = (it, current, known, ctx) => {
          if (it.entityId === "d3") throw new Error("boom");
          return counting()(it, current, known, ctx);
        };
        await expect(store.applyBatch(t, [item("d1", "b"), item("d2", "c"), item("d3", "d")], failing, { now: T0 })).rejects.toThrow("boom");
        expect((await store.head(t)).seq).toBe(1);
        expect((await store.getEntity(t, "doc", "d1"))?.data).toEqual({ count: 1, last: "a" });
        expect(await store.getEntity(t, "doc", "d2")).toBeNull();
        expect(await store.getRecord(t, "b")).toBeNull();
        expect(await store.changes(t, 0, 1)).toHaveLength(1);
        expect(await store.changes(t, 1, 2)).toBeNull();
      });

      it("refuses a decision whose versions do not follow on, writing nothing", async () => {
        const store = make();
        const t = tenant();
        const skipping: EntityDecider = (it, current, known, ctx) => {
          const write: EntityWrite = counting()(it, current, known, { ...ctx, firstVersion: ctx.firstVersion + 1 });
          return write;
        };
        await expect(store.applyBatch(t, [item("d", "a")], skipping, { now: T0 })).rejects.toThrow(/version/);
        expect((await store.head(t)).seq).toBe(0);
        expect(await store.getEntity(t, "doc", "d")).toBeNull();
      });

      it("serializes concurrent batches of a tenant: each sees the one before, versions have no gaps", async () => {
        // Two stores on one database are two nodes; the memory store is shared within its process only.
        const one = make();
        const stores = backend.durable ? [one, make()] : [one, one];
        const t = tenant();
        const n = 16;
        await Promise.all(Array.from({ length: n }, (_, i) => stores[i % 2].applyBatch(t, [item("hot", `op${i}`), item(`cold${i}`, `c${i}`)], counting(), { now: T0 })));
        expect((await stores[0].head(t)).seq).toBe(2 * n);
        expect((await stores[1].getEntity(t, "doc", "hot"))?.data?.count).toBe(n);
        const history = (await stores[0].changes(t, 0, 2 * n)) ?? [];
        expect(history.map(c => c.version)).toEqual(Array.from({ length: 2 * n }, (_, i) => i + 1));
        // Every change of "hot" saw the previous one: counts 1..n in version order.
        expect(history.filter(c => c.entityId === "hot").map(c => c.data?.count)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      });

      it("stores JSON exactly: key order, unicode, escapes, numbers, prototype-like keys", async () => {
        const store = make();
        const t = tenant();
        const data = JSON.parse(
          '{"z":1,"a":{"__proto__":{"x":[1,2.5,-0.001,1e21]},"constructor":null},"nul":"a\\u0000b","emoji":"😀","accent":"é","big":9007199254740991,"neg":-5e-7,"arr":[{},[],"",true,false]}'
        ) as JsonObject;
        const exact: EntityDecider = (it, _current, _known, ctx) => {
          const version = ctx.firstVersion;
          const state: EntityState = { entityType: it.entityType, entityId: it.entityId, data, deleted: false, version, vectorClock: { "client é": 1 }, meta: { fields: {}, reset: null, last: { ts: 1, clientId: "c", operationId: "a" } }, updatedAt: new Date(T0).toISOString() };
          return {
            state,
            changes: [{ version, entityType: it.entityType, entityId: it.entityId, operationId: "a", clientId: "c", operationType: "CREATE", data, deleted: false, vectorClock: { "client é": 1 }, timestamp: new Date(T0).toISOString(), appliedAt: new Date(T0).toISOString() }],
            records: []
          };
        };
        await store.applyBatch(t, [item("d", "a")], exact, { now: T0 });
        const read = await store.getEntity(t, "doc", "d");
        expect(JSON.stringify(read?.data)).toBe(JSON.stringify(data));
        expect(canonicalSha256(read?.data)).toBe(canonicalSha256(data));
        const a = (read?.data as JsonObject).a as JsonObject;
        expect(Object.prototype.hasOwnProperty.call(a, "__proto__")).toBe(true);
        expect((a as Record<string, unknown>).x).toBeUndefined();
        expect(JSON.stringify((await store.changes(t, 0, 1))?.[0].data)).toBe(JSON.stringify(data));
        expect((await store.entitiesChangedSince(t, 0, 1, 10))[0].vectorClock).toEqual({ "client é": 1 });
      });
    });

    describe("changes (the history deltas are read from)", () => {
      it("returns exactly the range (after, through], [] for an empty one, null past the head", async () => {
        const store = make();
        const t = tenant();
        await store.applyBatch(t, [item("d1", "a", "b", "c"), item("d2", "d")], counting(), { now: T0 });
        expect((await store.changes(t, 1, 3))?.map(c => c.operationId)).toEqual(["b", "c"]);
        expect(await store.changes(t, 4, 4)).toEqual([]);
        expect(await store.changes(t, 2, 5)).toBeNull();
      });

      it("answers null, never a partial list, once part of the range is trimmed", async () => {
        const store = make({ reconciliationHistorySize: 3 });
        const t = tenant();
        for (let i = 1; i <= 5; i++) await store.applyBatch(t, [item("d", `op${i}`)], counting(), { now: T0 });
        expect(await store.head(t)).toMatchObject({ seq: 5, trimmedThrough: 2 });
        expect((await store.changes(t, 2, 5))?.map(c => c.version)).toEqual([3, 4, 5]);
        expect(await store.changes(t, 1, 5)).toBeNull();
        expect(await store.changes(t, 0, 3)).toBeNull();
      });

      it("keeps no history at all with a history size of 0", async () => {
        const store = make({ reconciliationHistorySize: 0 });
        const t = tenant();
        await store.applyBatch(t, [item("d", "a", "b")], counting(), { now: T0 });
        expect(await store.head(t)).toMatchObject({ seq: 2, trimmedThrough: 2 });
        expect(await store.changes(t, 1, 2)).toBeNull();
        expect(await store.changes(t, 2, 2)).toEqual([]);
      });
    });

    describe("entitiesChangedSince (what snapshots are made of)", () => {
      it("lists entities by the version of their last change, once each, within (after, through], up to limit", async () => {
        const store = make({ reconciliationHistorySize: 0 });
        const t = tenant();
        await store.applyBatch(t, [item("a", "1"), item("b", "2"), item("c", "3")], counting(), { now: T0 });
        await store.applyBatch(t, [item("a", "4")], counting(), { now: T0 });
        const ids = (list: EntityState[]) => list.map(e => [e.entityId, e.version]);
        expect(ids(await store.entitiesChangedSince(t, 0, 4, 10))).toEqual([["b", 2], ["c", 3], ["a", 4]]);
        expect(ids(await store.entitiesChangedSince(t, 2, 4, 10))).toEqual([["c", 3], ["a", 4]]);
        expect(ids(await store.entitiesChangedSince(t, 0, 3, 10))).toEqual([["b", 2], ["c", 3]]);
        expect(ids(await store.entitiesChangedSince(t, 0, 4, 2))).toEqual([["b", 2], ["c", 3]]);
        expect(await store.entitiesChangedSince(t, 4, 4, 10)).toEqual([]);
      });
    });

    describe("operation records", () => {
      it("forgets records older than the retention on a later batch, and keeps younger ones", async () => {
        const store = make({ reconciliationOperationRetentionMs: DAY });
        const t = tenant();
        await store.applyBatch(t, [item("d", "old")], counting(), { now: T0 });
        await store.applyBatch(t, [item("d", "young")], counting(), { now: T0 + DAY / 2 });
        expect(await store.getRecord(t, "old")).not.toBeNull();
        await store.applyBatch(t, [item("d", "later")], counting(), { now: T0 + DAY + 1 });
        expect(await store.getRecord(t, "old")).toBeNull();
        expect(await store.getRecord(t, "young")).not.toBeNull();
        expect(await store.getRecord(t, "later")).toMatchObject({ recordedAt: T0 + DAY + 1 });
      });
    });

    it("answers ping", async () => {
      expect(typeof (await make().ping())).toBe("number");
    });

    if (backend.durable) {
      it("keeps everything for a new store on the same database (another node, a restart)", async () => {
        const t = tenant();
        const first = make();
        await first.applyBatch(t, [item("d", "a", "b")], counting(), { now: T0 });
        const head = await first.head(t);
        await first.close();
        open.splice(open.indexOf(first), 1);
        const second = make();
        expect(await second.head(t)).toEqual(head);
        expect(await second.getEntity(t, "doc", "d")).toMatchObject({ version: 2, data: { count: 2 } });
        expect(await second.getRecord(t, "a")).not.toBeNull();
      });

      it("gives up within timeoutMs while another node holds the tenant, writing nothing", async () => {
        const store = make();
        const t = tenant();
        await store.head(t);
        const holder = new Client({ connectionString: base.databaseUrl ?? POSTGRES_URL });
        await holder.connect();
        try {
          await holder.query("BEGIN");
          await holder.query("SELECT 1 FROM reconciliation_tenants WHERE tenant_id = $1 FOR UPDATE", [t]);
          await expect(store.applyBatch(t, [item("d", "a")], counting(), { now: T0, timeoutMs: 300 })).rejects.toThrow(/timeout/);
        } finally {
          await holder.query("ROLLBACK").catch(() => undefined);
          await holder.end();
        }
        expect(await store.getEntity(t, "doc", "d")).toBeNull();
        expect((await store.head(t)).seq).toBe(0);
        // and the tenant works again once the other transaction is gone
        await store.applyBatch(t, [item("d", "a")], counting(), { now: T0, timeoutMs: 5000 });
        expect((await store.head(t)).seq).toBe(1);
      });
    } else {
      it("starts a new epoch in a new store (a restart loses the history, and says so)", async () => {
        const t = tenant();
        const first = make();
        await first.applyBatch(t, [item("d", "a")], counting(), { now: T0 });
        const second = make();
        const head = await second.head(t);
        expect(head.seq).toBe(0);
        expect(head.epoch).not.toBe((await first.head(t)).epoch);
      });
    }
  });
}
