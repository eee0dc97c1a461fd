import type { VectorClock } from "../vector-clock";

/**
 * The reconciliation model (seed 000 "Reconciliation Endpoint", seed 001 "Offline Reconciliation").
 *
 * A client that worked offline sends the operations it made; each carries the vector clock the
 * client had for the entity plus its own increment. The server applies an operation cleanly when
 * its clock strictly descends from the entity's clock (the client had seen every write the entity
 * holds); any other operation is a conflict, resolved by a strategy and always reported.
 *
 * Versions: every change the server makes to a tenant's entities gets the next number of a
 * per-tenant sequence; `"<epoch>.<seq>"` is a version. The epoch changes when the store loses its
 * history as a whole (the memory store restarted, the database was reset), so a client can never
 * mistake another incarnation's version for its own. An entity's version is that of its last change.
 */

export const Strategy = {
  LAST_WRITE_WINS: "LAST_WRITE_WINS",
  SERVER_WINS: "SERVER_WINS",
  CLIENT_WINS: "CLIENT_WINS",
  MERGE: "MERGE",
  MANUAL: "MANUAL"
} as const;
export type Strategy = (typeof Strategy)[keyof typeof Strategy];
export const ALL_STRATEGIES: readonly Strategy[] = Object.values(Strategy);

export const OperationType = { CREATE: "CREATE", UPDATE: "UPDATE", DELETE: "DELETE" } as const;
export type OperationType = (typeof OperationType)[keyof typeof OperationType];
export const ALL_OPERATION_TYPES: readonly OperationType[] = Object.values(OperationType);

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** One client operation, validated; `timestamp` normalized to ISO 8601 (ms). */
export interface Operation {
  operationId: string;
  clientId: string;
  tenantId: string;
  entityType: string;
  entityId: string;
  operationType: OperationType;
  /** CREATE: the whole entity; UPDATE: the top-level fields to set; DELETE: null. */
  payload: JsonObject | null;
  timestamp: string;
  vectorClock: VectorClock;
}

/** The order of last-write-wins: timestamp (ms), then clientId, then operationId (code-unit order). */
export interface WriteKey {
  ts: number;
  clientId: string;
  operationId: string;
}

/** The write that last set a field (or reset the entity): its key and its dot `(clientId, counter)`. */
export interface Register extends WriteKey {
  /** The writer's own entry in the operation's clock; a clock has seen the write iff clock[clientId] >= counter. */
  counter: number;
}

/** Bookkeeping the strategies need; kept with the entity, never shown to clients. */
export interface EntityMeta {
  /** Per top-level field of `data`: the write that set its current value. */
  fields: Record<string, Register>;
  /** The last CREATE or DELETE: a write of the entity as a whole. */
  reset: (Register & { type: "CREATE" | "DELETE" }) | null;
  /** The write that produced the current state (last-write-wins compares against it). */
  last: WriteKey;
}

/** The authoritative state of one entity. A DELETE leaves a tombstone (`deleted`, `data: null`). */
export interface EntityState {
  entityType: string;
  entityId: string;
  data: JsonObject | null;
  deleted: boolean;
  /** Sequence number of the entity's last change. */
  version: number;
  /** Join of the clocks of every operation applied to the entity. */
  vectorClock: VectorClock;
  meta: EntityMeta;
  /** Server time of the last change (ISO). */
  updatedAt: string;
}

/** One change in a tenant's history: the state an applied operation left the entity in. */
export interface Change {
  version: number;
  entityType: string;
  entityId: string;
  operationId: string;
  clientId: string;
  operationType: OperationType;
  data: JsonObject | null;
  deleted: boolean;
  vectorClock: VectorClock;
  /** The operation's timestamp. */
  timestamp: string;
  /** Server time the change was made. */
  appliedAt: string;
}

/** APPLIED: took effect; MERGED: some fields took effect; REJECTED: lost its conflict; PENDING: MANUAL, nothing applied. */
export type OperationStatus = "APPLIED" | "MERGED" | "REJECTED" | "PENDING";

/** CONCURRENT: neither side saw the other; STALE: the entity already holds writes made after this operation's clock. */
export type ConflictKind = "CONCURRENT" | "STALE";

export type ConflictResolution = "CLIENT_WON" | "SERVER_WON" | "MERGED" | "UNRESOLVED";

