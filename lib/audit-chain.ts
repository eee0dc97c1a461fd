import { canonicalSha256 } from "./canonical-json";

/**
 * The audit trail's records and their per-tenant hash chain.
 *
 * Every record carries its tenant's sequence number and the hash of the record before it
 * (`prevHash`; the first record of a chain has GENESIS_HASH). Its own `hash` is the SHA-256 of the
 * RFC 8785 canonical JSON of every other field (lib/canonical-json.ts), so anyone can recompute it
 * in any language, and an edited, deleted, inserted or reordered record breaks the chain at a
 * definite link.
 */

/** `prevHash` of a chain's first record. */
export const GENESIS_HASH = "0".repeat(64);

export type AuditOutcome = "requested" | "success" | "denied" | "failure";
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ["requested", "success", "denied", "failure"];

export interface AuditActor {
  userId: string;
  role: string;
  /** The node that observed or performed the action. */
  nodeID?: string;
}

export interface AuditRecord {
  /** Unique id (a UUID unless the writer chose one); appending the same id twice stores it once. */
  id: string;
  /** Position in the tenant's chain: 1, 2, 3, ... */
  seq: number;
  /** When the record was appended (ISO 8601, ms); never earlier than the previous record's. */
  at: string;
  tenantId: string;
  actor: AuditActor;
  action: string;
  target: string;
  outcome: AuditOutcome;
  justification?: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export type UnsealedRecord = Omit<AuditRecord, "hash">;

/** Where a chain starts: after a retention purge, the last purged record's seq and hash. */
export interface ChainAnchor {
  seq: number;
  hash: string;
}

export const GENESIS_ANCHOR: ChainAnchor = { seq: 0, hash: GENESIS_HASH };

/** The hash of a record: SHA-256 over the canonical JSON of every field but `hash`. */
export function recordHash(record: UnsealedRecord | AuditRecord): string {
  const { id, seq, at, tenantId, actor, action, target, outcome, justification, details, prevHash } = record;
  return canonicalSha256({ id, seq, at, tenantId, actor, action, target, outcome, justification, details, prevHash });
}

export function seal(record: UnsealedRecord): AuditRecord {
  return { ...record, hash: recordHash(record) };
}

/** What is appended: a record before the store gives it `seq`, `at`, `prevHash` and `hash`. */
export type AuditEntry = Pick<AuditRecord, "id" | "actor" | "action" | "target" | "outcome" | "justification" | "details">;

/** The record that follows a chain's head: the next seq, never earlier than the head, linked to its hash. */
export function sealNext(tenantId: string, entry: AuditEntry, head: { seq: number; hash: string; atMs: number }, now: number): AuditRecord {
  return seal({
    id: entry.id,
    seq: head.seq + 1,
    at: new Date(Math.max(now, head.atMs)).toISOString(),
    tenantId,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    outcome: entry.outcome,
    ...(entry.justification !== undefined ? { justification: entry.justification } : {}),
    details: entry.details,
    prevHash: head.hash
  });
}

/** One entry of a chain as a backend reads it back: a record, or something that is not one. */
export type ScannedEntry = { record: AuditRecord } | { unreadable: string };

export type ChainBreakReason =
  /** The stored entry is not a record (a file line that does not parse). */
  | "unreadable"
  /** The record's content does not hash to its `hash`: this record was altered. */
  | "hash_mismatch"
  /** The record does not point at the record before it: something before it was altered, removed or moved. */
  | "prev_hash_mismatch"
  /** The record is not the next in sequence: records were removed, inserted or reordered. */
  | "sequence_gap"
  /** A record of another tenant sits in this tenant's chain. */
  | "tenant_mismatch"
  /** The chain's last record is not the head the backend recorded: records were removed from its end. */
  | "head_mismatch";

export interface ChainBreak {
  /** The position in the chain where the break is (the seq the record there should have). */
  seq: number;
  reason: ChainBreakReason;
  /** The id of the record found at that position, when there is one. */
  id?: string;
  expected?: string | number;
  actual?: string | number;
}

export interface VerifyReport {
  tenantId: string;
  ok: boolean;
  /** Records checked (up to the first break). */
  checked: number;
  /** Where the chain starts: seq 0 and GENESIS_HASH unless a retention purge removed older records. */
  anchor: ChainAnchor;
  /** The last record checked (the chain's head when ok). */
  lastSeq: number;
  lastHash: string;
  /** The first broken link, if any. */
  broken?: ChainBreak;
}

/**
 * Recomputes a chain from its anchor and reports the first broken link. `head` is the head the
 * backend keeps apart from the records (PostgreSQL), so records removed from the end are noticed too.
 */
export async function verifyChain(
  tenantId: string,
  entries: AsyncIterable<ScannedEntry>,
  anchor: ChainAnchor = GENESIS_ANCHOR,
  head?: ChainAnchor
): Promise<VerifyReport> {
  let expectedSeq = anchor.seq + 1;
  let prevHash = anchor.hash;
  let checked = 0;
  const report = (broken?: ChainBreak): VerifyReport => ({
    tenantId,
    ok: broken === undefined,
    checked,
    anchor,
    lastSeq: expectedSeq - 1,
    lastHash: prevHash,
    ...(broken ? { broken } : {})
  });
  for await (const entry of entries) {
    if (!("record" in entry)) return report({ seq: expectedSeq, reason: "unreadable", actual: entry.unreadable.slice(0, 200) });
    const record = entry.record;
    if (record.tenantId !== tenantId) return report({ seq: expectedSeq, reason: "tenant_mismatch", id: record.id, expected: tenantId, actual: record.tenantId });
    if (record.seq !== expectedSeq) return report({ seq: expectedSeq, reason: "sequence_gap", id: record.id, expected: expectedSeq, actual: record.seq });
    if (record.prevHash !== prevHash) return report({ seq: expectedSeq, reason: "prev_hash_mismatch", id: record.id, expected: prevHash, actual: record.prevHash });
    const computed = safeHash(record);
    if (computed !== record.hash) return report({ seq: expectedSeq, reason: "hash_mismatch", id: record.id, expected: computed, actual: record.hash });
    checked += 1;
    expectedSeq += 1;
    prevHash = record.hash;
  }
  if (head && (head.seq !== expectedSeq - 1 || head.hash !== prevHash)) {
    return report({ seq: head.seq, reason: "head_mismatch", expected: `${head.seq}:${head.hash}`, actual: `${expectedSeq - 1}:${prevHash}` });
  }
  return report();
}

/** A record edited into something canonical JSON cannot encode (NaN, a lone surrogate) does not verify. */
function safeHash(record: AuditRecord): string {
  try {
    return recordHash(record);
  } catch {
    return "unhashable";
  }
}
