import type { TenantViolation } from "../mixins/tenant-scope.mixin";
import type { ServiceBroker } from "moleculer";
import type { Aggregation } from "./audit-aggregator";
import { ANONYMOUS, SYSTEM_TENANT, auditReporterOf, type AuditInput } from "./audit-trail";
import { ErrorCode } from "./errors";

/**
 * The security events every node reports to the audit trail, each with its aggregation key
 * (lib/audit-aggregator.ts), so callers add one line and a flood stays a handful of records.
 *
 * | action                     | chain            | aggregated per                         |
 * |----------------------------|------------------|----------------------------------------|
 * | security.auth_failed       | `_system`        | transport, reason, source address      |
 * | security.connection_refused| `_system`        | transport, reason, source address      |
 * | security.tenant_violation  | caller's tenant  | user, transport, action (samples: requested tenants) |
 * | security.rate_limited      | caller's tenant  | user (or tenant), limit                |
 * | security.class_d_refused   | caller's tenant  | user, transport                        |
 * | admin.cross_tenant_access (denied) | target tenant | super-admin, route, reason          |
 */

type Via = "rest" | "socket.io";

const REASON = /^[a-z_]{1,32}$/;

/** A short machine reason for a refused token: the error's `details.reason`, else one derived from its message. */
export function authFailureReason(err: unknown): string {
  const data = (err as { data?: { reason?: unknown } } | null)?.data;
  if (typeof data?.reason === "string" && REASON.test(data.reason)) return data.reason;
  const message = String((err as { message?: unknown } | null)?.message ?? "");
  if (/missing/i.test(message)) return "missing";
  if (/algorithm/i.test(message)) return "algorithm";
  if (/malformed/i.test(message)) return "malformed";
  return "invalid";
}

function sourceOf(address: string | undefined): string {
  return (address ?? "unknown").slice(0, 64);
}

/** A refused token or handshake (no trustworthy tenant: recorded in the `_system` chain). */
export function reportAuthFailure(broker: ServiceBroker, err: unknown, via: Via, address: string | undefined, where: string): void {
  const code = (err as { type?: unknown } | null)?.type;
  const source = sourceOf(address);
  if (code === ErrorCode.AUTH_FAILED) {
    const reason = authFailureReason(err);
    record(broker, { tenantId: SYSTEM_TENANT, actor: ANONYMOUS, action: "security.auth_failed", target: `${via}:${where}`.slice(0, 256), outcome: "denied", details: { via, reason, source } }, {
      key: `auth|${via}|${reason}|${source}`
    });
  }
}

/** A connection refused before authentication (node full). */
export function reportConnectionRefused(broker: ServiceBroker, reason: string, via: Via, address: string | undefined, details: Record<string, unknown> = {}): void {
  const source = sourceOf(address);
  record(broker, { tenantId: SYSTEM_TENANT, actor: ANONYMOUS, action: "security.connection_refused", target: `${via}:${broker.nodeID}`, outcome: "denied", details: { via, reason, source, ...details } }, {
    key: `conn|${via}|${reason}|${source}`
  });
}

/** The shape reportTenantViolation (mixins/tenant-scope.mixin.ts) reports. */
export type ViolationReport = TenantViolation;

/** A refused cross-tenant attempt, in the caller's own chain. */
export function reportTenantViolationAudit(broker: ServiceBroker, violation: ViolationReport): void {
  const requested = String(violation.requestedTenantId).slice(0, 128);
  record(
    broker,
    {
      tenantId: violation.tenantId,
      actor: { userId: violation.userId, role: violation.role ?? "unknown" },
      action: "security.tenant_violation",
      target: `tenant:${requested}`,
      outcome: "denied",
      details: {
        requestedTenantId: requested,
        via: violation.via ?? "action",
        ...(violation.action ? { action: violation.action.slice(0, 256) } : {}),
        ...(violation.connectionId ? { connectionId: violation.connectionId } : {})
      }
    },
    { key: `tv|${violation.tenantId}|${violation.userId}|${violation.via ?? "action"}|${violation.action ?? ""}`, sampleField: "requestedTenantId" }
  );
}

export interface Caller {
  tenantId: string;
  userId: string;
  role: string;
}

/** A rate limit that refused a request; `scope` names the limit (`message`, `control`, `publish`, `poll`). */
export function reportRateLimited(broker: ServiceBroker, caller: Caller, scope: string, details: Record<string, unknown>): void {
  record(
    broker,
    { tenantId: caller.tenantId, actor: { userId: caller.userId, role: caller.role }, action: "security.rate_limited", target: `user:${caller.userId}`, outcome: "denied", details: { limit: scope, ...details } },
    { key: `rl|${caller.tenantId}|${caller.userId}|${scope}` }
  );
}

/** A class D (critical transaction) message refused on a realtime path. */
export function reportClassDRefused(broker: ServiceBroker, caller: Caller, via: Via, target: string, details: Record<string, unknown>): void {
  record(
    broker,
    { tenantId: caller.tenantId, actor: { userId: caller.userId, role: caller.role }, action: "security.class_d_refused", target, outcome: "denied", details: { via, ...details } },
    { key: `d|${caller.tenantId}|${caller.userId}|${via}` }
  );
}

function record(broker: ServiceBroker, input: AuditInput, aggregation: Aggregation): void {
  auditReporterOf(broker).record(input, aggregation);
}
