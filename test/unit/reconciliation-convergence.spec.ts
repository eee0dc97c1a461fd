import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { canonicalJson, canonicalSha256 } from "../../lib/canonical-json";
import { reconcile, snapshotOf, type ReconcileOptions } from "../../lib/reconciliation/reconcile";
import { ALL_STRATEGIES, type JsonObject, type Operation, type OperationType, type ReconcileResponse, type Strategy } from "../../lib/reconciliation/types";
import { parseVersion } from "../../lib/reconciliation/versions";
import { increment, merge, type VectorClock } from "../../lib/vector-clock";
import { createReconciliationStore } from "../../stores/reconciliation";
import type { ReconciliationStore } from "../../stores/reconciliation/reconciliation-store";
import { uniqueSchema } from "../helpers/postgres";

/*
 * Property-based tests of the whole reconciliation path (validation aside): clients keep local
 * replicas, make operations offline on shared entities, reconcile in random orders and batchings
 * with duplicated operations and replayed requests, apply the deltas or snapshots they are given,
 * and finally sync and fetch snapshots. Under every strategy all clients must hold the same state
 * as the server, checksums included, and no operation may have been applied twice.
 */

const T0 = Date.parse("2026-01-30T12:00:00.000Z");
const ENTITY_TYPE = "doc";
const FIELDS = ["a", "b", "c"] as const;

interface Replica {
  data: JsonObject | null;
  deleted: boolean;
  vectorClock: VectorClock;
  version: string;
  checksum: string;
}

interface Limits {
  maxDeltas: number;
  historySize: number;
  snapshotLimit: number;
  batchSize: number;
}

/** A client as an app would write one: a replica, a queue of offline operations, a cursor. */
class Client {
  readonly replicas = new Map<string, Replica>();
  /** Own operations' clocks, so consecutive offline writes descend from each other. */
  private readonly own = new Map<string, VectorClock>();
  pending: Operation[] = [];
  lastKnownVersion?: string;
  private opCount = 0;
  private clock: number;

  constructor(
    readonly id: string,
    private readonly tenantId: string,
    skewMs: number
  ) {
    this.clock = T0 + skewMs;
  }

  /** An offline write: the clock it knows for the entity, plus one. */
  write(entityId: string, operationType: OperationType, fields: Record<string, number>, advanceMs: number): Operation {
    this.clock += advanceMs;
    const known = merge(this.replicas.get(entityId)?.vectorClock ?? {}, this.own.get(entityId) ?? {});
    const vectorClock = increment(known, this.id);
    this.own.set(entityId, vectorClock);
    this.opCount += 1;
    const op: Operation = {
      operationId: `${this.id}-op${this.opCount}`,
      clientId: this.id,
      tenantId: this.tenantId,
      entityType: ENTITY_TYPE,
      entityId,
      operationType,
      payload: operationType === "DELETE" ? null : { ...fields },
      timestamp: new Date(this.clock).toISOString(),
      vectorClock
    };
    this.pending.push(op);
    return op;
  }

  /** Applies what the server sent, verifying every checksum as a client would. */
  apply(response: ReconcileResponse): void {
    for (const delta of response.deltaUpdates ?? []) {
      expect(canonicalSha256(delta.data)).toBe(delta.checksum);
      this.replicas.set(delta.entityId, { data: delta.data, deleted: delta.deleted, vectorClock: delta.vectorClock, version: delta.version, checksum: delta.checksum });
    }
    if (response.snapshot) {
      if (response.snapshot.full) this.replicas.clear();
      for (const entity of response.snapshot.entities) {
        expect(canonicalSha256(entity.data)).toBe(entity.checksum);
        this.replicas.set(entity.entityId, { data: entity.data, deleted: entity.deleted, vectorClock: entity.vectorClock, version: entity.version, checksum: entity.checksum });
      }
    }
    this.lastKnownVersion = response.currentVersion;
  }
}

/** Everything the runs observe, to check idempotency and single application. */
class Ledger {
  private readonly outcomes = new Map<string, string>();
  readonly applications = new Map<string, number>();
  readonly firstStatus = new Map<string, string>();