/** The server's side of a conflict: the entity as the operation found it. */
export interface ServerSide {
  version: string;
  data: JsonObject | null;
  deleted: boolean;
  vectorClock: VectorClock;
  lastWrite: { timestamp: string; clientId: string; operationId: string };
}

/** The client's side of a conflict: what the operation wanted. */
export interface ClientSide {
  operationType: OperationType;
  payload: JsonObject | null;
  vectorClock: VectorClock;
  timestamp: string;
  clientId: string;
}

/** MERGE: a top-level field both sides changed. */
export interface FieldConflict {
  field: string;
  /** Absent when the server side has no such field. */
  serverValue?: JsonValue;
  clientValue: JsonValue;
  winner: "CLIENT" | "SERVER";
}

export interface Conflict {
  conflictId: string;
  operationId: string;
  entityType: string;
  entityId: string;
  kind: ConflictKind;
  /** The strategy that resolved it. */
  strategy: Strategy;
  resolution: ConflictResolution;
  /** MERGE met a CREATE or DELETE on either side (no fields to merge) and decided by LAST_WRITE_WINS. */
  fallback?: "LAST_WRITE_WINS";
  serverVersion: ServerSide;
  clientVersion: ClientSide;
  /** MERGE: the fields both sides changed, each with its winner (disjoint fields merge silently). */
  fields?: FieldConflict[];
  /** The entity after the resolution, when it changed. */
  result?: { version: string; data: JsonObject | null; deleted: boolean; vectorClock: VectorClock };
}

/** What became of one operation; recorded once and returned unchanged on every replay. */
export interface OperationOutcome {
  operation: Operation;
  status: OperationStatus;
  /** The version of the change it produced (APPLIED, MERGED), else null. */
  version: string | null;
  conflict?: Conflict;
}

/** An outcome as kept by a store, keyed by (tenant, operationId). */
export interface OperationRecord {
  operationId: string;
  entityType: string;
  entityId: string;
  outcome: OperationOutcome;
  /** Epoch ms; records older than the retention are forgotten. */
  recordedAt: number;
}

// ---- Wire shapes (seed 000) ----

export interface ReconcileRequest {
  requestId: string;
  clientId: string;
  tenantId: string;
  lastKnownVersion?: string;
  operations: Operation[];
  requestedAt?: string;
  /** Overrides the configured strategy for every operation of this request. */
  strategy?: Strategy;
}

/** An operation in `resolvedOperations`: as sent, with what became of it. */
export type ResolvedOperation = Operation & { status: Exclude<OperationStatus, "PENDING">; version: string | null; conflictId?: string };

/** One entry of `deltaUpdates`: a change of the tenant's history, with the checksum of its `data`. */
export type Delta = Omit<Change, "version"> & {
  /** The change's version as clients see it (`<epoch>.<seq>`). */
  version: string;
  checksum: string;
};

/** `GET /api/reconciliation/snapshot/:entityType/:entityId` (seed 000 StateSnapshot, plus entityId, deleted, vectorClock). */
export interface StateSnapshot {
  snapshotId: string;
  tenantId: string;
  entityType: string;
  entityId: string;
  version: string;
  data: JsonObject | null;
  deleted: boolean;
  vectorClock: VectorClock;
  createdAt: string;
  /** Hex SHA-256 of `data` in the JSON Canonicalization Scheme (RFC 8785). */
  checksum: string;
}

/**
 * The `snapshot` of a reconcile response, sent instead of deltas: the state of every entity
 * changed after the client's version (tombstones included), oldest change first.
 */
export interface TenantSnapshot {
  /** The version the client is at once it applied these entities. */
  version: string;
  /** The client's version could not be used (unknown, other epoch): drop local state first. */
  full: boolean;
  /** More entities follow: reconcile again with `lastKnownVersion = version`. */
  hasMore: boolean;
  entities: StateSnapshot[];
}

export interface ReconcileResponse {
  requestId: string;
  conflicts: Conflict[];
  resolvedOperations: ResolvedOperation[];
  /** The version the client has reached with this response: its next `lastKnownVersion`. */
  currentVersion: string;
  deltaUpdates?: Delta[];
  snapshot?: TenantSnapshot;
  /** Operations already processed before (replays): their recorded outcome is returned, nothing is applied again. */
  duplicates: string[];
  completedAt: string;
}
