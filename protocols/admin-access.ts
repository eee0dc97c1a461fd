import type { IncomingMessage } from "node:http";
import type { LoggerInstance, ServiceBroker } from "moleculer";
import { SUPER_ADMIN_ROLE, isIdentifier, type Principal } from "../lib/auth";
import { auditFirst } from "../lib/audit-trail";
import type { AdminAccess } from "../lib/context";
import { authzFailed, invalidRequest } from "../lib/errors";
import { auditReporterOf } from "../lib/audit-trail";
import { reportTenantViolation } from "../mixins/tenant-scope.mixin";
import { bindTenant } from "./rest-auth";

/**
 * REST authorization after authentication (protocols/rest-auth.ts), INV-003 "audited super-admin
 * access":
 *
 * - Everyone but a super-admin acts in the token's tenant (`bindTenant`: another `tenantId` is
 *   TENANT_VIOLATION).
 * - A super-admin (`role: "super_admin"`) names the tenant to read with `tenantId` (query or path)
 *   or `X-Tenant-ID`. Its own tenant: as anyone. Another tenant: only GET routes, only with a
 *   non-empty `X-Admin-Justification` header, and only once the `admin.cross_tenant_access` record
 *   (with the justification) is durable in that tenant's audit chain; then the call carries
 *   `ctx.meta.adminAccess`, which the tenant-scope mixin honours. Otherwise 403 AUTHZ_FAILED, and
 *   the refusal is audited too. If the audit trail cannot take the record, nothing is read
 *   (INTERNAL_ERROR, retryable).
 * - The audit API (`audit.query`, `audit.verify`) is for super-admins only (403 AUTHZ_FAILED).
 *
 * Realtime (Socket.IO) never goes through here: every socket stays in its token's tenant.
 */

export const ADMIN_JUSTIFICATION_HEADER = "x-admin-justification";
export const MAX_JUSTIFICATION_LENGTH = 1000;
/** REST actions only super-admins may call. */
export const SUPER_ADMIN_ONLY_ACTIONS: ReadonlySet<string> = new Set(["audit.query", "audit.verify"]);

export interface RestRequest {
  principal: Principal;
  method: string;
  /** Request path without the query string. */
  path: string;
  /** The route pattern, e.g. `GET /api/presence/:userId`. */
  route: string;
  /** The action the alias calls. */
  action?: string;
  headers: IncomingMessage["headers"];
  /** The action's params, bound in place to the tenant acted upon. */
  params: Record<string, unknown>;
}

export interface RestAuthorizer {
  broker: ServiceBroker;
  logger: LoggerInstance;
}

/** Binds the request to its tenant; resolves with the admin-access grant of a justified cross-tenant read. */
export async function authorizeRestRequest(host: RestAuthorizer, request: RestRequest): Promise<AdminAccess | undefined> {
  const { principal, params, action } = request;
  if (action !== undefined && SUPER_ADMIN_ONLY_ACTIONS.has(action) && principal.role !== SUPER_ADMIN_ROLE) {
    throw authzFailed("Only super-admins may read the audit trail", { action });
  }
  if (principal.role !== SUPER_ADMIN_ROLE) {
    bindTenant(principal, params, (p, requested) =>
      reportTenantViolation(host.broker, host.logger, { tenantId: p.tenantId, userId: p.userId, role: p.role, requestedTenantId: requested, via: "rest", action: request.path })
    );
    return undefined;
  }

  const header = request.headers["x-tenant-id"];
  const claimed = params.tenantId;
  if (claimed !== undefined && !isIdentifier(claimed)) throw invalidRequest("tenantId must be a tenant id", { param: "tenantId" });
  if (claimed !== undefined && header !== claimed && header !== principal.tenantId) {
    throw invalidRequest("X-Tenant-ID and tenantId name different tenants", { header: "X-Tenant-ID", param: "tenantId" });
  }
  const target = (claimed ?? header) as string;
  if (!isIdentifier(target)) throw invalidRequest("X-Tenant-ID must be a tenant id", { header: "X-Tenant-ID" });
  params.tenantId = target;
  if (target === principal.tenantId) return undefined;

  const raw = request.headers[ADMIN_JUSTIFICATION_HEADER];
  const justification = (Array.isArray(raw) ? raw.join(", ") : (raw ?? "")).trim();
  const actor = { userId: principal.userId, role: principal.role };
  const details = { actorTenantId: principal.tenantId, route: request.route, path: request.path.slice(0, 512), ...(action ? { action } : {}) };
  const deny = (reason: string, message: string) => {
    auditReporterOf(host.broker).record(
      { tenantId: target, actor, action: "admin.cross_tenant_access", target: `tenant:${target}`, outcome: "denied", details: { ...details, reason } },
      { key: `xta|${principal.tenantId}|${principal.userId}|${target}|${request.route}|${reason}` }
    );
    host.logger.warn("Super-admin cross-tenant access refused", { tenantId: principal.tenantId, userId: principal.userId, targetTenantId: target, route: request.route, reason });
    return authzFailed(message, { reason, ...(reason === "justification_required" ? { header: "X-Admin-Justification" } : {}) });
  };
  if (request.method !== "GET") throw deny("read_only", "Super-admin access to another tenant is read-only");
  if (justification.length === 0) throw deny("justification_required", "Reading another tenant's data needs an X-Admin-Justification header");
  if (justification.length > MAX_JUSTIFICATION_LENGTH) {
    throw invalidRequest(`X-Admin-Justification is longer than ${MAX_JUSTIFICATION_LENGTH} characters`, { header: "X-Admin-Justification", limit: MAX_JUSTIFICATION_LENGTH });
  }

  // Durable before anything is read; if the trail cannot take it, nothing is (INTERNAL_ERROR, retryable).
  const { id: auditId } = await auditFirst(host.broker, { tenantId: target, actor, action: "admin.cross_tenant_access", target: `tenant:${target}`, outcome: "success", justification, details });
  host.logger.info("Super-admin cross-tenant read", { tenantId: principal.tenantId, userId: principal.userId, targetTenantId: target, route: request.route, auditId });
  return { tenantId: target, userId: principal.userId, justification, auditId };
}