  record(response: ReconcileResponse, applied: { operationId: string }[]): void {
    for (const change of applied) this.applications.set(change.operationId, (this.applications.get(change.operationId) ?? 0) + 1);
    const seen = new Map<string, { resolved?: unknown; conflict?: unknown }>();
    for (const op of response.resolvedOperations) seen.set(op.operationId, { ...seen.get(op.operationId), resolved: op });
    for (const conflict of response.conflicts) seen.set(conflict.operationId, { ...seen.get(conflict.operationId), conflict });
    for (const [id, outcome] of seen) {
      const signature = canonicalJson(outcome);
      const first = this.outcomes.get(id);
      // A replay returns exactly the outcome of the first processing.
      if (first !== undefined) expect(signature).toBe(first);
      else {
        this.outcomes.set(id, signature);
        this.firstStatus.set(id, (outcome.resolved as { status?: string } | undefined)?.status ?? "PENDING");
      }
    }
  }
}

/** A deterministic source of choices drawn by fast-check (so failures shrink and replay). */
class Tape {
  private index = 0;
  constructor(private readonly values: number[]) {}
  pick(n: number): number {
    const value = this.values[this.index % this.values.length] + Math.floor(this.index / this.values.length);
    this.index += 1;
    return value % n;
  }
}

interface Harness {
  store: ReconciliationStore;
  tenantId: string;
  strategy: Strategy;
  limits: Limits;
  ledger: Ledger;
}

async function send(h: Harness, client: Client, requestId: string, operations: Operation[]): Promise<void> {
  const options: ReconcileOptions = {
    strategyFor: () => h.strategy,
    maxDeltas: h.limits.maxDeltas,
    snapshotLimit: h.limits.snapshotLimit,
    batchSize: h.limits.batchSize,
    deadline: Date.now() + 60_000
  };
  let result = await reconcile(h.store, { requestId, clientId: client.id, tenantId: h.tenantId, lastKnownVersion: client.lastKnownVersion, operations, strategy: h.strategy }, options);
  h.ledger.record(result.response, result.applied);
  client.apply(result.response);
  // A snapshot too large for one response comes in pages.
  while (result.response.snapshot?.hasMore) {
    result = await reconcile(h.store, { requestId: `${requestId}-page`, clientId: client.id, tenantId: h.tenantId, lastKnownVersion: client.lastKnownVersion, operations: [] }, options);
    h.ledger.record(result.response, result.applied);
    client.apply(result.response);
  }
}

/**
 * Sends every client's pending operations: cut into batches of random size, clients interleaved
 * at random, earlier operations resent in later batches, whole requests replayed at random times.
 */
async function reconcileAll(h: Harness, clients: Client[], tape: Tape): Promise<void> {
  const queues = clients.map(client => {
    const batches: Operation[][] = [];
    const ops = client.pending;
    client.pending = [];
    for (let i = 0; i < ops.length; ) {
      const size = 1 + tape.pick(4);
      const batch = ops.slice(i, i + size);
      if (i > 0 && tape.pick(3) === 0) batch.push(ops[tape.pick(i)]); // a duplicate of an earlier operation
      batches.push(batch);
      i += size;
    }
    return { client, batches };
  });
  const sent: Array<{ client: Client; requestId: string; ops: Operation[] }> = [];
  for (;;) {
    const open = queues.filter(q => q.batches.length > 0);
    if (open.length === 0) break;
    const queue = open[tape.pick(open.length)];
    const ops = queue.batches.shift() as Operation[];
    const requestId = `req-${randomUUID().slice(0, 8)}`;
    await send(h, queue.client, requestId, ops);
    sent.push({ client: queue.client, requestId, ops });
    if (tape.pick(4) === 0) {
      const replay = sent[tape.pick(sent.length)];
      await send(h, replay.client, replay.requestId, replay.ops);
    }
  }
}

interface PlannedWrite {
  client: number;
  entity: number;
  kind: OperationType;
  fields: Record<string, number>;
  advanceMs: number;
}

