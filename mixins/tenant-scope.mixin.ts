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

/** An action is tenant-scoped when its params schema declares `tenantId`. */
export function isTenantScoped(action: { params?: unknown } | null | undefined): boolean {
  return typeof action?.params === "object" && action.params !== null && "tenantId" in action.params;
}

/**
 * The tenant check every tenant-scoped action gets. For a call made on behalf of a client
 * (`ctx.meta.auth` set by an adapter from a verified token), `params.tenantId` must be the token's
 * tenant; anything else is refused with TENANT_VIOLATION and reported. Internal calls (no `auth`)
 * name the tenant themselves.
 */
export function TenantScopeMixin(): Partial<ServiceSchema> {
  return {
    hooks: {
      before: {
        "*": function checkTenant(this: Service, ctx: Context<Record<string, unknown>, CallerMeta>) {
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
      }
    }
  };
}
