import { canonicalJson } from "../canonical-json";
import { invalidRequest } from "../errors";
import { clockProblem, counterOf, normalize, type VectorClock } from "../vector-clock";
import { ALL_OPERATION_TYPES, type JsonObject, type Operation, type OperationType } from "./types";

/**
 * Turns the untrusted `operations[]` of a reconcile request into Operations, or refuses the whole
 * request with INVALID_REQUEST naming the first failing operation:
 * `details: {operationIndex, operationId?, field, reason}`.
 */

/** Entity types end up in logs and event payloads: short and plain. */
export const ENTITY_TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Operation and entity ids: 1-128 printable characters (as every identifier of the product). */
const IDENTIFIER = /^[^\u0000-\u001f\u007f]{1,128}$/;

/** The first operation naming a tenant other than the request's (TENANT_VIOLATION, checked before anything else). */
export function foreignTenantOperation(operations: readonly unknown[], tenantId: string): { operationIndex: number; operationId?: string; tenantId: string } | undefined {
  for (let index = 0; index < operations.length; index++) {
    const op = operations[index];
    if (typeof op !== "object" || op === null) continue;
    const claimed = (op as { tenantId?: unknown }).tenantId;
    if (typeof claimed === "string" && claimed !== tenantId) {
      const operationId = (op as { operationId?: unknown }).operationId;
      return { operationIndex: index, ...(typeof operationId === "string" ? { operationId: operationId.slice(0, 128) } : {}), tenantId: claimed };
    }
  }
  return undefined;
}

export function validateOperations(raw: readonly unknown[], request: { tenantId: string; clientId: string }): Operation[] {
  const operations: Operation[] = [];
  const byId = new Map<string, { index: number; canonical: string }>();
  raw.forEach((value, index) => {
    const op = validateOperation(value, index, request);
    // The same operationId twice in one request is a replay, and must be the same operation.
    const canonical = canonicalJson(op);
    const earlier = byId.get(op.operationId);
    if (earlier && earlier.canonical !== canonical) {
      throw fail(index, op.operationId, "operationId", `reuses the operationId of operation ${earlier.index} for a different operation`);
    }
    if (!earlier) byId.set(op.operationId, { index, canonical });
    operations.push(op);
  });
  return operations;
}

function validateOperation(value: unknown, index: number, request: { tenantId: string; clientId: string }): Operation {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw fail(index, undefined, "", "must be an object");
  const op = value as Record<string, unknown>;
  const operationId = op.operationId;
  if (typeof operationId !== "string" || !IDENTIFIER.test(operationId)) throw fail(index, undefined, "operationId", "must be a string of 1-128 printable characters");
  const bad = (field: string, reason: string) => fail(index, operationId, field, reason);

  if (op.tenantId !== request.tenantId) throw bad("tenantId", "must be the request's tenantId");
  if (op.clientId !== request.clientId) throw bad("clientId", "must be the request's clientId");
  if (typeof op.entityType !== "string" || !ENTITY_TYPE.test(op.entityType)) throw bad("entityType", "must be 1-64 characters of A-Z a-z 0-9 _ . : -");
  if (typeof op.entityId !== "string" || !IDENTIFIER.test(op.entityId)) throw bad("entityId", "must be a string of 1-128 printable characters");
  if (typeof op.operationType !== "string" || !ALL_OPERATION_TYPES.includes(op.operationType as OperationType)) throw bad("operationType", "must be CREATE, UPDATE or DELETE");
  const operationType = op.operationType as OperationType;

  let payload: JsonObject | null = null;
  if (operationType !== "DELETE") {
    if (typeof op.payload !== "object" || op.payload === null || Array.isArray(op.payload)) throw bad("payload", `must be an object for ${operationType}`);
    payload = jsonObjectOf(op.payload, bad);
  }

  const timestamp = timestampOf(op.timestamp);
  if (timestamp === undefined) throw bad("timestamp", "must be an ISO 8601 date");

  const problem = clockProblem(op.vectorClock);
  if (problem) throw bad("vectorClock", problem);
  const vectorClock = normalize(op.vectorClock as VectorClock);
  if (counterOf(vectorClock, request.clientId) < 1) throw bad("vectorClock", "must count this operation: an entry for the clientId of at least 1");

  return { operationId, clientId: request.clientId, tenantId: request.tenantId, entityType: op.entityType, entityId: op.entityId, operationType, payload, timestamp, vectorClock };
}

/** A JSON round trip (drops `undefined`, turns Dates into strings), then what JCS can encode. */
function jsonObjectOf(value: object, bad: (field: string, reason: string) => Error): JsonObject {
  let copy: JsonObject;
  try {
    copy = JSON.parse(JSON.stringify(value)) as JsonObject;
    canonicalJson(copy);
  } catch (err) {
    throw bad("payload", `is not encodable as canonical JSON: ${(err as Error).message}`);
  }
  return copy;
}

/** ISO string, Date or epoch ms → ISO string (ms precision); undefined when not a valid date. */
export function timestampOf(value: unknown): string | undefined {
  let ms: number;
  if (value instanceof Date) ms = value.getTime();
  else if (typeof value === "string" && value.length <= 64) ms = Date.parse(value);
  else if (typeof value === "number") ms = value;
  else return undefined;
  if (!Number.isFinite(ms)) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function fail(operationIndex: number, operationId: string | undefined, field: string, reason: string) {
  const name = operationId !== undefined ? `operation ${operationIndex} (${operationId})` : `operation ${operationIndex}`;
  return invalidRequest(`Invalid ${name}: ${field ? `${field} ` : ""}${reason}`, {
    operationIndex,
    ...(operationId !== undefined ? { operationId } : {}),
    field: field ? `operations[${operationIndex}].${field}` : `operations[${operationIndex}]`,
    reason
  });
}
