import type { Pool, PoolClient } from "pg";
import { GENESIS_ANCHOR, GENESIS_HASH, sealNext, type AuditRecord, type ChainAnchor, type ScannedEntry } from "../../lib/audit-chain";
import { migrate, withTransaction, type Migration } from "../postgres-connection";
import type { AuditEntry, AuditPage, AuditQuery, AuditStore } from "./audit-store";

/**
 * The audit trail in PostgreSQL (DATABASE_URL): table `audit_records` (one row per record), and
 * `audit_heads` (per tenant: the last seq and hash, and the anchor a retention purge left).
 *
 * Appends of one tenant are serialised across every node by locking the tenant's head row
 * (`SELECT … FOR UPDATE`) in the append's transaction.
 *
 * The database itself refuses tampering: triggers reject every UPDATE and TRUNCATE of
 * `audit_records`, and every DELETE of a record younger than the retention period held in
 * `audit_settings` (which can only grow); `audit_heads` rows can only move forward. Only a role
 * that may disable triggers (a superuser) can alter records, and `verify` then finds the link.
 */

const RECORD_COLUMNS = "id, tenant_id, seq, at, actor, action, target, outcome, justification, details, prev_hash, hash";

export const AUDIT_MIGRATIONS: Migration[] = [
  {
    id: "001_audit_records",
    sql: `
      CREATE TABLE audit_records (
        id            text        PRIMARY KEY,
        tenant_id     text        NOT NULL,
        seq           bigint      NOT NULL CHECK (seq >= 1),
        at            timestamptz NOT NULL,
        actor         json        NOT NULL,
        action        text        NOT NULL,
        target        text        NOT NULL,
        outcome       text        NOT NULL,
        justification text,
        details       json        NOT NULL,
        prev_hash     text        NOT NULL,
        hash          text        NOT NULL,
        UNIQUE (tenant_id, seq)
      );
      CREATE INDEX audit_records_tenant_at ON audit_records (tenant_id, at);
      CREATE INDEX audit_records_tenant_action ON audit_records (tenant_id, action, seq);

      CREATE TABLE audit_heads (
        tenant_id   text        PRIMARY KEY,
        seq         bigint      NOT NULL,
        hash        text        NOT NULL,
        at          timestamptz NOT NULL,
        anchor_seq  bigint      NOT NULL DEFAULT 0,
        anchor_hash text        NOT NULL DEFAULT '${GENESIS_HASH}'
      );

      CREATE TABLE audit_settings (
        id             integer PRIMARY KEY CHECK (id = 1),
        retention_days integer NOT NULL CHECK (retention_days >= 1)
      );

      CREATE FUNCTION audit_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        keep_days integer;
      BEGIN
        IF TG_OP = 'DELETE' THEN
          EXECUTE format('SELECT retention_days FROM %I.audit_settings WHERE id = 1', TG_TABLE_SCHEMA) INTO keep_days;
          IF keep_days IS NOT NULL AND OLD.at < now() - make_interval(days => keep_days) THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION 'audit_records is append-only: a record younger than the retention period (% days) cannot be deleted', coalesce(keep_days, 0)
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        RAISE EXCEPTION 'audit_records is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_records_guard();
      CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_records_guard();
      CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records FOR EACH STATEMENT EXECUTE FUNCTION audit_records_guard();

      CREATE FUNCTION audit_heads_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id AND NEW.seq >= OLD.seq AND NEW.anchor_seq >= OLD.anchor_seq
           AND (NEW.seq > OLD.seq OR NEW.hash = OLD.hash) THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_heads only move forward: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER audit_heads_forward BEFORE UPDATE OR DELETE ON audit_heads FOR EACH ROW EXECUTE FUNCTION audit_heads_guard();
      CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads FOR EACH STATEMENT EXECUTE FUNCTION audit_heads_guard();

      CREATE FUNCTION audit_settings_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' AND NEW.retention_days >= OLD.retention_days THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit retention can only grow: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$;
      CREATE TRIGGER audit_settings_grow_only BEFORE UPDATE OR DELETE ON audit_settings FOR EACH ROW EXECUTE FUNCTION audit_settings_guard();
      CREATE TRIGGER audit_settings_no_truncate BEFORE TRUNCATE ON audit_settings FOR EACH STATEMENT EXECUTE FUNCTION audit_settings_guard();
    `
  }
];

