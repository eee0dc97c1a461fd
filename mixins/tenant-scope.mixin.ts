import type { Context, LoggerInstance, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/context";
import { tenantViolation } from "../lib/errors";
import { SUPER_ADMIN_ROLE } from "../lib/auth";
import { reportTenantViolationAudit } from "../lib/security-audit";

/** Emitted on every refused cross-tenant attempt, for the audit trail and security monitoring. */
export const TENANT_VIOLATION_EVENT = "security.tenantViolation";

/** One refused cross-tenant attempt, as logged and emitted for the audit trail. */
export interface TenantViolation {
  tenantId: string;
  userId: string;
  /** The caller's role, when known. */
  role?: string;
  requestedTenantId: string;
  /** The transport that refused it (`rest`, `socket.io`); absent for an action call. */
  via?: string;
  /** The action, client event, namespace or path that was addressed. */
  action?: string;
  connectionId?: string;
}

/**
 * Logs a refused cross-tenant attempt, emits it as TENANT_VIOLATION_EVENT, with one shape
 * everywhere, and records it in the caller's audit chain (`security.tenant_violation`, through the
 * node's audit reporter: aggregated per user, transport and action, spooled if the audit service
 * is unreachable).
 */
export function reportTenantViolation(broker: ServiceBroker, logger: LoggerInstance, violation: TenantViolation): void {
  // The event keeps its documented shape; the role goes to the audit record only.
  const { role: _role, ...shape } = violation;
  logger.warn("Tenant violation refused", shape);
  broker.emit(TENANT_VIOLATION_EVENT, { ...shape, nodeID: broker.nodeID, at: new Date().toISOString() });
  reportTenantViolationAudit(broker, violation);
}

/**
 * Batch actions that gateways call without a principal carry a tenant per item: a caller that does
 * hold a principal may name only its own tenant (TENANT_VIOLATION, reported, otherwise).
 */
export function assertOwnTenantItems(broker: ServiceBroker, logger: LoggerInstance, caller: CallerMeta["auth"], items: Iterable<{ tenantId: string }>, action: string): void {
  if (!caller) return;
  for (const item of items) {
    if (item.tenantId === caller.tenantId) continue;
    reportTenantViolation(broker, logger, { tenantId: caller.tenantId, userId: caller.userId, requestedTenantId: item.tenantId, action });
    throw tenantViolation({ action });
  }
}

/** An action is tenant-scoped when its params schema declares `tenantId`. */
export function isTenantScoped(action: { params?: unknown } | null | undefined): boolean {
  return typeof action?.params === "object" && action.params !== null && "tenantId" in action.params;
}

/** `service.metadata[TENANT_GUARD_METADATA]` is true on every service built with TenantScopeMixin. */
export const TENANT_GUARD_METADATA = "tenantGuard";

/**
 * The tenant check itself, a `before` hook on every action (`"*"`). For a call made on behalf of a
 * client (`ctx.meta.auth` set by an adapter from a verified token) to a tenant-scoped action,
 * `params.tenantId` must be the token's tenant; anything else is refused with TENANT_VIOLATION and
 * reported (and audited). Internal calls (no `auth`) name the tenant themselves. The one exception
 * is a super-admin's justified REST read, which the gateway audits first and marks in
 * `ctx.meta.adminAccess` (protocols/admin-access.ts).
 *
 * Moleculer validates params before hooks run, so a cross-tenant call whose params are also
 * malformed is refused by validation (INVALID_REQUEST) before it gets here.
 */
export function checkTenant(this: Service, ctx: Context<Record<string, unknown>, CallerMeta>): void {
  if (!isTenantScoped(ctx.action)) return;
  const principal = ctx.meta.auth;
  if (!principal) return;
  const requested = ctx.params.tenantId;
  if (requested === principal.tenantId) return;
  // A super-admin's justified REST read of another tenant, already audited by the gateway.
  const access = ctx.meta.adminAccess;
  if (access && principal.role === SUPER_ADMIN_ROLE && access.userId === principal.userId && access.tenantId === requested) return;
  reportTenantViolation(this.broker, this.logger, {
    tenantId: principal.tenantId,
    userId: principal.userId,
    role: principal.role,
    requestedTenantId: String(requested),
    action: ctx.action?.name
  });
  throw tenantViolation({ action: ctx.action?.name });
}

/**
 * The tenant check every service gets (`mixins: [TenantScopeMixin()]`), so every tenant-scoped
 * action it has or gains is guarded. Marks the service with `metadata.tenantGuard = true`, which
 * the all-actions test (test/integration/tenant-guard.spec.ts) checks on every service.
 */
export function TenantScopeMixin(): Partial<ServiceSchema> {
  return {
    metadata: { [TENANT_GUARD_METADATA]: true },
    hooks: {
      before: {
        "*": checkTenant
      }
    }
  };
}
