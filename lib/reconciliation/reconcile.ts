import { ErrorCode, RealtimeError } from "../errors";
import type { BatchItem, EntityWrite, ReconciliationStore } from "../../stores/reconciliation/reconciliation-store";
import { decideEntity, type OperationResult } from "./resolve";
import { deltaOf, stateSnapshot } from "./snapshots";
import { formatVersion, parseVersion } from "./versions";
import type {
  Change,
  Conflict,
  EntityState,
  Operation,
  OperationOutcome,
  OperationRecord,
  ReconcileRequest,
  ReconcileResponse,
  ResolvedOperation,
  StateSnapshot,
  Strategy,
  TenantSnapshot
} from "./types";

/**
 * One reconcile request against a store, without a broker: apply the operations entity by entity,
 * then hand back what brings the client from `lastKnownVersion` to the version it reaches.
 *
 * - Operations are grouped by entity (request order kept within an entity) and written in
 *   batches of whole entities; each batch is one atomic store write, so a request is atomic per
 *   entity: all its operations on an entity are decided and written together, or none is.
 * - Catch-up: the tenant's change history after `lastKnownVersion` (`deltaUpdates`) when it is
 *   still kept and has at most `maxDeltas` changes; otherwise a `snapshot` of every entity changed
 *   since (all of them when the version is absent, unknown or of another epoch: `full`), at most
 *   `snapshotLimit` per response (`hasMore`: reconcile again from `snapshot.version`).
 */
export interface ReconcileOptions {
  /** The strategy for an entity type (the request's own `strategy` is applied before this). */
  strategyFor(entityType: string): Strategy;
  maxDeltas: number;
  snapshotLimit: number;
  /** Epoch ms; a batch that would start later is not started and the request fails (retryable). */
  deadline: number;
  /** Operations per store batch (an entity with more is one batch of its own). */
  batchSize?: number;
  now?: () => number;
}

export interface ReconcileResult {
  response: ReconcileResponse;
  /** The changes this request made, in version order (for the tenant's stream). */
  applied: Change[];
  epoch: string;
}

const DEFAULT_BATCH_SIZE = 500;

export async function reconcile(store: ReconciliationStore, request: ReconcileRequest, options: ReconcileOptions): Promise<ReconcileResult> {
  const now = options.now ?? Date.now;
  const { tenantId } = request;
  const groups = groupByEntity(request.operations);
  const outcomes = new Map<string, OperationOutcome>();
  const duplicates = new Set<string>();
  const applied: Change[] = [];

  for (const batch of batches(groups, options.batchSize ?? DEFAULT_BATCH_SIZE)) {
    const started = now();
    if (started >= options.deadline) throw processingTimeout(outcomes.size, request.operations.length);
    const items: BatchItem[] = batch.map(group => ({ entityType: group.entityType, entityId: group.entityId, operationIds: group.operations.map(op => op.operationId) }));
    const groupOf = new Map(batch.map(group => [entityKey(group.entityType, group.entityId), group]));
    // Filled by the decisions; a store that retries its transaction decides again and overwrites.
    const results = new Map<string, OperationResult[]>();
    const decide = (item: BatchItem, current: EntityState | null, known: ReadonlyMap<string, OperationRecord>, ctx: { epoch: string; firstVersion: number }): EntityWrite => {
      const key = entityKey(item.entityType, item.entityId);
      const group = groupOf.get(key);
      if (!group) throw new Error(`The store asked to decide an entity that is not in the batch`);
      const knownOutcomes = new Map([...known].map(([id, record]) => [id, record.outcome]));
      const strategy = request.strategy ?? options.strategyFor(group.entityType);
      const decision = decideEntity(current, group.operations, knownOutcomes, { ...ctx, now: started, strategy });
      results.set(key, decision.results);
      return {
        ...(decision.changes.length > 0 && decision.state ? { state: decision.state } : {}),
        changes: decision.changes,
        records: decision.records.map(outcome => ({ operationId: outcome.operation.operationId, entityType: group.entityType, entityId: group.entityId, outcome, recordedAt: started }))
      };
    };
    let writes: EntityWrite[];
    try {
      writes = await store.applyBatch(tenantId, items, decide, { now: started, timeoutMs: Math.max(1, options.deadline - started) });
    } catch (err) {
      if (now() >= options.deadline) throw processingTimeout(outcomes.size, request.operations.length);
      throw err;
    }
    for (const write of writes) applied.push(...write.changes);
    for (const group of batch) {
      const decided = results.get(entityKey(group.entityType, group.entityId));
      if (!decided || decided.length !== group.operations.length) throw new Error("The store did not decide every entity of the batch");
      decided.forEach(({ outcome, duplicate }, index) => {
        const id = group.operations[index].operationId;
        if (duplicate) duplicates.add(id);
        if (!outcomes.has(id)) outcomes.set(id, outcome);
      });
    }
  }

  const head = await store.head(tenantId);
  const catchUp = await catchUpFrom(store, tenantId, head, request.lastKnownVersion, options);
  const conflicts: Conflict[] = [];
  const resolvedOperations: ResolvedOperation[] = [];
  for (const outcome of outcomes.values()) {
    if (outcome.conflict) conflicts.push(outcome.conflict);
    if (outcome.status === "PENDING") continue;
    resolvedOperations.push({ ...outcome.operation, status: outcome.status, version: outcome.version, ...(outcome.conflict ? { conflictId: outcome.conflict.conflictId } : {}) });
  }
  applied.sort((a, b) => a.version - b.version);
  return {
    epoch: head.epoch,
    applied,
    response: {
      requestId: request.requestId,
      conflicts,
      resolvedOperations,
      currentVersion: catchUp.currentVersion,
      ...(catchUp.deltaUpdates ? { deltaUpdates: catchUp.deltaUpdates } : {}),
      ...(catchUp.snapshot ? { snapshot: catchUp.snapshot } : {}),
      duplicates: [...duplicates],
      completedAt: new Date(now()).toISOString()
    }
  };
}

