import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FileAuditStore } from "../../stores/audit/audit-store.file";
import { PostgresAuditStore } from "../../stores/audit/audit-store.postgres";
import { acquirePool, releasePool } from "../../stores/postgres-connection";
import { uniqueSchema } from "../helpers/postgres";

/** The operator CLI, run as operators run it: the compiled script (`npm run audit-trail -- …`). */
const CLI = path.resolve(__dirname, "../../dist/scripts/audit-trail.js");

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(CLI)) throw new Error("dist/ is missing: run `npm run build` before this test");
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const entry = (i: number) => ({ id: `rec-${i}-${Date.now()}`, actor: { userId: "u", role: "user" }, action: "test.step", target: `step:${i}`, outcome: "success" as const, details: { i } });

describe("audit-trail CLI", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "pf2-cli-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("verifies chains of the file backend: exit 0 when intact, 2 and the broken link when not", async () => {
    const store = new FileAuditStore(dir);
    for (let i = 1; i <= 4; i++) await store.append("t1", entry(i), Date.now());
    await store.append("t2", entry(9), Date.now());
    await store.close();

    const ok = await run(["verify", "--tenant", "t1"], { DATA_DIR: dir });
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(/^t1: OK, 4 records, head seq 4 [0-9a-f]{64}$/m);

    const tenants = await run(["tenants", "--json"], { DATA_DIR: dir });
    expect(JSON.parse(tenants.stdout)).toEqual({ tenants: ["t1", "t2"] });

    const auditDir = path.join(dir, "audit");
    const file = readdirSync(auditDir)
      .map(n => path.join(auditDir, n))
      .find(f => readFileSync(f, "utf8").includes('"tenantId":"t1"')) as string;
    writeFileSync(file, readFileSync(file, "utf8").replace('"target":"step:2"', '"target":"step:X"'));

    const broken = await run(["verify", "--all"], { DATA_DIR: dir });
    expect(broken.code).toBe(2);
    expect(broken.stdout).toMatch(/^t1: BROKEN at seq 2: hash_mismatch/m);
    expect(broken.stdout).toMatch(/^t2: OK, 1 records/m);
    const json = await run(["verify", "--tenant", "t1", "--json"], { DATA_DIR: dir });
    expect(JSON.parse(json.stdout)).toMatchObject({ tenantId: "t1", ok: false, checked: 1, broken: { seq: 2, reason: "hash_mismatch" } });

    const query = await run(["query", "--tenant", "t2"], { DATA_DIR: dir });
    expect(query.code).toBe(0);
    expect(JSON.parse(query.stdout.trim())).toMatchObject({ seq: 1, tenantId: "t2", action: "test.step" });

    expect((await run([], { DATA_DIR: dir })).code).toBe(1);
  });

  it("verifies chains in PostgreSQL (DATABASE_URL)", async () => {
    const schema = await uniqueSchema("audit_cli");
    try {
      const store = new PostgresAuditStore(acquirePool(schema.url), { retentionDays: 2555, onClose: () => releasePool(schema.url) });
      for (let i = 1; i <= 3; i++) await store.append("acme", entry(i), Date.now());
      await store.close();
      const ok = await run(["verify", "--tenant", "acme"], { DATABASE_URL: schema.url });
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/^acme: OK, 3 records/m);
    } finally {
      await schema.drop();
    }
  });
});
