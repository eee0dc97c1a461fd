import { randomUUID } from "node:crypto";
import type { Context, Service, ServiceSchema } from "moleculer";
import { AUDIT_OUTCOMES, type AuditOutcome, type VerifyReport } from "../lib/audit-chain";
import { verifyTenant } from "../lib/audit-ops";
import { SUPER_ADMIN_ROLE } from "../lib/auth";
import { OPERATOR, SYSTEM_TENANT, type AuditInput, type AuditReceipt } from "../lib/audit-trail";
import { canonicalJson } from "../lib/canonical-json";
import { loadConfig, type Config } from "../lib/config";
import type { CallerMeta } from "../lib/context";
import { authzFailed, invalidRequest } from "../lib/errors";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createAuditStore, DAY_MS, type AuditRecord, type AuditStore } from "../stores/audit";
import { asServiceSchema } from "../types/service-schema";

/**
 * The audit trail (INV-002, INV-003): append-only records in one hash chain per tenant
 * (lib/audit-chain.ts), kept in PostgreSQL (DATABASE_URL) or in append-only files under DATA_DIR.
 *
 * Services append through lib/audit-trail.ts (`audit()` for actions that must not happen
 * unaudited, the node's reporter for refusals). `append` is tenant-scoped like every action: a
 * call on behalf of a client can only append to that client's tenant; internal calls (no
 * `ctx.meta.auth`) name the chain, e.g. `_system`. Reading (`query`, `verify`, `tenants`) is for
 * super-admins (REST `GET /api/audit`, `GET /api/audit/verify`) and operators (REPL, CLI).
 * Records older than AUDIT_RETENTION_DAYS are purged once a day, nothing younger.
 */
interface AuditThis extends Service {
  store: AuditStore;
  purgeTimer?: NodeJS.Timeout;
  runPurge(): Promise<Record<string, number>>;
}

const identifier = { type: "string", min: 1, max: 128 } as const;
const NO_NUL = /^[^\u0000]*$/;
export const AUDIT_ACTION_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,127}$/;
const MAX_DETAILS_BYTES = 16 * 1024;
const QUERY_MAX_LIMIT = 1000;
const PURGE_EVERY_MS = DAY_MS;
const FIRST_PURGE_AFTER_MS = 60_000;


interface QueryParams {
  tenantId: string;
  from?: string;
  to?: string;
  action?: string;
  cursor?: string;
  limit?: number;
}

/** Reading the trail: operators inside the cluster (no principal) and super-admins. */
function requireAuditor(ctx: Context<unknown, CallerMeta>): void {
  const caller = ctx.meta.auth;
  if (caller && caller.role !== SUPER_ADMIN_ROLE) throw authzFailed("Only super-admins may read the audit trail");
}

function timeOf(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw invalidRequest(`${field} must be an ISO 8601 date`, { field });
  return ms;
}

/** JSON-normalised details (what the backends store and hash), within the size limit. */
function detailsOf(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (details === undefined) return {};
  let normalised: Record<string, unknown>;
  let size: number;
  try {
    const text = JSON.stringify(details);
    size = Buffer.byteLength(text);
    normalised = JSON.parse(text) as Record<string, unknown>;
    canonicalJson(normalised);
  } catch {
    throw invalidRequest("details must be JSON without lone surrogates", { field: "details" });
  }
  if (size > MAX_DETAILS_BYTES) throw invalidRequest(`details are larger than ${MAX_DETAILS_BYTES} bytes`, { field: "details", size });
  return normalised;
}

