import type { Change, EntityState, OperationRecord } from "../../lib/reconciliation/types";

export type { Change, EntityState, OperationRecord } from "../../lib/reconciliation/types";

/**
 * Authoritative entity state of reconciliation, per tenant: the entities (tombstones included),
 * the change history that deltas are read from, and the recorded outcome of every operation
 * (idempotency). The merge logic itself is pure (lib/reconciliation/resolve.ts); a store runs it
 * inside its own atomic unit, so the decision and its writes can never interleave with another's.
 *
 * Versions: every change gets the next number of the tenant's sequence, with no gaps; the sequence
 * belongs to an epoch that is new whenever the store lost the tenant's history as a whole.
 */

export interface TenantHead {
  /** Changes its value when the store lost this tenant's history (memory store restarted, data reset). */
  epoch: string;
  /** Version of the newest change; 0 before the first. */
  seq: number;
  /** History up to and including this version is no longer kept (0: all of it is). */
  trimmedThrough: number;
}

/** The operations of one request on one entity, in the order they were sent. */
export interface BatchItem {
  entityType: string;
  entityId: string;
  operationIds: string[];
}

/** What the decision for one entity writes. */
export interface EntityWrite {
  /** The entity's new state, when it changed (its `version` is that of its last change). */
  state?: EntityState;
  /** The changes made, versions consecutive from the `firstVersion` the decision was given. */
  changes: Change[];
  /** Outcomes of the operations processed now (never ones already recorded). */
  records: OperationRecord[];
}

/**
 * Decides one entity: called by the store with the entity as stored (null when it never existed)
 * and the recorded outcomes of the item's operationIds that it already knows. Must be synchronous
 * and pure; it may be called again if the store retries its transaction.
 */
export type EntityDecider = (
  item: BatchItem,
  current: EntityState | null,
  known: ReadonlyMap<string, OperationRecord>,
  ctx: { epoch: string; firstVersion: number }
) => EntityWrite;

export interface ApplyOptions {
  /** Server time, epoch ms; records get it as `recordedAt`. */
  now: number;
  /** Give up (reject, nothing written) when the batch cannot finish within this many ms. */
  timeoutMs?: number;
}

export interface ReconciliationStore {
  /**
   * Decides and writes a batch of entities atomically: every entity's state, changes and records
   * of the batch are written, or none is (a failure or timeout rejects with nothing written).
   * Batches of one tenant are serialized across every node sharing the store, so a decision
   * always sees the writes of every batch that committed before, and versions are handed out in
   * commit order (a reader that saw version n has seen every change up to n).
   * Items are decided in order; the first item's first change gets `head.seq + 1`.
   * Also forgets history beyond the retained size and operation records older than the retention.
   */
  applyBatch(tenantId: string, items: BatchItem[], decide: EntityDecider, options: ApplyOptions): Promise<EntityWrite[]>;

  /** The tenant's epoch and sequence; creates the tenant's epoch when it has none yet. */
  head(tenantId: string): Promise<TenantHead>;

  /**
   * Changes with `after < version <= through`, oldest first, or null when part of that range is
   * no longer kept (trimmed, or not yet written) — never a partial list.
   */
  changes(tenantId: string, after: number, through: number): Promise<Change[] | null>;

  /**
   * Entities (tombstones included) whose last change has `after < version <= through`, ordered
   * by version, at most `limit`.
   */
  entitiesChangedSince(tenantId: string, after: number, through: number, limit: number): Promise<EntityState[]>;

  /** One entity as stored (a tombstone when deleted), or null when it never existed. */
  getEntity(tenantId: string, entityType: string, entityId: string): Promise<EntityState | null>;

  /** The recorded outcome of an operation, or null (never processed, or forgotten after the retention). */
  getRecord(tenantId: string, operationId: string): Promise<OperationRecord | null>;

  /** Round trip to the backend in ms (health); rejects when it is unreachable. */
  ping(): Promise<number>;

  close(): Promise<void>;
}

export interface ReconciliationLimits {
  /** Changes kept per tenant for deltas (RECONCILIATION_HISTORY_SIZE); older ones are trimmed. */
  historySize: number;
  /** Operation outcomes are kept at least this long (RECONCILIATION_OPERATION_RETENTION, ms). */
  operationRetentionMs: number;
}

/** Checks the contract's version rule on a decision; stores call it before writing. */
export function checkVersions(write: EntityWrite, firstVersion: number): void {
  write.changes.forEach((change, index) => {
    if (change.version !== firstVersion + index) {
      throw new Error(`Decision produced version ${change.version}, expected ${firstVersion + index}`);
    }
  });
  if (write.changes.length > 0 && write.state?.version !== write.changes[write.changes.length - 1].version) {
    throw new Error("Decision's state version is not that of its last change");
  }
}
