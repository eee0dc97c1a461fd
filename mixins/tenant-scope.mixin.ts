import type { Context, LoggerInstance, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/context";
import { tenantViolation } from "../lib/errors";

/** Emitted on every refused cross-tenant attempt, for the audit trail and security monitoring. */
export const TENANT_VIOLATION_EVENT = "security.tenantViolation";

/** One refused cross-tenant attempt, as logged and emitted for the audit trail. */
export interface TenantViolation {
  tenantId: string;
  userId: string;
  requestedTenantId: string;
  /** The transport that refused it (`rest`, `socket.io`); absent for an action call. */
  via?: string;
  /** The action, client event, namespace or path that was addressed. */
  action?: string;
  connectionId?: string;
}

/** Logs a refused cross-tenant attempt and emits it as TENANT_VIOLATION_EVENT, with one shape everywhere. */
export function reportTenantViolation(broker: ServiceBroker, logger: LoggerInstance, violation: TenantViolation): void {
  logger.warn("Tenant violation refused", violation);
  broker.emit(TENANT_VIOLATION_EVENT, { ...violation, nodeID: broker.nodeID, at: new Date().toISOString() });
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
 * reported. Internal calls (no `auth`) name the tenant themselves.
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
  reportTenantViolation(this.broker, this.logger, {
    tenantId: principal.tenantId,
    userId: principal.userId,
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
