import { createHash } from "node:crypto";
import { compare, counterOf, hasSeen, merge } from "../vector-clock";
import { formatVersion } from "./versions";
import {
  Strategy,
  type Change,
  type Conflict,
  type ConflictKind,
  type EntityMeta,
  type EntityState,
  type FieldConflict,
  type JsonObject,
  type JsonValue,
  type Operation,
  type OperationOutcome,
  type Register,
  type WriteKey
} from "./types";

/**
 * The pure heart of reconciliation: what a sequence of operations does to one entity. No I/O, no
 * clock of its own; a store calls it inside the transaction that holds the entity.
 *
 * Per operation, against the entity as the previous operations left it:
 * - its clock strictly descends from the entity's clock (or the entity does not exist): applied;
 * - otherwise a conflict (CONCURRENT, or STALE when the entity's clock already covers it),
 *   resolved by the strategy and always reported with both sides:
 *   - LAST_WRITE_WINS: the operation wins iff its (timestamp, clientId, operationId) is greater
 *     than that of the write that produced the current state, a total order, so every node and
 *     every replica picks the same winner;
 *   - SERVER_WINS / CLIENT_WINS: the current state / the operation wins;
 *   - MERGE (UPDATE against UPDATEs): every field the operation sets that the server did not change
 *     behind its back is applied; a field both sides changed goes to the later write (as above)
 *     and is listed in `fields`. A CREATE or DELETE on either side replaces the entity as a whole,
 *     so there are no fields to merge and LAST_WRITE_WINS decides (`fallback`);
 *   - MANUAL: nothing is applied; the client gets both sides and sends a new operation.
 *
 * Effects: CREATE sets the whole entity; UPDATE sets top-level fields (a nested value is replaced
 * as a whole, `null` is a value, not a removal; an UPDATE of an absent or deleted entity creates
 * it from its fields); DELETE leaves a tombstone. A rejected or MANUAL operation changes nothing,
 * not even the entity's clock, so later operations are not conflicted by a write that never was.
 */

export interface DecisionContext {
  /** Epoch of the tenant's versions (for the versions written into outcomes). */
  epoch: string;
  /** The version the first change made here gets; every further change gets the next number. */
  firstVersion: number;
  /** Server time, epoch ms. */
  now: number;
  strategy: Strategy;
}

export interface OperationResult {
  outcome: OperationOutcome;
  /** Processed before (an earlier request, or earlier in this one): the recorded outcome, nothing applied. */
  duplicate: boolean;
}

export interface EntityDecision {
  /** The entity after the operations (the given object itself when nothing changed). */
  state: EntityState | null;
  /** One per applied operation, versions consecutive from `firstVersion`. */
  changes: Change[];
  /** Every operation given, in order. */
  results: OperationResult[];
  /** Outcomes of the operations processed now, to be recorded. */
  records: OperationOutcome[];
}

export function decideEntity(
  current: EntityState | null,
  operations: readonly Operation[],
  known: ReadonlyMap<string, OperationOutcome>,
  ctx: DecisionContext
): EntityDecision {
  let state = current;
  const changes: Change[] = [];
  const results: OperationResult[] = [];
  const records: OperationOutcome[] = [];
  const processedNow = new Map<string, OperationOutcome>();
  for (const op of operations) {
    const previous = known.get(op.operationId) ?? processedNow.get(op.operationId);
    if (previous) {
      results.push({ outcome: previous, duplicate: true });
      continue;
    }
    const version = ctx.firstVersion + changes.length;
    const step = decideOne(state, op, { ...ctx, firstVersion: version });
    if (step.change) {
      state = step.state;
      changes.push(step.change);
    }
    processedNow.set(op.operationId, step.outcome);
    records.push(step.outcome);
    results.push({ outcome: step.outcome, duplicate: false });
  }
  return { state, changes, results, records };
}

interface Step {
  state: EntityState | null;
  change?: Change;
  outcome: OperationOutcome;
}