const fieldsArb = fc.dictionary(fc.constantFrom(...FIELDS), fc.integer({ min: 0, max: 9 }), { maxKeys: 3 });
const writeArb = fc.record({
  client: fc.nat({ max: 3 }),
  entity: fc.nat({ max: 2 }),
  kind: fc.constantFrom<OperationType>("CREATE", "UPDATE", "UPDATE", "DELETE"),
  fields: fieldsArb,
  advanceMs: fc.nat({ max: 3 })
});
const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxDeltas: fc.constantFrom(0, 2, 1000),
  historySize: fc.constantFrom(0, 3, 1000),
  snapshotLimit: fc.constantFrom(1, 2, 1000),
  batchSize: fc.constantFrom(1, 3, 500)
});
const scenarioArb = fc.record({
  clients: fc.integer({ min: 2, max: 4 }),
  skews: fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 4, maxLength: 4 }),
  rounds: fc.array(fc.array(writeArb, { maxLength: 12 }), { minLength: 1, maxLength: 3 }),
  strategy: fc.constantFrom(...ALL_STRATEGIES),
  limits: limitsArb,
  tape: fc.array(fc.nat({ max: 1000 }), { minLength: 32, maxLength: 32 }),
  /** The server restarts after this round (memory: loses everything, new epoch; PostgreSQL: keeps everything). */
  restartAfter: fc.option(fc.nat({ max: 2 }), { nil: undefined })
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer S> ? S : never;

interface Backend {
  durable: boolean;
  open(limits: Limits): ReconciliationStore;
}

async function checkConvergence(backend: Backend, scenario: Scenario): Promise<void> {
  const tenantId = `t-${randomUUID().slice(0, 8)}`;
  const h: Harness = { store: backend.open(scenario.limits), tenantId, strategy: scenario.strategy, limits: scenario.limits, ledger: new Ledger() };
  try {
    await converge(h, backend, scenario);
  } finally {
    await h.store.close();
  }
}

async function converge(h: Harness, backend: Backend, scenario: Scenario): Promise<void> {
  const { tenantId } = h;
  const clients = Array.from({ length: scenario.clients }, (_, i) => new Client(`client-${i}`, tenantId, scenario.skews[i]));
  const tape = new Tape(scenario.tape);
  let written: Operation[] = [];

  for (const [index, round] of scenario.rounds.entries()) {
    for (const w of round as PlannedWrite[]) written.push(clients[w.client % clients.length].write(`e${w.entity}`, w.kind, w.fields, w.advanceMs));
    await reconcileAll(h, clients, tape);
    if (scenario.restartAfter === index) {
      await h.store.close();
      h.store = backend.open(scenario.limits);
      if (!backend.durable) {
        // Everything is gone, records included: clients resync from full snapshots of what follows.
        h.ledger = new Ledger();
        written = [];
      }
    }
  }
  for (const client of clients) await send(h, client, `final-${client.id}`, []);
  const store = h.store;

  // The server's state, fetched as snapshots (the GET endpoint's data).
  const head = await store.head(tenantId);
  const entities = await store.entitiesChangedSince(tenantId, 0, head.seq, 10_000);
  const snapshots = new Map<string, { version: string; data: JsonObject | null; deleted: boolean; checksum: string }>();
  for (const entity of entities) {
    const snapshot = await snapshotOf(store, tenantId, ENTITY_TYPE, entity.entityId);
    expect(snapshot).not.toBeNull();
    expect(snapshot?.checksum).toBe(canonicalSha256(snapshot?.data));
    snapshots.set(entity.entityId, { version: snapshot?.version as string, data: snapshot?.data ?? null, deleted: snapshot?.deleted as boolean, checksum: snapshot?.checksum as string });
  }

  // Every client converged on the server's state: same entities, data, versions and checksums.
  for (const client of clients) {
    expect(parseVersion(client.lastKnownVersion)).toEqual({ epoch: head.epoch, seq: head.seq });
    const mine = new Map([...client.replicas].map(([id, r]) => [id, { version: r.version, data: r.data, deleted: r.deleted, checksum: canonicalSha256(r.data) }]));
    expect(mine).toEqual(snapshots);
  }

  // No operation applied twice; exactly those reported APPLIED or MERGED were applied.
  for (const [id, count] of h.ledger.applications) expect([id, count]).toEqual([id, 1]);
  const appliedIds = [...h.ledger.firstStatus].filter(([, status]) => status === "APPLIED" || status === "MERGED").map(([id]) => id).sort();
  expect([...h.ledger.applications.keys()].sort()).toEqual(appliedIds);
  // Every operation written got an outcome.
  expect(new Set(h.ledger.firstStatus.keys())).toEqual(new Set(written.map(op => op.operationId)));
  if (scenario.limits.historySize >= 1000) {
    const history = (await store.changes(tenantId, 0, head.seq)) ?? [];
    expect(history.map(c => c.operationId).sort()).toEqual(appliedIds);
  }
}

