import { randomBytes } from "node:crypto";
import type { Pool, PoolClient } from "pg";
import { migrate, pgLatencyMs, withTransaction, type Migration } from "../postgres-connection";
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

/**
 * The durable backend: PostgreSQL. A batch is one transaction that first locks the tenant's row
 * (`SELECT ... FOR UPDATE`), so batches of a tenant are serialized across every node, versions are
 * handed out in commit order, and a failure or a timeout rolls every entity of the batch back.
 *
 * Entity states, changes and outcomes are stored as JSON text, not jsonb: text keeps them exactly
 * as written (jsonb would reorder keys, normalize numbers and refuse `\u0000` in strings), so a
 * checksum computed on a state read back is the one computed on the state written.
 */
export const RECONCILIATION_MIGRATIONS: Migration[] = [
  {
    id: "001_create_reconciliation",
    sql: `
      CREATE TABLE reconciliation_tenants (
        tenant_id text PRIMARY KEY,
        epoch text NOT NULL,
        seq bigint NOT NULL DEFAULT 0,
        trimmed_through bigint NOT NULL DEFAULT 0
      );
      CREATE TABLE reconciliation_entities (
        tenant_id text NOT NULL,
        entity_type text NOT NULL,
        entity_id text NOT NULL,
        version bigint NOT NULL,
        deleted boolean NOT NULL,
        updated_at timestamptz NOT NULL,
        state text NOT NULL,
        PRIMARY KEY (tenant_id, entity_type, entity_id)
      );
      CREATE INDEX reconciliation_entities_by_version ON reconciliation_entities (tenant_id, version);
      CREATE TABLE reconciliation_changes (
        tenant_id text NOT NULL,
        version bigint NOT NULL,
        operation_id text NOT NULL,
        change text NOT NULL,
        PRIMARY KEY (tenant_id, version)
      );
      CREATE TABLE reconciliation_operations (
        tenant_id text NOT NULL,
        operation_id text NOT NULL,
        recorded_at bigint NOT NULL,
        record text NOT NULL,
        PRIMARY KEY (tenant_id, operation_id)
      );
      CREATE INDEX reconciliation_operations_by_age ON reconciliation_operations (tenant_id, recorded_at);
    `
  }
];

const entityKey = (entityType: string, entityId: string) => JSON.stringify([entityType, entityId]);

export class PostgresReconciliationStore implements ReconciliationStore {
  private migrated?: Promise<void>;

  constructor(
    private readonly pool: Pool,
    private readonly limits: ReconciliationLimits,
    private readonly release: () => Promise<void> = async () => undefined
  ) {}

  /** Applies the migrations once per store (again after a failure). */
  private ready(): Promise<void> {
    if (!this.migrated) {
      this.migrated = migrate(this.pool, "reconciliation", RECONCILIATION_MIGRATIONS).then(
        () => undefined,
        err => {
          this.migrated = undefined;
          throw err;
        }
      );
    }
    return this.migrated;
  }

