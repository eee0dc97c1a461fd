import { describeReport, verifyTenant } from "../lib/audit-ops";
import { loadConfig } from "../lib/config";
import { createAuditStore } from "../stores/audit";

/**
 * Operator CLI for the audit trail. Opens the store the environment names (DATABASE_URL, else the
 * files under DATA_DIR/audit) directly, read-only, so it works without a running cluster:
 *
 *   npm run audit-trail -- verify --tenant <id>     recompute one chain; exit 0 = intact, 2 = broken
 *   npm run audit-trail -- verify --all             every chain
 *   npm run audit-trail -- tenants                  tenants that have a chain
 *   npm run audit-trail -- query --tenant <id> [--from ISO] [--to ISO] [--action A] [--cursor C] [--limit N]
 *
 * `--json` prints machine-readable JSON (one object per line) instead of text.
 */

const USAGE = `usage: audit-trail verify (--tenant <id> | --all) [--json]
       audit-trail tenants [--json]
       audit-trail query --tenant <id> [--from ISO] [--to ISO] [--action A] [--cursor C] [--limit N]`;

function parseArgs(argv: string[]): { command?: string; flags: Record<string, string | true> } {
  const flags: Record<string, string | true> = {};
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith("--")) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        flags[arg.slice(2)] = next;
        i++;
      } else flags[arg.slice(2)] = true;
    } else if (command === undefined) command = arg;
  }
  return { command, flags };
}

export async function main(argv: string[], out: (line: string) => void = line => process.stdout.write(`${line}\n`)): Promise<number> {
  const { command, flags } = parseArgs(argv);
  const json = flags.json === true;
  const tenant = typeof flags.tenant === "string" ? flags.tenant : undefined;
  if (!command || !["verify", "tenants", "query"].includes(command)) {
    out(USAGE);
    return 1;
  }
  const store = createAuditStore(loadConfig(process.env));
  try {
    if (command === "tenants") {
      const tenants = await store.tenants();
      if (json) out(JSON.stringify({ tenants }));
      else tenants.forEach(t => out(t));
      return 0;
    }
    if (command === "verify") {
      const tenants = flags.all === true ? await store.tenants() : tenant ? [tenant] : undefined;
      if (!tenants) {
        out(USAGE);
        return 1;
      }
      let broken = 0;
      for (const tenantId of tenants) {
        const report = await verifyTenant(store, tenantId);
        if (!report.ok) broken++;
        out(json ? JSON.stringify(report) : describeReport(report));
      }
      return broken > 0 ? 2 : 0;
    }
    if (!tenant) {
      out(USAGE);
      return 1;
    }
    const time = (value: string | true | undefined, name: string) => {
      if (typeof value !== "string") return undefined;
      const ms = Date.parse(value);
      if (!Number.isFinite(ms)) throw new Error(`--${name} must be an ISO 8601 date`);
      return ms;
    };
    const from = time(flags.from, "from");
    const to = time(flags.to, "to");
    const page = await store.query(tenant, {
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      ...(typeof flags.action === "string" ? { action: flags.action } : {}),
      ...(typeof flags.cursor === "string" ? { afterSeq: Number(flags.cursor) } : {}),
      limit: typeof flags.limit === "string" ? Math.max(1, Math.min(1000, Number(flags.limit) || 100)) : 100
    });
    for (const record of page.records) out(JSON.stringify(record));
    const last = page.records[page.records.length - 1];
    if (page.hasMore && last) out(json ? JSON.stringify({ nextCursor: String(last.seq) }) : `-- more: --cursor ${last.seq}`);
    return 0;
  } finally {
    await store.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    code => process.exit(code),
    (err: Error) => {
      process.stderr.write(`audit-trail: ${err.message}\n`);
      process.exit(1);
    }
  );
}