const entityKey = (entityType: string, entityId: string) => JSON.stringify([entityType, entityId]);

interface EntityGroup {
  entityType: string;
  entityId: string;
  operations: Operation[];
}

function groupByEntity(operations: readonly Operation[]): EntityGroup[] {
  const groups = new Map<string, EntityGroup>();
  for (const op of operations) {
    const key = entityKey(op.entityType, op.entityId);
    let group = groups.get(key);
    if (!group) {
      group = { entityType: op.entityType, entityId: op.entityId, operations: [] };
      groups.set(key, group);
    }
    group.operations.push(op);
  }
  return [...groups.values()];
}

function* batches(groups: EntityGroup[], size: number): Generator<EntityGroup[]> {
  let batch: EntityGroup[] = [];
  let count = 0;
  for (const group of groups) {
    if (batch.length > 0 && count + group.operations.length > size) {
      yield batch;
      batch = [];
      count = 0;
    }
    batch.push(group);
    count += group.operations.length;
  }
  if (batch.length > 0) yield batch;
}

async function catchUpFrom(
  store: ReconciliationStore,
  tenantId: string,
  head: { epoch: string; seq: number },
  lastKnownVersion: string | undefined,
  options: ReconcileOptions
): Promise<{ currentVersion: string; deltaUpdates?: ReturnType<typeof deltaOf>[]; snapshot?: TenantSnapshot }> {
  const parsed = lastKnownVersion === undefined ? undefined : parseVersion(lastKnownVersion);
  const usable = parsed !== undefined && parsed.epoch === head.epoch && parsed.seq <= head.seq;
  if (usable && head.seq - parsed.seq <= options.maxDeltas) {
    const changes = await store.changes(tenantId, parsed.seq, head.seq);
    if (changes) return { currentVersion: formatVersion(head.epoch, head.seq), deltaUpdates: changes.map(change => deltaOf(head.epoch, change)) };
  }
  const from = usable ? parsed.seq : 0;
  const entities = await store.entitiesChangedSince(tenantId, from, head.seq, options.snapshotLimit + 1);
  const hasMore = entities.length > options.snapshotLimit;
  const page = hasMore ? entities.slice(0, options.snapshotLimit) : entities;
  const reached = hasMore ? page[page.length - 1].version : head.seq;
  const version = formatVersion(head.epoch, reached);
  return {
    currentVersion: version,
    snapshot: { version, full: !usable, hasMore, entities: page.map(entity => stateSnapshot(tenantId, head.epoch, entity)) }
  };
}

function processingTimeout(processed: number, total: number): RealtimeError {
  return new RealtimeError(
    ErrorCode.INTERNAL_ERROR,
    "Reconciliation did not finish within RECONCILIATION_PROCESSING_TIMEOUT; retry the same request (applied operations are not applied twice)",
    { retryable: true, reason: "processing_timeout", processedOperations: processed, operations: total },
    503
  );
}

/** The snapshot of one entity (a tombstone when deleted), or null when it never existed. */
export async function snapshotOf(store: ReconciliationStore, tenantId: string, entityType: string, entityId: string): Promise<StateSnapshot | null> {
  const entity = await store.getEntity(tenantId, entityType, entityId);
  if (!entity) return null;
  const { epoch } = await store.head(tenantId);
  return stateSnapshot(tenantId, epoch, entity);
}
