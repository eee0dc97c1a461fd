import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Client, Pool } from "pg";
import { GENESIS_HASH, recordHash, type AuditRecord } from "../../lib/audit-chain";
import { verifyTenant } from "../../lib/audit-ops";
import { canonicalJson } from "../../lib/canonical-json";
import { createAuditStore, DAY_MS, type AuditEntry, type AuditStore } from "../../stores/audit";
import { FileAuditStore } from "../../stores/audit/audit-store.file";
import { PostgresAuditStore } from "../../stores/audit/audit-store.postgres";
import { uniqueSchema } from "../helpers/postgres";

/*
 * One contract for every audit backend: the embedded append-only files and PostgreSQL (the real
 * server at TEST_DATABASE_URL, a fresh schema per test). Tampering is done the way an attacker with
 * storage access would: editing the file, or in PostgreSQL as a superuser with triggers disabled
 * (`session_replication_role = replica`), since the table itself refuses UPDATE and DELETE.
 */

const T0 = 1_700_000_000_000;
const RETENTION = 2555;

interface Backend {
  name: string;
  /** Prepares empty storage for one test. */
  setup(): Promise<void>;
  /** A store over the current storage (a second call = a restart, or another node). */
  open(): AuditStore;
  teardown(): Promise<void>;
  /** Rewrites the stored record at `seq` with `change(record)`, bypassing every protection. */
  tamper(tenantId: string, seq: number, change: (record: AuditRecord) => AuditRecord): Promise<void>;
  /** Deletes the stored record at `seq`, bypassing every protection. */
  remove(tenantId: string, seq: number): Promise<void>;
}

function fileBackend(): Backend & { dir(): string } {
  let dir = "";
  const fileOf = (tenantId: string) => {
    const files = readdirSync(path.join(dir, "audit")).filter(name => readFileSync(path.join(dir, "audit", name), "utf8").includes(`"tenantId":${JSON.stringify(tenantId)}`));
    if (files.length !== 1) throw new Error(`no single file for ${tenantId}`);
    return path.join(dir, "audit", files[0]);
  };
  const rewrite = (tenantId: string, edit: (lines: string[]) => string[]) => {
    const file = fileOf(tenantId);
    const lines = readFileSync(file, "utf8").split("\n").filter(l => l.length > 0);
    writeFileSync(file, edit(lines).map(l => `${l}\n`).join(""));
  };
  const indexOfSeq = (lines: string[], seq: number) => lines.findIndex(l => (JSON.parse(l) as { seq?: number }).seq === seq);
  return {
    name: "file",
    dir: () => dir,
    async setup() {
      dir = mkdtempSync(path.join(tmpdir(), "pf2-audit-contract-"));
    },
    open: () => createAuditStore({ databaseUrl: undefined, dataDir: dir, auditRetentionDays: RETENTION }),
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async tamper(tenantId, seq, change) {
      rewrite(tenantId, lines => {
        const i = indexOfSeq(lines, seq);
        lines[i] = canonicalJson(change(JSON.parse(lines[i]) as AuditRecord));
        return lines;
      });
    },
    async remove(tenantId, seq) {
      rewrite(tenantId, lines => lines.filter((_, i) => i !== indexOfSeq(lines, seq)));
    }
  };
}

function postgresBackend(): Backend & { url(): string } {
  let schema: Awaited<ReturnType<typeof uniqueSchema>> | undefined;
  const asSuperuser = async (work: (client: Client) => Promise<void>) => {
    const client = new Client({ connectionString: schema?.url });
    await client.connect();
    try {
      await client.query("SET session_replication_role = replica");
      await work(client);
    } finally {
      await client.end();
    }
  };
  return {
    name: "postgres",
    url: () => (schema as { url: string }).url,
    async setup() {
      schema = await uniqueSchema("audit");
    },
    open: () => createAuditStore({ databaseUrl: schema?.url, dataDir: "/nonexistent", auditRetentionDays: RETENTION }),
    async teardown() {
      await schema?.drop();
    },
    async tamper(tenantId, seq, change) {
      await asSuperuser(async client => {
        const row = (await client.query("SELECT id FROM audit_records WHERE tenant_id = $1 AND seq = $2", [tenantId, seq])).rows[0] as { id: string };
        const store = createAuditStore({ databaseUrl: schema?.url, dataDir: "/nonexistent", auditRetentionDays: RETENTION });
        let original: AuditRecord | undefined;
        for await (const entry of store.scan(tenantId)) if ("record" in entry && entry.record.seq === seq) original = entry.record;
        await store.close();
        const r = change(original as AuditRecord);
        await client.query(
          `UPDATE audit_records SET tenant_id = $2, seq = $3, at = $4, actor = $5, action = $6, target = $7, outcome = $8, justification = $9, details = $10, prev_hash = $11, hash = $12 WHERE id = $1`,
          [row.id, r.tenantId, r.seq, r.at, JSON.stringify(r.actor), r.action, r.target, r.outcome, r.justification ?? null, JSON.stringify(r.details), r.prevHash, r.hash]
        );
      });
    },
    async remove(tenantId, seq) {
      await asSuperuser(async client => {
        await client.query("DELETE FROM audit_records WHERE tenant_id = $1 AND seq = $2", [tenantId, seq]);
      });
    }
  };
}

