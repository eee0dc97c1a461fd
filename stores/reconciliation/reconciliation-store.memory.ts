import { randomBytes } from "node:crypto";
import { Deque } from "../../lib/deque";
import { FifoMap } from "../../lib/fifo-map";
import {
  checkVersions,
  type ApplyOptions,
  type BatchItem,
  type Change,
  type EntityDecider,
  type EntityState,
  type EntityWrite,
  type OperationRecord,
  type ReconciliationLimits,
  type ReconciliationStore,
  type TenantHead
} from "./reconciliation-store";

interface TenantData {
  epoch: string;
  seq: number;
  trimmedThrough: number;
  entities: Map<string, EntityState>;
  /** version → entity key, in version order (a changed entity moves to the end). */
  byVersion: Map<number, string>;
  /** Contiguous: changes.at(i).version === trimmedThrough + 1 + i. A deque: trimming one change
   * per write from an array's front moved all RECONCILIATION_HISTORY_SIZE others. */
  changes: Deque<Change>;
  /** operationId → outcome, oldest first (dropped after the operation retention). */
  records: FifoMap<string, OperationRecord>;
}

const entityKey = (entityType: string, entityId: string) => JSON.stringify([entityType, entityId]);

/**
 * The embedded default: everything in this process. A batch is decided and written in one
 * synchronous step, so nothing can interleave with it. A restart loses all state and starts new
 * epochs, so clients holding older versions are sent full snapshots.
 */
export class MemoryReconciliationStore implements ReconciliationStore {
  private readonly tenants = new Map<string, TenantData>();

  constructor(private readonly limits: ReconciliationLimits) {}

  private tenant(tenantId: string): TenantData {
    let data = this.tenants.get(tenantId);
    if (!data) {
      data = { epoch: randomBytes(4).toString("hex"), seq: 0, trimmedThrough: 0, entities: new Map(), byVersion: new Map(), changes: new Deque(), records: new FifoMap() };
      this.tenants.set(tenantId, data);
    }
    return data;
  }

  async applyBatch(tenantId: string, items: BatchItem[], decide: EntityDecider, options: ApplyOptions): Promise<EntityWrite[]> {
    const tenant = this.tenant(tenantId);
    // Decide everything first, write afterwards: a decision that throws leaves nothing behind.
    const writes: EntityWrite[] = [];
    const pending = new Map<string, EntityState>();
    let next = tenant.seq + 1;
    for (const item of items) {
      const key = entityKey(item.entityType, item.entityId);
      const current = pending.get(key) ?? tenant.entities.get(key) ?? null;
      const known = new Map<string, OperationRecord>();
      for (const id of item.operationIds) {
        const record = tenant.records.get(id);
        if (record) known.set(id, structuredClone(record));
      }
      const write = decide(item, current ? structuredClone(current) : null, known, { epoch: tenant.epoch, firstVersion: next });
      checkVersions(write, next);
      next += write.changes.length;
      if (write.state) pending.set(key, write.state);
      writes.push(write);
    }
    for (const write of writes) {
      if (write.state) {
        const key = entityKey(write.state.entityType, write.state.entityId);
        const before = tenant.entities.get(key);
        if (before) tenant.byVersion.delete(before.version);
        tenant.entities.set(key, structuredClone(write.state));
        tenant.byVersion.set(write.state.version, key);
      }
      for (const change of write.changes) tenant.changes.push(structuredClone(change));
      for (const record of write.records) tenant.records.set(record.operationId, structuredClone({ ...record, recordedAt: options.now }));
    }
    tenant.seq = next - 1;
    this.trim(tenant, options.now);
    return writes;
  }

  private trim(tenant: TenantData, now: number): void {
    const keepFrom = tenant.seq - this.limits.historySize;
    while (tenant.trimmedThrough < keepFrom) {
      tenant.changes.shift();
      tenant.trimmedThrough += 1;
    }
    const cutoff = now - this.limits.operationRetentionMs;
    tenant.records.dropOldestWhile(record => record.recordedAt < cutoff);
  }

  async head(tenantId: string): Promise<TenantHead> {
    const { epoch, seq, trimmedThrough } = this.tenant(tenantId);
    return { epoch, seq, trimmedThrough };
  }

  async changes(tenantId: string, after: number, through: number): Promise<Change[] | null> {
    const tenant = this.tenant(tenantId);
    if (after < tenant.trimmedThrough || through > tenant.seq) return null;
    if (through <= after) return [];
    const start = after - tenant.trimmedThrough;
    return structuredClone(tenant.changes.slice(start, start + (through - after)));
  }

  async entitiesChangedSince(tenantId: string, after: number, through: number, limit: number): Promise<EntityState[]> {
    const tenant = this.tenant(tenantId);
    const out: EntityState[] = [];
    for (const [version, key] of tenant.byVersion) {
      if (version <= after) continue;
      if (version > through || out.length >= limit) break;
      out.push(structuredClone(tenant.entities.get(key) as EntityState));
    }
    return out;
  }

  async getEntity(tenantId: string, entityType: string, entityId: string): Promise<EntityState | null> {
    const entity = this.tenants.get(tenantId)?.entities.get(entityKey(entityType, entityId));
    return entity ? structuredClone(entity) : null;
  }

  async getRecord(tenantId: string, operationId: string): Promise<OperationRecord | null> {
    const record = this.tenants.get(tenantId)?.records.get(operationId);
    return record ? structuredClone(record) : null;
  }

  async ping(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    // Nothing to release; the state lives as long as the process (or this object).
  }
}
