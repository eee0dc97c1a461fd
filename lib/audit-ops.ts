import { verifyChain, type VerifyReport } from "./audit-chain";
import type { AuditStore } from "../stores/audit";

/**
 * Operator commands over the audit trail, shared by the `audit` service (REST, REPL) and the CLI
 * (scripts/audit-trail.ts), which opens the store directly.
 */

/** Recomputes one tenant's chain from its anchor and reports the first broken link. */
export async function verifyTenant(store: AuditStore, tenantId: string): Promise<VerifyReport> {
  const { anchor, head } = await store.chainInfo(tenantId);
  return verifyChain(tenantId, store.scan(tenantId), anchor, head);
}

/** One line per report, for terminals. */
export function describeReport(report: VerifyReport): string {
  const start = report.anchor.seq > 0 ? ` (anchored after purged seq ${report.anchor.seq})` : "";
  if (report.ok) return `${report.tenantId}: OK, ${report.checked} records${start}, head seq ${report.lastSeq} ${report.lastHash}`;
  const b = report.broken as NonNullable<VerifyReport["broken"]>;
  const found = b.actual !== undefined ? `, found ${b.actual}` : "";
  const wanted = b.expected !== undefined ? ` expected ${b.expected}` : "";
  return `${report.tenantId}: BROKEN at seq ${b.seq}: ${b.reason}${b.id ? ` (record ${b.id})` : ""}${wanted}${found}; ${report.checked} records verified before it${start}`;
}
