import type { AuditEntry, AuditRecord, ChainAnchor, ScannedEntry } from "../../lib/audit-chain";

export type { AuditEntry, AuditRecord, ChainAnchor, ScannedEntry } from "../../lib/audit-chain";

export interface AuditQuery {
  /** Records with `at` >= this (epoch ms). */
  from?: number;
  /** Records with `at` < this (epoch ms). */
  to?: number;
  /** Records with exactly this action. */
  action?: string;
  /** Records with `seq` > this (the paging cursor). */
  afterSeq?: number;
  limit: number;
}

export interface AuditPage {
  /** Matching records in chain order (ascending seq). */
  records: AuditRecord[];
  /** More matching records may follow the last one. */
  hasMore: boolean;
}

/**
 * The append-only, hash-chained audit trail, one chain per tenant (lib/audit-chain.ts).
 *
 * Contract, for every backend:
 * - `append` gives the record the next `seq` of its tenant's chain and the previous record's hash
 *   as `prevHash`, and resolves only once the record is durable. Appends to one chain are
 *   serialised (PostgreSQL: across every node; the file backend: within its one process), so the
 *   chain never forks. `at` is `now`, or the previous record's `at` if that is later, so a chain's
 *   times never go backwards (a retention purge removes a prefix).
 * - An entry whose `id` is already stored is not stored again: `append` answers the stored record
 *   with `duplicate: true` (writers retry with the same id; the file backend remembers the last
 *   10 000 ids per chain).
 * - Nothing updates or deletes a record, except `purge`, which removes only records older than the
 *   retention period and records where the chain now starts (its anchor).
 * - `scan` returns every stored entry of the chain as stored, without interpretation, so
 *   lib/audit-chain.ts `verifyChain` sees tampering instead of a repaired view.
 */
export interface AuditStore {
  readonly backend: "file" | "postgres";

  append(tenantId: string, entry: AuditEntry, now: number): Promise<{ record: AuditRecord; duplicate: boolean }>;

  /** Matching records after a cursor, oldest first. */
  query(tenantId: string, query: AuditQuery): Promise<AuditPage>;

  /** Every stored entry of the chain in stored order (by `seq` where the backend orders by it). */
  scan(tenantId: string): AsyncIterable<ScannedEntry>;

  /**
   * Where the chain starts (`anchor`: seq 0 / genesis, or the last purged record) and, when the
   * backend keeps it apart from the records, the head it recorded on the last append.
   */
  chainInfo(tenantId: string): Promise<{ anchor: ChainAnchor; head?: ChainAnchor }>;

  /** Tenants that have a chain, sorted. */
  tenants(): Promise<string[]>;

  /**
   * Removes records older than `retentionDays` (by `at`) and moves each chain's anchor to the last
   * removed record. Returns the number removed per tenant (tenants with none are left out).
   */
  purge(retentionDays: number, now: number): Promise<Record<string, number>>;

  close(): Promise<void>;
}

/** Ids the file backend remembers per chain to answer retried appends as duplicates. */
export const RECENT_IDS_PER_CHAIN = 10_000;

export const DAY_MS = 24 * 60 * 60 * 1000;