/*
 * Order independence where the strategy promises it: with client timestamps that respect
 * causality, LAST_WRITE_WINS over whole-entity writes (CREATE/DELETE) and MERGE over UPDATEs give
 * the same final state whatever the order and batching in which concurrent offline work arrives.
 */
const concurrentArb = fc.record({
  mode: fc.constantFrom("LAST_WRITE_WINS" as const, "MERGE" as const),
  clients: fc.integer({ min: 2, max: 4 }),
  skews: fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 4, maxLength: 4 }),
  writes: fc.array(fc.record({ client: fc.nat({ max: 3 }), entity: fc.nat({ max: 1 }), del: fc.boolean(), fields: fieldsArb, advanceMs: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 12 }),
  tapes: fc.tuple(fc.array(fc.nat({ max: 1000 }), { minLength: 16, maxLength: 16 }), fc.array(fc.nat({ max: 1000 }), { minLength: 16, maxLength: 16 })),
  batchSizes: fc.tuple(fc.constantFrom(1, 2, 500), fc.constantFrom(1, 2, 500))
});

async function finalStateFor(store: ReconciliationStore, scenario: typeof concurrentArb extends fc.Arbitrary<infer S> ? S : never, run: 0 | 1): Promise<string> {
  const tenantId = `t-${randomUUID().slice(0, 8)}`;
  const limits: Limits = { maxDeltas: 1000, historySize: 1000, snapshotLimit: 1000, batchSize: scenario.batchSizes[run] };
  const h: Harness = { store, tenantId, strategy: scenario.mode, limits, ledger: new Ledger() };
  const clients = Array.from({ length: scenario.clients }, (_, i) => new Client(`client-${i}`, tenantId, scenario.skews[i]));
  for (const w of scenario.writes) {
    const kind: OperationType = scenario.mode === "MERGE" ? "UPDATE" : w.del ? "DELETE" : "CREATE";
    clients[w.client % clients.length].write(`e${w.entity}`, kind, w.fields, w.advanceMs);
  }
  await reconcileAll(h, clients, new Tape(scenario.tapes[run]));
  const head = await store.head(tenantId);
  const entities = await store.entitiesChangedSince(tenantId, 0, head.seq, 100);
  return canonicalJson(entities.map(e => ({ id: e.entityId, data: e.data, deleted: e.deleted })).sort((a, b) => (a.id < b.id ? -1 : 1)));
}

describe("reconciliation convergence (property-based)", () => {
  describe("memory store", () => {
    const store = createReconciliationStore({ databaseUrl: undefined, reconciliationHistorySize: 1000, reconciliationOperationRetentionMs: 86_400_000 });
    const memory: Backend = {
      durable: false,
      open: limits => createReconciliationStore({ databaseUrl: undefined, reconciliationHistorySize: limits.historySize, reconciliationOperationRetentionMs: 86_400_000 })
    };

    it("every client ends with the server's snapshots and checksums; nothing is applied twice", async () => {
      await fc.assert(
        fc.asyncProperty(scenarioArb, async scenario => {
          await checkConvergence(memory, scenario);
        }),
        { numRuns: 200 }
      );
    }, 120_000);

    it("LAST_WRITE_WINS (whole-entity writes) and MERGE (UPDATEs) do not depend on arrival order or batching", async () => {
      await fc.assert(
        fc.asyncProperty(concurrentArb, async scenario => {
          expect(await finalStateFor(store, scenario, 1)).toBe(await finalStateFor(store, scenario, 0));
        }),
        { numRuns: 200 }
      );
    }, 120_000);
  });

  describe("PostgreSQL store", () => {
    let schema: Awaited<ReturnType<typeof uniqueSchema>>;
    beforeAll(async () => {
      schema = await uniqueSchema("reconciliation_property");
    });
    afterAll(async () => {
      await schema.drop();
    });

    it("converges the same way on the durable backend, across restarts", async () => {
      const postgres: Backend = {
        durable: true,
        open: limits => createReconciliationStore({ databaseUrl: schema.url, reconciliationHistorySize: limits.historySize, reconciliationOperationRetentionMs: 86_400_000 })
      };
      await fc.assert(
        fc.asyncProperty(scenarioArb, async scenario => {
          await checkConvergence(postgres, scenario);
        }),
        { numRuns: 25 }
      );
    }, 120_000);
  });
});
