import type { Config } from "../../lib/config";
import { acquirePool, releasePool } from "../postgres-connection";
import { MemoryReconciliationStore } from "./reconciliation-store.memory";
import { PostgresReconciliationStore } from "./reconciliation-store.postgres";
import type { ReconciliationStore } from "./reconciliation-store";

export * from "./reconciliation-store";

export type ReconciliationStoreConfig = Pick<Config, "databaseUrl" | "reconciliationHistorySize" | "reconciliationOperationRetentionMs">;

/**
 * The one resolver: PostgreSQL when DATABASE_URL is set (durable, shared by every node), the
 * in-process store otherwise (the embedded default: one node, state lost on restart).
 */
export function createReconciliationStore(config: ReconciliationStoreConfig): ReconciliationStore {
  const limits = { historySize: config.reconciliationHistorySize, operationRetentionMs: config.reconciliationOperationRetentionMs };
  if (!config.databaseUrl) return new MemoryReconciliationStore(limits);
  const url = config.databaseUrl;
  return new PostgresReconciliationStore(acquirePool(url), limits, () => releasePool(url));
}
