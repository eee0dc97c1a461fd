import { randomUUID } from "node:crypto";
import { Client } from "pg";

/** The real PostgreSQL every PostgreSQL-backed test uses; CI starts it. A test that cannot reach it fails. */
export const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * Creates a schema unique to one test file and returns a DATABASE_URL whose search_path is that
 * schema, so parallel runs and leftovers never collide. `drop()` removes it.
 */
export async function uniqueSchema(label: string): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  const schema = `pf2test_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${randomUUID().slice(0, 8)}`;
  await adminQuery(`CREATE SCHEMA "${schema}"`);
  const separator = POSTGRES_URL.includes("?") ? "&" : "?";
  const url = `${POSTGRES_URL}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return { url, schema, drop: () => adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`) };
}

/** Runs one statement on its own connection (outside any store's pool). */
export async function adminQuery(sql: string, params: unknown[] = []): Promise<void> {
  const client = new Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql, params);
  } finally {
    await client.end();
  }
}
