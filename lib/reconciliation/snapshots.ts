import { createHash } from "node:crypto";
import { canonicalSha256 } from "../canonical-json";
import { formatVersion } from "./versions";
import type { Change, Delta, EntityState, StateSnapshot } from "./types";

/**
 * What clients are given of the authoritative state. Every `checksum` is the hex SHA-256 of the
 * RFC 8785 (JCS) encoding of `data`, so a client recomputes it over what it holds and compares.
 */

/** The snapshot of one entity as it stands (tombstones included: `deleted`, `data: null`). */
export function stateSnapshot(tenantId: string, epoch: string, entity: EntityState): StateSnapshot {
  const version = formatVersion(epoch, entity.version);
  return {
    snapshotId: snapshotIdOf(tenantId, entity.entityType, entity.entityId, version),
    tenantId,
    entityType: entity.entityType,
    entityId: entity.entityId,
    version,
    data: entity.data,
    deleted: entity.deleted,
    vectorClock: entity.vectorClock,
    createdAt: entity.updatedAt,
    checksum: canonicalSha256(entity.data)
  };
}

/** One change of the history, as sent in `deltaUpdates` and on the tenant's stream. */
export function deltaOf(epoch: string, change: Change): Delta {
  return {
    version: formatVersion(epoch, change.version),
    entityType: change.entityType,
    entityId: change.entityId,
    operationId: change.operationId,
    clientId: change.clientId,
    operationType: change.operationType,
    data: change.data,
    deleted: change.deleted,
    vectorClock: change.vectorClock,
    checksum: canonicalSha256(change.data),
    timestamp: change.timestamp,
    appliedAt: change.appliedAt
  };
}

/** Names one state of one entity: the same entity at the same version always has the same id. */
function snapshotIdOf(tenantId: string, entityType: string, entityId: string, version: string): string {
  return createHash("sha256").update(JSON.stringify([tenantId, entityType, entityId, version])).digest("hex").slice(0, 32);
}