interface RecordRow {
  id: string;
  tenant_id: string;
  seq: string | number;
  at: Date;
  actor: AuditRecord["actor"];
  action: string;
  target: string;
  outcome: AuditRecord["outcome"];
  justification: string | null;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function recordOf(row: RecordRow): AuditRecord {
  return {
    id: row.id,
    seq: Number(row.seq),
    at: row.at.toISOString(),
    tenantId: row.tenant_id,
    actor: row.actor,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    ...(row.justification !== null ? { justification: row.justification } : {}),
    details: row.details,
    prevHash: row.prev_hash,
    hash: row.hash
  };
}

export interface PostgresAuditStoreOptions {
  /** AUDIT_RETENTION_DAYS: the database's retention is raised to it (never lowered). */
  retentionDays: number;
  onWarning?: (message: string, details: Record<string, unknown>) => void;
  /** Called by close() (releases the shared pool). */
  onClose?: () => Promise<void>;
}

const SCAN_PAGE = 1000;

export class PostgresAuditStore implements AuditStore {
  readonly backend = "postgres" as const;
  private ready?: Promise<void>;

  constructor(
    private readonly pool: Pool,
    private readonly options: PostgresAuditStoreOptions
  ) {}

  async append(tenantId: string, entry: AuditEntry, now: number): Promise<{ record: AuditRecord; duplicate: boolean }> {
    await this.init();
    return withTransaction(this.pool, async client => {
      await client.query(
        "INSERT INTO audit_heads (tenant_id, seq, hash, at) VALUES ($1, 0, $2, to_timestamp(0)) ON CONFLICT (tenant_id) DO NOTHING",
        [tenantId, GENESIS_HASH]
      );
      const head = (await client.query<{ seq: string; hash: string; at: Date }>("SELECT seq, hash, at FROM audit_heads WHERE tenant_id = $1 FOR UPDATE", [tenantId])).rows[0];
      const existing = await client.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM audit_records WHERE id = $1`, [entry.id]);
      if (existing.rows.length > 0) return { record: recordOf(existing.rows[0]), duplicate: true };
      const record = sealNext(tenantId, entry, { seq: Number(head.seq), hash: head.hash, atMs: head.at.getTime() }, now);
      await client.query(
        `INSERT INTO audit_records (${RECORD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          record.id,
          tenantId,
          record.seq,
          record.at,
          JSON.stringify(record.actor),
          record.action,
          record.target,
          record.outcome,
          record.justification ?? null,
          JSON.stringify(record.details),
          record.prevHash,
          record.hash
        ]
      );
      await client.query("UPDATE audit_heads SET seq = $2, hash = $3, at = $4 WHERE tenant_id = $1", [tenantId, record.seq, record.hash, record.at]);
      return { record, duplicate: false };
    });
  }