  async applyBatch(tenantId: string, items: BatchItem[], decide: EntityDecider, options: ApplyOptions): Promise<EntityWrite[]> {
    await this.ready();
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Number.POSITIVE_INFINITY;
    const step = async <T>(work: () => Promise<T>): Promise<T> => {
      if (Date.now() >= deadline) throw new Error("Reconciliation batch timed out");
      return work();
    };
    return withTransaction(this.pool, async client => {
      if (options.timeoutMs !== undefined) {
        // Bounds every statement, lock waits included, by what is left of the request's time.
        await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(options.timeoutMs))}`);
      }
      const tenant = await step(() => this.lockTenant(client, tenantId));
      const current = await step(() => this.loadEntities(client, tenantId, items));
      const known = await step(() => this.loadRecords(client, tenantId, items.flatMap(item => item.operationIds)));

      const writes: EntityWrite[] = [];
      const states = new Map<string, EntityState>();
      let next = tenant.seq + 1;
      for (const item of items) {
        const key = entityKey(item.entityType, item.entityId);
        const mine = new Map<string, OperationRecord>();
        for (const id of item.operationIds) {
          const record = known.get(id);
          if (record) mine.set(id, record);
        }
        const before = states.get(key) ?? current.get(key) ?? null;
        const write = decide(item, before ? structuredClone(before) : null, mine, { epoch: tenant.epoch, firstVersion: next });
        checkVersions(write, next);
        next += write.changes.length;
        if (write.state) states.set(key, write.state);
        writes.push(write);
      }
      const seq = next - 1;
      const changes = writes.flatMap(write => write.changes);
      const records = writes.flatMap(write => write.records);

      if (states.size > 0) {
        const list = [...states.values()];
        await step(() =>
          client.query(
            `INSERT INTO reconciliation_entities (tenant_id, entity_type, entity_id, version, deleted, updated_at, state)
             SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::timestamptz[], $7::text[])
             ON CONFLICT (tenant_id, entity_type, entity_id) DO UPDATE
               SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = EXCLUDED.updated_at, state = EXCLUDED.state`,
            [
              tenantId,
              list.map(s => s.entityType),
              list.map(s => s.entityId),
              list.map(s => s.version),
              list.map(s => s.deleted),
              list.map(s => s.updatedAt),
              list.map(s => JSON.stringify(s))
            ]
          )
        );
      }
      if (changes.length > 0) {
        await step(() =>
          client.query(
            `INSERT INTO reconciliation_changes (tenant_id, version, operation_id, change)
             SELECT $1::text, * FROM unnest($2::bigint[], $3::text[], $4::text[])`,
            [tenantId, changes.map(c => c.version), changes.map(c => c.operationId), changes.map(c => JSON.stringify(c))]
          )
        );
      }
      if (records.length > 0) {
        await step(() =>
          client.query(
            `INSERT INTO reconciliation_operations (tenant_id, operation_id, recorded_at, record)
             SELECT $1::text, * FROM unnest($2::text[], $3::bigint[], $4::text[])
             ON CONFLICT (tenant_id, operation_id) DO NOTHING`,
            [tenantId, records.map(r => r.operationId), records.map(() => options.now), records.map(r => JSON.stringify({ ...r, recordedAt: options.now }))]
          )
        );
      }
      const trimmedThrough = Math.max(tenant.trimmedThrough, seq - this.limits.historySize);
      if (seq !== tenant.seq || trimmedThrough !== tenant.trimmedThrough) {
        await step(() => client.query("UPDATE reconciliation_tenants SET seq = $2, trimmed_through = $3 WHERE tenant_id = $1", [tenantId, seq, trimmedThrough]));
      }
      if (trimmedThrough > tenant.trimmedThrough) {
        await step(() => client.query("DELETE FROM reconciliation_changes WHERE tenant_id = $1 AND version <= $2", [tenantId, trimmedThrough]));
      }
      await step(() => client.query("DELETE FROM reconciliation_operations WHERE tenant_id = $1 AND recorded_at < $2", [tenantId, options.now - this.limits.operationRetentionMs]));
      return writes;
    });
  }

  /** Locks the tenant's row until the transaction ends, creating it (new epoch) when missing. */
  private async lockTenant(client: PoolClient, tenantId: string): Promise<TenantHead> {
    const lock = () =>
      client.query<{ epoch: string; seq: string; trimmed_through: string }>("SELECT epoch, seq, trimmed_through FROM reconciliation_tenants WHERE tenant_id = $1 FOR UPDATE", [tenantId]);
    let { rows } = await lock();
    if (rows.length === 0) {
      await client.query("INSERT INTO reconciliation_tenants (tenant_id, epoch) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING", [tenantId, newEpoch()]);
      ({ rows } = await lock());
    }
    return headOf(rows[0]);
  }

  private async loadEntities(client: PoolClient, tenantId: string, items: BatchItem[]): Promise<Map<string, EntityState>> {
    const { rows } = await client.query<{ state: string }>(
      `SELECT e.state FROM reconciliation_entities e
       JOIN unnest($2::text[], $3::text[]) AS wanted(entity_type, entity_id)
         ON e.entity_type = wanted.entity_type AND e.entity_id = wanted.entity_id
       WHERE e.tenant_id = $1`,
      [tenantId, items.map(i => i.entityType), items.map(i => i.entityId)]
    );
    const out = new Map<string, EntityState>();
    for (const row of rows) {
      const state = JSON.parse(row.state) as EntityState;
      out.set(entityKey(state.entityType, state.entityId), state);
    }
    return out;
  }

  private async loadRecords(client: PoolClient, tenantId: string, operationIds: string[]): Promise<Map<string, OperationRecord>> {
    const out = new Map<string, OperationRecord>();
    if (operationIds.length === 0) return out;
    const { rows } = await client.query<{ record: string }>("SELECT record FROM reconciliation_operations WHERE tenant_id = $1 AND operation_id = ANY($2::text[])", [
      tenantId,
      [...new Set(operationIds)]
    ]);
    for (const row of rows) {
      const record = JSON.parse(row.record) as OperationRecord;
      out.set(record.operationId, record);
    }
    return out;
  }

  async head(tenantId: string): Promise<TenantHead> {
    await this.ready();
    const select = () => this.pool.query<{ epoch: string; seq: string; trimmed_through: string }>("SELECT epoch, seq, trimmed_through FROM reconciliation_tenants WHERE tenant_id = $1", [tenantId]);
    let { rows } = await select();
    if (rows.length === 0) {
      // First sight of the tenant: create its epoch (another node may do so at the same time).
      await this.pool.query("INSERT INTO reconciliation_tenants (tenant_id, epoch) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING", [tenantId, newEpoch()]);
      ({ rows } = await select());
    }
    return headOf(rows[0]);
  }

  async changes(tenantId: string, after: number, through: number): Promise<Change[] | null> {
    if (through <= after) return [];
    await this.ready();
    const { rows } = await this.pool.query<{ change: string }>(
      "SELECT change FROM reconciliation_changes WHERE tenant_id = $1 AND version > $2 AND version <= $3 ORDER BY version",
      [tenantId, after, through]
    );
    // Versions have no gaps: anything short of the whole range means part of it was trimmed.
    if (rows.length !== through - after) return null;
    return rows.map(row => JSON.parse(row.change) as Change);
  }

  async entitiesChangedSince(tenantId: string, after: number, through: number, limit: number): Promise<EntityState[]> {
    await this.ready();
    const { rows } = await this.pool.query<{ state: string }>(
      "SELECT state FROM reconciliation_entities WHERE tenant_id = $1 AND version > $2 AND version <= $3 ORDER BY version LIMIT $4",
      [tenantId, after, through, limit]
    );
    return rows.map(row => JSON.parse(row.state) as EntityState);
  }

  async getEntity(tenantId: string, entityType: string, entityId: string): Promise<EntityState | null> {
    await this.ready();
    const { rows } = await this.pool.query<{ state: string }>(
      "SELECT state FROM reconciliation_entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
      [tenantId, entityType, entityId]
    );
    return rows.length > 0 ? (JSON.parse(rows[0].state) as EntityState) : null;
  }

  async getRecord(tenantId: string, operationId: string): Promise<OperationRecord | null> {
    await this.ready();
    const { rows } = await this.pool.query<{ record: string }>("SELECT record FROM reconciliation_operations WHERE tenant_id = $1 AND operation_id = $2", [tenantId, operationId]);
    return rows.length > 0 ? (JSON.parse(rows[0].record) as OperationRecord) : null;
  }

  ping(): Promise<number> {
    return pgLatencyMs(this.pool);
  }

  async close(): Promise<void> {
    await this.release();
  }
}

function newEpoch(): string {
  return randomBytes(4).toString("hex");
}

function headOf(row: { epoch: string; seq: string; trimmed_through: string }): TenantHead {
  return { epoch: row.epoch, seq: Number(row.seq), trimmedThrough: Number(row.trimmed_through) };
}