const file = fileBackend();
const postgres = postgresBackend();

function entry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: randomUUID(),
    actor: { userId: "u1", role: "user", nodeID: "node-1" },
    action: "security.tenant_violation",
    target: "tenant:t2",
    outcome: "denied",
    details: { via: "rest", nested: { list: [1, "two", null, 3.25, -0.5, 1e21], flag: true }, text: "héllo ✓ \u2028 \"quoted\"" },
    ...overrides
  };
}

async function appendMany(store: AuditStore, tenantId: string, count: number, now = T0, make: (i: number) => Partial<AuditEntry> = () => ({})): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for (let i = 1; i <= count; i++) records.push((await store.append(tenantId, entry(make(i)), now + i)).record);
  return records;
}

async function all(store: AuditStore, tenantId: string): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for await (const e of store.scan(tenantId)) if ("record" in e) records.push(e.record);
  return records;
}

describe.each([file, postgres] as Backend[])("AuditStore contract: $name", backend => {
  let stores: AuditStore[] = [];
  const open = () => {
    const store = backend.open();
    stores.push(store);
    return store;
  };
  /** Closes every open store and opens a new one (a restart). */
  const reopen = async () => {
    await Promise.all(stores.splice(0).map(s => s.close()));
    return open();
  };

  beforeEach(() => backend.setup());
  afterEach(async () => {
    await Promise.all(stores.splice(0).map(s => s.close()));
    await backend.teardown();
  });

  it("chains appends: seq 1, 2, 3, each pointing at the previous hash, hashed over the canonical record", async () => {
    const store = open();
    const records = await appendMany(store, "t1", 3);
    expect(records.map(r => r.seq)).toEqual([1, 2, 3]);
    expect(records[0].prevHash).toBe(GENESIS_HASH);
    expect(records[1].prevHash).toBe(records[0].hash);
    expect(records[2].prevHash).toBe(records[1].hash);
    for (const r of records) {
      expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(r.hash).toBe(recordHash(r));
      expect(r.tenantId).toBe("t1");
    }
    expect(records[0].at).toBe(new Date(T0 + 1).toISOString());
    expect(await all(store, "t1")).toEqual(records);
  });

  it("keeps one chain per tenant", async () => {
    const store = open();
    await appendMany(store, "t1", 2);
    const [b1] = await appendMany(store, "t2", 1);
    expect(b1.seq).toBe(1);
    expect(b1.prevHash).toBe(GENESIS_HASH);
    expect((await all(store, "t1")).map(r => r.seq)).toEqual([1, 2]);
    expect(await store.tenants()).toEqual(["t1", "t2"]);
  });

  it("stores the record exactly as given (details survive the round trip and still hash)", async () => {
    const store = open();
    const input = entry({ justification: "ticket 42: customer asked", details: { deep: { a: [1, { b: "ü" }], n: 0.1 + 0.2, big: 2 ** 53 - 1 }, empty: {}, nul: "a\u0000b" } });
    const { record } = await store.append("t1", input, T0);
    const reopened = await reopen();
    const [stored] = await all(reopened, "t1");
    expect(stored).toEqual(record);
    expect(stored.justification).toBe("ticket 42: customer asked");
    expect(stored.details).toEqual(input.details);
    expect((await verifyTenant(reopened, "t1")).ok).toBe(true);
  });

  it("never lets a chain's time go backwards", async () => {
    const store = open();
    const { record: first } = await store.append("t1", entry(), T0 + 5000);
    const { record: second } = await store.append("t1", entry(), T0);
    expect(second.at).toBe(first.at);
  });

  it("stores an id once: a retried append answers the stored record as a duplicate, also after a restart", async () => {
    const store = open();
    const input = entry();
    const first = await store.append("t1", input, T0);
    const again = await store.append("t1", { ...input, target: "changed" }, T0 + 1);
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ record: first.record, duplicate: true });
    const reopened = await reopen();
    expect(await reopened.append("t1", input, T0 + 2)).toEqual({ record: first.record, duplicate: true });
    expect((await all(reopened, "t1")).length).toBe(1);
  });

  it("serialises concurrent appends to one chain (no fork, no gap)", async () => {
    const stores = backend.name === "postgres" ? [open(), open()] : [open()];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => stores[i % stores.length].append("t1", entry(), T0 + i)));
    expect(results.map(r => r.record.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const report = await verifyTenant(stores[0], "t1");
    expect(report).toMatchObject({ ok: true, checked: 40, lastSeq: 40 });
  });

  it("keeps records across a restart and continues the chain", async () => {
    const store = open();
    const before = await appendMany(store, "t1", 3);
    const reopened = await reopen();
    expect(await all(reopened, "t1")).toEqual(before);
    const { record } = await reopened.append("t1", entry(), T0 + 100);
    expect(record.seq).toBe(4);
    expect(record.prevHash).toBe(before[2].hash);
    expect((await verifyTenant(reopened, "t1")).ok).toBe(true);
  });

  it("queries by time range and action, oldest first, with a cursor", async () => {
    const store = open();
    await appendMany(store, "t1", 25, T0, i => ({ action: i % 5 === 0 ? "admin.kick" : "security.auth_failed" }));
    await appendMany(store, "t2", 3);

    const pages: number[][] = [];
    let afterSeq: number | undefined;
    for (;;) {
      const page = await store.query("t1", { limit: 10, ...(afterSeq !== undefined ? { afterSeq } : {}) });
      pages.push(page.records.map(r => r.seq));
      if (!page.hasMore) break;
      afterSeq = page.records[page.records.length - 1].seq;
    }
    expect(pages).toEqual([
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      [11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
      [21, 22, 23, 24, 25]
    ]);
    const kicks = await store.query("t1", { action: "admin.kick", limit: 100 });
    expect(kicks.records.map(r => r.seq)).toEqual([5, 10, 15, 20, 25]);
    expect(kicks.hasMore).toBe(false);
    const range = await store.query("t1", { from: T0 + 10, to: T0 + 13, limit: 100 });
    expect(range.records.map(r => r.seq)).toEqual([10, 11, 12]);
    const kicksAfter = await store.query("t1", { action: "admin.kick", afterSeq: 10, limit: 2 });
    expect(kicksAfter).toMatchObject({ hasMore: true });
    expect(kicksAfter.records.map(r => r.seq)).toEqual([15, 20]);
    expect((await store.query("nobody", { limit: 10 })).records).toEqual([]);
  });

  describe("verify", () => {
    it("finds an intact chain intact, and an empty chain too", async () => {
      const store = open();
      const records = await appendMany(store, "t1", 5);
      expect(await verifyTenant(store, "t1")).toMatchObject({ tenantId: "t1", ok: true, checked: 5, lastSeq: 5, lastHash: records[4].hash, anchor: { seq: 0, hash: GENESIS_HASH } });
      expect(await verifyTenant(store, "empty")).toMatchObject({ ok: true, checked: 0, lastSeq: 0 });
    });

    it("reports exactly the altered record (hash_mismatch at its seq)", async () => {
      const store = open();
      const records = await appendMany(store, "t1", 5);
      await backend.tamper("t1", 3, r => ({ ...r, details: { ...r.details, via: "forged" } }));
      const report = await verifyTenant(await reopen(), "t1");
      expect(report).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, reason: "hash_mismatch", id: records[2].id, actual: records[2].hash } });
    });

    it("reports the link after a record whose hash was recomputed (prev_hash_mismatch at the next seq)", async () => {
      const store = open();
      const records = await appendMany(store, "t1", 5);
      await backend.tamper("t1", 2, r => {
        const forged = { ...r, outcome: "success" as const };
        return { ...forged, hash: recordHash(forged) };
      });
      const report = await verifyTenant(await reopen(), "t1");
      expect(report).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, reason: "prev_hash_mismatch", id: records[2].id, actual: records[1].hash } });
      expect(report.broken?.expected).not.toBe(records[1].hash);
    });

    it("reports a deleted record (sequence_gap where it was)", async () => {
      const store = open();
      const records = await appendMany(store, "t1", 5);
      await backend.remove("t1", 3);
      const report = await verifyTenant(await reopen(), "t1");
      expect(report).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, reason: "sequence_gap", id: records[3].id, expected: 3, actual: 4 } });
    });

    it("reports reordered records", async () => {
      const store = open();
      const records = await appendMany(store, "t1", 5);
      // Swap records 2 and 3, each keeping its own content and hash, but taking the other's place.
      await backend.tamper("t1", 2, () => ({ ...records[2], seq: 1000 }));
      await backend.tamper("t1", 3, () => ({ ...records[1], seq: 3, id: `${records[1].id}-x` }));
      await backend.tamper("t1", 1000, () => ({ ...records[2], seq: 2, id: `${records[2].id}-y` }));
      const report = await verifyTenant(await reopen(), "t1");
      expect(report.ok).toBe(false);
      expect(report.broken?.seq).toBe(2);
      expect(report.checked).toBe(1);
    });
  });

  describe("retention", () => {
    it("purges only records older than the retention period; the chain is anchored at the last purged record and still verifies", async () => {
      const store = open();
      const now = Date.now();
      const old = await appendMany(store, "t1", 3, now - (RETENTION + 400) * DAY_MS);
      const young = await appendMany(store, "t1", 2, now - (RETENTION - 1) * DAY_MS);
      await appendMany(store, "t2", 2, now);
      expect(await store.purge(RETENTION, now)).toEqual({ t1: 3 });
      expect((await all(store, "t1")).map(r => r.seq)).toEqual([4, 5]);
      expect(await store.chainInfo("t1")).toMatchObject({ anchor: { seq: 3, hash: old[2].hash } });
      const report = await verifyTenant(store, "t1");
      expect(report).toMatchObject({ ok: true, checked: 2, anchor: { seq: 3, hash: old[2].hash }, lastSeq: 5, lastHash: young[1].hash });
      const reopened = await reopen();
      expect((await verifyTenant(reopened, "t1")).ok).toBe(true);
      const { record } = await reopened.append("t1", entry(), now);
      expect(record.seq).toBe(6);
      expect((await verifyTenant(reopened, "t1")).ok).toBe(true);
      expect(await reopened.tenants()).toEqual(["t1", "t2"]);
      expect(await reopened.purge(RETENTION, now)).toEqual({});
    });

    it("keeps a chain whose every record was purged, and continues it", async () => {
      const store = open();
      const now = Date.now();
      const old = await appendMany(store, "t1", 2, now - (RETENTION + 10) * DAY_MS);
      expect(await store.purge(RETENTION, now)).toEqual({ t1: 2 });
      expect(await verifyTenant(store, "t1")).toMatchObject({ ok: true, checked: 0, anchor: { seq: 2, hash: old[1].hash } });
      const { record } = await store.append("t1", entry(), now);
      expect(record).toMatchObject({ seq: 3, prevHash: old[1].hash });
    });

    it("a shorter retention asked for than the store's deletes nothing younger (file: as asked; PostgreSQL: the database's floor)", async () => {
      const store = open();
      const now = Date.now();
      await appendMany(store, "t1", 2, now - 100 * DAY_MS);
      const removed = await store.purge(30, now);
      if (backend.name === "postgres") expect(removed).toEqual({});
      else expect(removed).toEqual({ t1: 2 });
    });
  });
});