function decideOne(state: EntityState | null, op: Operation, ctx: DecisionContext): Step {
  const version = ctx.firstVersion;
  const order = state ? compare(op.vectorClock, state.vectorClock) : "after";
  if (!state || order === "after") return applied(state, op, fieldsOf(op), version, ctx, "APPLIED");

  const kind: ConflictKind = order === "concurrent" ? "CONCURRENT" : "STALE";
  const base = {
    conflictId: conflictIdOf(op),
    operationId: op.operationId,
    entityType: op.entityType,
    entityId: op.entityId,
    kind,
    strategy: ctx.strategy,
    serverVersion: serverSideOf(state, ctx.epoch),
    clientVersion: {
      operationType: op.operationType,
      payload: op.payload,
      vectorClock: op.vectorClock,
      timestamp: op.timestamp,
      clientId: op.clientId
    }
  };

  switch (ctx.strategy) {
    case Strategy.SERVER_WINS:
      return rejected(state, op, { ...base, resolution: "SERVER_WON" });
    case Strategy.MANUAL:
      return { state, outcome: { operation: op, status: "PENDING", version: null, conflict: { ...base, resolution: "UNRESOLVED" } } };
    case Strategy.CLIENT_WINS:
      return withConflict(applied(state, op, fieldsOf(op), version, ctx, "APPLIED"), { ...base, resolution: "CLIENT_WON" });
    case Strategy.LAST_WRITE_WINS:
      return lastWriteWins(state, op, version, ctx, base);
    case Strategy.MERGE: {
      const reset = state.meta.reset;
      const mergeable = op.operationType === "UPDATE" && (reset === null || hasSeen(op.vectorClock, reset.clientId, reset.counter));
      if (!mergeable) return lastWriteWins(state, op, version, ctx, { ...base, fallback: "LAST_WRITE_WINS" });
      return mergeFields(state, op, version, ctx, base);
    }
  }
}

type ConflictBase = Omit<Conflict, "resolution" | "fields" | "result">;

function lastWriteWins(state: EntityState, op: Operation, version: number, ctx: DecisionContext, base: ConflictBase): Step {
  if (compareWriteKeys(writeKeyOf(op), state.meta.last) > 0) {
    return withConflict(applied(state, op, fieldsOf(op), version, ctx, "APPLIED"), { ...base, resolution: "CLIENT_WON" });
  }
  return rejected(state, op, { ...base, resolution: "SERVER_WON" });
}

function mergeFields(state: EntityState, op: Operation, version: number, ctx: DecisionContext, base: ConflictBase): Step {
  const payload = op.payload ?? {};
  const key = writeKeyOf(op);
  const take: string[] = [];
  const fields: FieldConflict[] = [];
  for (const field of Object.keys(payload).sort()) {
    const register = own(state.meta.fields, field);
    // The server did not change this field since the operation's clock: no conflict on it.
    if (!register || hasSeen(op.vectorClock, register.clientId, register.counter)) {
      take.push(field);
      continue;
    }
    const clientWins = compareWriteKeys(key, register) > 0;
    if (clientWins) take.push(field);
    const serverValue = state.data ? own(state.data, field) : undefined;
    fields.push({ field, ...(serverValue !== undefined ? { serverValue } : {}), clientValue: payload[field], winner: clientWins ? "CLIENT" : "SERVER" });
  }
  const total = Object.keys(payload).length;
  if (take.length === 0 && total > 0) return rejected(state, op, { ...base, resolution: "SERVER_WON", fields });
  return withConflict(applied(state, op, take, version, ctx, take.length === total ? "APPLIED" : "MERGED"), { ...base, resolution: "MERGED", fields });
}

function applied(state: EntityState | null, op: Operation, fields: string[], version: number, ctx: DecisionContext, status: "APPLIED" | "MERGED"): Step {
  const next = effect(state, op, fields, version, ctx.now);
  const change: Change = {
    version,
    entityType: op.entityType,
    entityId: op.entityId,
    operationId: op.operationId,
    clientId: op.clientId,
    operationType: op.operationType,
    data: clone(next.data),
    deleted: next.deleted,
    vectorClock: { ...next.vectorClock },
    timestamp: op.timestamp,
    appliedAt: next.updatedAt
  };
  return { state: next, change, outcome: { operation: op, status, version: formatVersion(ctx.epoch, version) } };
}