export function createAuditService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, AuditThis>({
    name: "audit",
    mixins: [TenantScopeMixin()],

    actions: {
      /** Appends a record to the tenant's chain; resolves once it is durable: `{id, seq, at, hash, duplicate}`. */
      append: {
        visibility: "public",
        params: {
          id: { type: "string", min: 8, max: 64, pattern: /^[A-Za-z0-9_-]+$/, optional: true },
          tenantId: identifier,
          actor: {
            type: "object",
            strict: true,
            props: {
              userId: { type: "string", min: 1, max: 128, pattern: NO_NUL },
              role: { type: "string", min: 1, max: 64, pattern: NO_NUL },
              nodeID: { type: "string", min: 1, max: 256, pattern: NO_NUL, optional: true }
            }
          },
          action: { type: "string", pattern: AUDIT_ACTION_PATTERN },
          target: { type: "string", min: 1, max: 512, pattern: NO_NUL },
          outcome: { type: "enum", values: [...AUDIT_OUTCOMES] },
          justification: { type: "string", min: 1, max: 2000, pattern: NO_NUL, optional: true },
          details: { type: "object", optional: true }
        },
        async handler(this: AuditThis, ctx: Context<AuditInput, CallerMeta>): Promise<AuditReceipt> {
          const { tenantId, actor, action, target, outcome, justification } = ctx.params;
          const { record, duplicate } = await this.store.append(
            tenantId,
            {
              id: ctx.params.id ?? randomUUID(),
              actor: { userId: actor.userId, role: actor.role, ...(actor.nodeID !== undefined ? { nodeID: actor.nodeID } : {}) },
              action,
              target,
              outcome,
              ...(justification !== undefined ? { justification } : {}),
              details: detailsOf(ctx.params.details)
            },
            Date.now()
          );
          return { id: record.id, seq: record.seq, at: record.at, hash: record.hash, duplicate };
        }
      },

      /** `GET /api/audit?tenantId=&from=&to=&action=&cursor=&limit=`: records oldest first, `nextCursor` while more follow. */
      query: {
        params: {
          tenantId: identifier,
          from: { type: "string", max: 64, optional: true },
          to: { type: "string", max: 64, optional: true },
          action: { type: "string", max: 128, optional: true },
          cursor: { type: "string", pattern: /^\d{1,15}$/, optional: true },
          limit: { type: "number", integer: true, min: 1, max: QUERY_MAX_LIMIT, convert: true, optional: true }
        },
        async handler(this: AuditThis, ctx: Context<QueryParams, CallerMeta>): Promise<{ tenantId: string; records: AuditRecord[]; nextCursor?: string }> {
          requireAuditor(ctx);
          const { tenantId, action, cursor } = ctx.params;
          const from = timeOf(ctx.params.from, "from");
          const to = timeOf(ctx.params.to, "to");
          const page = await this.store.query(tenantId, {
            ...(from !== undefined ? { from } : {}),
            ...(to !== undefined ? { to } : {}),
            ...(action ? { action } : {}),
            ...(cursor !== undefined ? { afterSeq: Number(cursor) } : {}),
            limit: ctx.params.limit ?? 100
          });
          const last = page.records[page.records.length - 1];
          return { tenantId, records: page.records, ...(page.hasMore && last ? { nextCursor: String(last.seq) } : {}) };
        }
      },

      /** `GET /api/audit/verify?tenantId=`: recomputes the tenant's chain; `{ok, checked, broken?}` (the first broken link). */
      verify: {
        params: { tenantId: identifier },
        async handler(this: AuditThis, ctx: Context<{ tenantId: string }, CallerMeta>): Promise<VerifyReport> {
          requireAuditor(ctx);
          return verifyTenant(this.store, ctx.params.tenantId);
        }
      },

      /** Tenants that have an audit chain (operators). */
      tenants: {
        visibility: "public",
        async handler(this: AuditThis, ctx: Context<unknown, CallerMeta>) {
          requireAuditor(ctx);
          return { tenants: await this.store.tenants() };
        }
      },

      /** Removes records older than AUDIT_RETENTION_DAYS now (it also runs daily); records what it removed. */
      purge: {
        visibility: "public",
        async handler(this: AuditThis, ctx: Context<unknown, CallerMeta>) {
          if (ctx.meta.auth) throw authzFailed("The retention purge is an operator action");
          return { retentionDays: config.auditRetentionDays, removed: await this.runPurge() };
        }
      },

      /** Backend and whether it answers (health). */
      stats: {
        visibility: "public",
        async handler(this: AuditThis) {
          try {
            await this.store.chainInfo(SYSTEM_TENANT);
            return { status: "healthy", backend: this.store.backend, retentionDays: config.auditRetentionDays };
          } catch (err) {
            return { status: "unhealthy", backend: this.store.backend, error: (err as Error).message };
          }
        }
      }
    },

    methods: {
      async runPurge(this: AuditThis) {
        const removed = await this.store.purge(config.auditRetentionDays, Date.now());
        for (const [tenantId, count] of Object.entries(removed)) {
          const { anchor } = await this.store.chainInfo(tenantId);
          await this.store.append(
            tenantId,
            {
              id: randomUUID(),
              actor: { ...OPERATOR, userId: "retention", nodeID: this.broker.nodeID },
              action: "audit.retention_purge",
              target: `tenant:${tenantId}`,
              outcome: "success",
              details: { removed: count, retentionDays: config.auditRetentionDays, anchorSeq: anchor.seq, anchorHash: anchor.hash }
            },
            Date.now()
          );
        }
        if (Object.keys(removed).length > 0) this.logger.info("Audit retention purge", { retentionDays: config.auditRetentionDays, removed });
        return removed;
      }
    },

    created(this: AuditThis) {
      this.store = createAuditStore(config, (message, details) => this.logger.warn(message, details));
    },

    started(this: AuditThis) {
      const purge = () => {
        this.runPurge().catch((err: Error) => this.logger.error("Audit retention purge failed", { error: err.message }));
      };
      this.purgeTimer = setTimeout(() => {
        purge();
        this.purgeTimer = setInterval(purge, PURGE_EVERY_MS);
        this.purgeTimer.unref();
      }, FIRST_PURGE_AFTER_MS);
      this.purgeTimer.unref();
    },

    async stopped(this: AuditThis) {
      if (this.purgeTimer) clearTimeout(this.purgeTimer);
      await this.store.close();
    }
  });
}

export default () => createAuditService(loadConfig());