describe("AuditStore: PostgreSQL refuses tampering at the database level", () => {
  let schema: Awaited<ReturnType<typeof uniqueSchema>>;
  let store: PostgresAuditStore;
  let pool: Pool;
  let client: Client;

  beforeEach(async () => {
    schema = await uniqueSchema("audit_guard");
    pool = new Pool({ connectionString: schema.url, max: 2 });
    store = new PostgresAuditStore(pool, { retentionDays: RETENTION });
    client = new Client({ connectionString: schema.url });
    await client.connect();
  });
  afterEach(async () => {
    await client.end();
    await store.close();
    await pool.end();
    await schema.drop();
  });

  const refusal = async (sql: string, params: unknown[] = []) => {
    const err = await client.query(sql, params).then(
      () => undefined,
      (e: Error & { code?: string }) => e
    );
    if (!err) throw new Error(`expected "${sql}" to fail`);
    return err;
  };

  it("rejects UPDATE, DELETE and TRUNCATE of recent records, and the chain stays intact", async () => {
    const now = Date.now();
    for (let i = 0; i < 3; i++) await store.append("t1", entry(), now);
    const update = await refusal("UPDATE audit_records SET outcome = 'success' WHERE seq = 2");
    expect(update.message).toMatch(/append-only/);
    expect(update.code).toBe("42501");
    expect((await refusal("UPDATE audit_records SET details = '{}'")).message).toMatch(/append-only/);
    expect((await refusal("DELETE FROM audit_records WHERE seq = 3")).message).toMatch(/younger than the retention period/);
    expect((await refusal("DELETE FROM audit_records")).message).toMatch(/append-only/);
    expect((await refusal("TRUNCATE audit_records")).message).toMatch(/append-only/);
    const count = await client.query("SELECT count(*)::int AS n FROM audit_records");
    expect(count.rows[0].n).toBe(3);
    expect(await verifyTenant(store, "t1")).toMatchObject({ ok: true, checked: 3 });
  });

  it("lets the heads only move forward and the retention only grow", async () => {
    await store.append("t1", entry(), Date.now());
    expect((await refusal("UPDATE audit_heads SET seq = 0")).message).toMatch(/only move forward/);
    expect((await refusal("UPDATE audit_heads SET hash = 'x'")).message).toMatch(/only move forward/);
    expect((await refusal("DELETE FROM audit_heads")).message).toMatch(/only move forward/);
    expect((await refusal("TRUNCATE audit_heads")).message).toMatch(/only move forward/);
    expect((await refusal("UPDATE audit_settings SET retention_days = 1")).message).toMatch(/can only grow/);
    expect((await refusal("DELETE FROM audit_settings")).message).toMatch(/can only grow/);
    await client.query("UPDATE audit_settings SET retention_days = $1", [RETENTION + 1]);
  });

  it("allows deleting a record only once it is older than the retention period", async () => {
    const now = Date.now();
    await store.append("t1", entry(), now - (RETENTION + 1) * DAY_MS);
    await store.append("t1", entry(), now);
    await client.query("DELETE FROM audit_records WHERE seq = 1");
    expect((await refusal("DELETE FROM audit_records WHERE seq = 2")).message).toMatch(/younger/);
  });

  it("notices records removed from the end of a chain (head_mismatch)", async () => {
    const now = Date.now();
    for (let i = 0; i < 3; i++) await store.append("t1", entry(), now);
    await client.query("SET session_replication_role = replica");
    await client.query("DELETE FROM audit_records WHERE seq = 3");
    expect(await verifyTenant(store, "t1")).toMatchObject({ ok: false, checked: 2, broken: { seq: 3, reason: "head_mismatch" } });
  });

  it("creates its schema by a migration, once", async () => {
    await store.append("t1", entry(), Date.now());
    const second = new PostgresAuditStore(pool, { retentionDays: RETENTION });
    await second.append("t1", entry(), Date.now());
    const migrations = await client.query("SELECT id FROM schema_migrations WHERE component = 'audit'");
    expect(migrations.rows).toEqual([{ id: "001_audit_records" }]);
  });
});