function rejected(state: EntityState, op: Operation, conflict: Conflict): Step {
  return { state, outcome: { operation: op, status: "REJECTED", version: null, conflict } };
}

function withConflict(step: Step, conflict: Conflict): Step {
  const next = step.state as EntityState;
  const result = { version: step.outcome.version as string, data: clone(next.data), deleted: next.deleted, vectorClock: { ...next.vectorClock } };
  return { ...step, outcome: { ...step.outcome, conflict: { ...conflict, result } } };
}

/** The entity after `op`, setting only `fields` of an UPDATE. */
function effect(state: EntityState | null, op: Operation, fields: string[], version: number, now: number): EntityState {
  const register = registerOf(op);
  const meta: EntityMeta = state ? { fields: { ...state.meta.fields }, reset: state.meta.reset, last: state.meta.last } : { fields: {}, reset: null, last: writeKeyOf(op) };
  let data: JsonObject | null;
  let deleted = false;
  switch (op.operationType) {
    case "CREATE": {
      data = {};
      meta.fields = {};
      for (const field of Object.keys(op.payload ?? {})) {
        setOwn(data, field, clone((op.payload as JsonObject)[field]));
        setOwn(meta.fields, field, register);
      }
      meta.reset = { ...register, type: "CREATE" };
      break;
    }
    case "UPDATE": {
      const alive = state && !state.deleted && state.data ? state.data : null;
      data = alive ? { ...alive } : {};
      if (!alive) meta.fields = {};
      for (const field of fields) {
        setOwn(data, field, clone((op.payload as JsonObject)[field]));
        setOwn(meta.fields, field, register);
      }
      break;
    }
    case "DELETE":
      data = null;
      deleted = true;
      meta.fields = {};
      meta.reset = { ...register, type: "DELETE" };
      break;
  }
  meta.last = writeKeyOf(op);
  return {
    entityType: op.entityType,
    entityId: op.entityId,
    data,
    deleted,
    version,
    vectorClock: merge(state?.vectorClock ?? {}, op.vectorClock),
    meta,
    updatedAt: new Date(now).toISOString()
  };
}

function fieldsOf(op: Operation): string[] {
  return Object.keys(op.payload ?? {});
}

export function writeKeyOf(op: Operation): WriteKey {
  return { ts: Date.parse(op.timestamp), clientId: op.clientId, operationId: op.operationId };
}

function registerOf(op: Operation): Register {
  return { ...writeKeyOf(op), counter: counterOf(op.vectorClock, op.clientId) };
}

/** The last-write-wins order: timestamp, then clientId, then operationId (UTF-16 code units). */
export function compareWriteKeys(a: WriteKey, b: WriteKey): number {
  if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
  if (a.clientId !== b.clientId) return a.clientId < b.clientId ? -1 : 1;
  if (a.operationId !== b.operationId) return a.operationId < b.operationId ? -1 : 1;
  return 0;
}

function serverSideOf(state: EntityState, epoch: string) {
  return {
    version: formatVersion(epoch, state.version),
    data: clone(state.data),
    deleted: state.deleted,
    vectorClock: { ...state.vectorClock },
    lastWrite: { timestamp: new Date(state.meta.last.ts).toISOString(), clientId: state.meta.last.clientId, operationId: state.meta.last.operationId }
  };
}

/** Stable per operation, so a replay reports the same conflict. */
function conflictIdOf(op: Operation): string {
  return createHash("sha256").update(JSON.stringify([op.entityType, op.entityId, op.operationId])).digest("hex").slice(0, 32);
}

/** Own properties only: a field named `constructor` or `__proto__` is data, never the prototype's. */
function own<T>(object: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;
}

function setOwn<T>(object: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function clone<T extends JsonValue | null>(value: T): T {
  return value === null || typeof value !== "object" ? value : structuredClone(value);
}