  async query(tenantId: string, query: AuditQuery): Promise<AuditPage> {
    await this.init();
    const conditions = ["tenant_id = $1"];
    const params: unknown[] = [tenantId];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      conditions.push(sql.replace("?", `$${params.length}`));
    };
    if (query.afterSeq !== undefined) add("seq > ?", query.afterSeq);
    if (query.from !== undefined) add("at >= ?", new Date(query.from).toISOString());
    if (query.to !== undefined) add("at < ?", new Date(query.to).toISOString());
    if (query.action !== undefined) add("action = ?", query.action);
    params.push(query.limit + 1);
    const { rows } = await this.pool.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM audit_records WHERE ${conditions.join(" AND ")} ORDER BY seq LIMIT $${params.length}`, params);
    const records = rows.slice(0, query.limit).map(recordOf);
    return { records, hasMore: rows.length > query.limit };
  }

  async *scan(tenantId: string): AsyncIterable<ScannedEntry> {
    await this.init();
    let after = -1;
    for (;;) {
      const { rows } = await this.pool.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM audit_records WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [tenantId, after, SCAN_PAGE]);
      for (const row of rows) yield { record: recordOf(row) };
      if (rows.length < SCAN_PAGE) return;
      after = Number(rows[rows.length - 1].seq);
    }
  }

  async chainInfo(tenantId: string): Promise<{ anchor: ChainAnchor; head?: ChainAnchor }> {
    await this.init();
    const { rows } = await this.pool.query<{ seq: string; hash: string; anchor_seq: string; anchor_hash: string }>(
      "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE tenant_id = $1",
      [tenantId]
    );
    if (rows.length === 0) return { anchor: { ...GENESIS_ANCHOR } };
    const row = rows[0];
    return { anchor: { seq: Number(row.anchor_seq), hash: row.anchor_hash }, head: { seq: Number(row.seq), hash: row.hash } };
  }

  async tenants(): Promise<string[]> {
    await this.init();
    const { rows } = await this.pool.query<{ tenant_id: string }>("SELECT tenant_id FROM audit_heads WHERE seq > 0");
    return rows.map(r => r.tenant_id).sort();
  }

  async purge(retentionDays: number, now: number): Promise<Record<string, number>> {
    await this.init();
    return withTransaction(this.pool, async client => {
      // The database's retention is a floor: a shorter one asked for here cannot delete more.
      const days = Math.max(retentionDays, await this.databaseRetention(client));
      const { rows } = await client.query<{ tenant_id: string; seq: string; hash: string; removed: string }>(
        `WITH gone AS (
           DELETE FROM audit_records
           WHERE at < LEAST(to_timestamp($1::double precision / 1000), now()) - make_interval(days => $2)
           RETURNING tenant_id, seq, hash)
         SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash, count(*) OVER (PARTITION BY tenant_id) AS removed
         FROM gone ORDER BY tenant_id, seq DESC`,
        [now, days]
      );
      const removed: Record<string, number> = {};
      for (const row of rows) {
        await client.query("UPDATE audit_heads SET anchor_seq = $2, anchor_hash = $3 WHERE tenant_id = $1 AND anchor_seq < $2", [row.tenant_id, row.seq, row.hash]);
        removed[row.tenant_id] = Number(row.removed);
      }
      return removed;
    });
  }

  async close(): Promise<void> {
    await this.ready?.catch(() => undefined);
    await this.options.onClose?.();
  }

  /** Runs the migrations and sets the retention, once; a failed attempt (database down) is retried by the next call. */
  private init(): Promise<void> {
    if (!this.ready) {
      this.ready = (async () => {
        await migrate(this.pool, "audit", AUDIT_MIGRATIONS);
        const { rows } = await this.pool.query<{ retention_days: number }>(
          `INSERT INTO audit_settings (id, retention_days) VALUES (1, $1)
           ON CONFLICT (id) DO UPDATE SET retention_days = EXCLUDED.retention_days WHERE audit_settings.retention_days < EXCLUDED.retention_days
           RETURNING retention_days`,
          [this.options.retentionDays]
        );
        if (rows.length === 0) {
          const current = (await this.pool.query<{ retention_days: number }>("SELECT retention_days FROM audit_settings WHERE id = 1")).rows[0]?.retention_days;
          if (current !== undefined && current > this.options.retentionDays) {
            this.options.onWarning?.("AUDIT_RETENTION_DAYS is shorter than the database's audit retention, which can only grow; keeping the database's", {
              configured: this.options.retentionDays,
              database: current
            });
          }
        }
      })();
      this.ready.catch(() => {
        this.ready = undefined;
      });
    }
    return this.ready;
  }

  private async databaseRetention(client: PoolClient): Promise<number> {
    const { rows } = await client.query<{ retention_days: number }>("SELECT retention_days FROM audit_settings WHERE id = 1");
    return rows[0]?.retention_days ?? Number.MAX_SAFE_INTEGER;
  }
}
