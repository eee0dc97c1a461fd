import type { Config } from "../../lib/config";
import { acquirePool, releasePool } from "../postgres-connection";
import type { AuditStore } from "./audit-store";
import { FileAuditStore } from "./audit-store.file";
import { PostgresAuditStore } from "./audit-store.postgres";

export * from "./audit-store";

export type AuditStoreConfig = Pick<Config, "databaseUrl" | "dataDir" | "auditRetentionDays">;

/**
 * The one resolver: PostgreSQL when DATABASE_URL is set, otherwise the append-only files under
 * DATA_DIR/audit (one audit node only).
 */
export function createAuditStore(config: AuditStoreConfig, onWarning?: (message: string, details: Record<string, unknown>) => void): AuditStore {
  if (!config.databaseUrl) return new FileAuditStore(config.dataDir, { onWarning });
  const url = config.databaseUrl;
  return new PostgresAuditStore(acquirePool(url), { retentionDays: config.auditRetentionDays, onWarning, onClose: () => releasePool(url) });
}
