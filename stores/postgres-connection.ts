import type { Pool, PoolClient } from "pg";

/**
 * One PostgreSQL pool per URL per process, shared by every store of the process (as
 * redis-connection.ts does for Redis). Queries fail fast while the server is unreachable
 * (short connection timeout) so callers degrade or refuse instead of hanging.
 *
 * A deployment (or a test) isolates itself with a schema: `?options=-c search_path=<schema>`
 * in DATABASE_URL; migrations create their tables in that schema.
 */
const pools = new Map<string, { pool: Pool; users: number }>();

export function acquirePool(url: string): Pool {
  const entry = pools.get(url);
  if (entry) {
    entry.users += 1;
    return entry.pool;
  }
  // Loaded on first use: without DATABASE_URL the library never loads (about 2.8 MiB of heap).
  const { Pool: PgPool } = require("pg") as typeof import("pg");
  const pool = new PgPool({ connectionString: url, max: 10, connectionTimeoutMillis: 2000, idleTimeoutMillis: 30_000 });
  // An idle client that loses its server emits on the pool; without a listener that kills the process.
  pool.on("error", () => undefined);
  pools.set(url, { pool, users: 1 });
  return pool;
}

export async function releasePool(url: string): Promise<void> {
  const entry = pools.get(url);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  pools.delete(url);
  await entry.pool.end().catch(() => undefined);
}

/** One schema change, applied once per database (per search_path schema), in order of `id`. */
export interface Migration {
  /** Unique within its component and increasing: "001_create_audit_records". */
  id: string;
  sql: string;
}

/**
 * Applies the component's migrations that have not run yet, each in its own transaction, under
 * an advisory lock so nodes starting together never apply one twice. Idempotent.
 */
export async function migrate(pool: Pool, component: string, migrations: Migration[]): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query("SELECT pg_advisory_lock(hashtext($1))", [`pf2-migrate:${component}`]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         component text NOT NULL, id text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (component, id))`
    );
    const done = new Set((await client.query<{ id: string }>("SELECT id FROM schema_migrations WHERE component = $1", [component])).rows.map(r => r.id));
    for (const migration of [...migrations].sort((a, b) => a.id.localeCompare(b.id))) {
      if (done.has(migration.id)) continue;
      await inTransaction(client, async () => {
        await client.query(migration.sql);
        await client.query("INSERT INTO schema_migrations (component, id) VALUES ($1, $2)", [component, migration.id]);
      });
      applied.push(migration.id);
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock(hashtext($1))", [`pf2-migrate:${component}`]).catch(() => undefined);
    client.release();
  }
  return applied;
}

/** Runs `work` in a transaction on a client of its own; rolls back on any error. */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await inTransaction(client, () => work(client));
  } finally {
    client.release();
  }
}

async function inTransaction<T>(client: PoolClient, work: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await work();
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/** Round-trip time of `SELECT 1` in ms; rejects when the server is unreachable. */
export async function pgLatencyMs(pool: Pool): Promise<number> {
  const started = process.hrtime.bigint();
  await pool.query("SELECT 1");
  return Number(process.hrtime.bigint() - started) / 1e6;
}