describe("AuditStore: the file backend", () => {
  let dir: string;
  let store: FileAuditStore | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "pf2-audit-file-"));
  });
  afterEach(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const fileOf = () => {
    const names = readdirSync(path.join(dir, "audit"));
    expect(names).toHaveLength(1);
    return path.join(dir, "audit", names[0]);
  };

  it("cuts off a torn last line (an unacknowledged write) on load and continues the chain", async () => {
    store = new FileAuditStore(dir);
    const first = await appendMany(store, "t1", 2);
    await store.close();
    appendFileSync(fileOf(), '{"id":"torn","seq":3,"at":"2023');
    const warnings: string[] = [];
    store = new FileAuditStore(dir, { onWarning: message => warnings.push(message) });
    expect((await all(store, "t1")).map(r => r.seq)).toEqual([1, 2]);
    expect(warnings).toHaveLength(1);
    const { record } = await store.append("t1", entry(), T0 + 10);
    expect(record).toMatchObject({ seq: 3, prevHash: first[1].hash });
    expect(readFileSync(fileOf(), "utf8")).not.toContain("torn");
    expect((await verifyTenant(store, "t1")).ok).toBe(true);
  });

  it("keeps a damaged line in the middle and verify reports it as unreadable", async () => {
    store = new FileAuditStore(dir);
    await appendMany(store, "t1", 3);
    await store.close();
    const lines = readFileSync(fileOf(), "utf8").split("\n");
    lines[1] = lines[1].slice(0, 40);
    writeFileSync(fileOf(), lines.join("\n"));
    store = new FileAuditStore(dir);
    expect(await verifyTenant(store, "t1")).toMatchObject({ ok: false, checked: 1, broken: { seq: 2, reason: "unreadable" } });
  });

  it("writes one canonical JSON line per record", async () => {
    store = new FileAuditStore(dir);
    const [record] = await appendMany(store, "t1", 1);
    expect(readFileSync(fileOf(), "utf8")).toBe(`${canonicalJson(record)}\n`);
  });
});
