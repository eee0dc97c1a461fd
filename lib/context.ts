import type { Principal } from "./auth";

/**
 * What adapters put in `ctx.meta` for calls made on behalf of a client. Calls without `auth`
 * come from inside the cluster (services, operators at the REPL) and are trusted to name the tenant.
 */
export interface CallerMeta {
  auth?: Principal;
  /** Correlation id carried across services for logs. */
  requestId?: string;
  /**
   * Set by the gateway alone (protocols/admin-access.ts), after the audit record of a super-admin's
   * justified read of another tenant is durable; the tenant-scope mixin then lets that call name
   * `tenantId`. Clients cannot set ctx.meta (REST meta is built by the gateway, Socket.IO calls
   * carry only `auth`).
   */
  adminAccess?: AdminAccess;
  /** Set by an action that counted the call against a limit of its own, for REST `X-RateLimit-*` headers. */
  $rateLimit?: AppliedRateLimit;
}

export interface AdminAccess {
  /** The tenant the super-admin may read in this request. */
  tenantId: string;
  /** The super-admin it was granted to (must be `auth.userId`). */
  userId: string;
  justification: string;
  /** The id of the `admin.cross_tenant_access` audit record. */
  auditId: string;
}

/** A limit's state after counting a request. */
export interface AppliedRateLimit {
  limit: number;
  remaining: number;
  /** Epoch ms when the window ends (refused: when a request will be allowed again). */
  resetAt: number;
}
