import type { IncomingMessage, ServerResponse } from "node:http";
import { SUPER_ADMIN_ROLE, requestToken, type Principal, type TokenVerifier } from "../lib/auth";
import { authFailed, invalidRequest, tenantViolation, toClientError } from "../lib/errors";
import { setRateLimitHeaders } from "./rest-rate-limit";

/**
 * REST authentication (seed 000): `Authorization: Bearer <jwt>` plus `X-Tenant-ID`, which must be
 * the token's tenant. Returns the principal; throws AUTH_FAILED, INVALID_REQUEST or TENANT_VIOLATION.
 * A super-admin's `X-Tenant-ID` may name another tenant: protocols/admin-access.ts decides then.
 */
export function authenticateRequest(
  verifier: TokenVerifier,
  headers: IncomingMessage["headers"],
  onViolation: (principal: Principal, requestedTenantId: string) => void
): Principal {
  const token = requestToken(headers);
  if (!token) throw authFailed("Missing bearer token");
  const principal = verifier.verify(token);
  const claimed = headers["x-tenant-id"];
  if (typeof claimed !== "string" || claimed.length === 0) throw invalidRequest("X-Tenant-ID header is required");
  if (claimed !== principal.tenantId && principal.role !== SUPER_ADMIN_ROLE) {
    onViolation(principal, claimed);
    throw tenantViolation({ header: "X-Tenant-ID" });
  }
  return principal;
}

/**
 * Binds the request's params to the caller's tenant: a `tenantId` naming another tenant is refused;
 * an absent one is filled from the token, so actions always see the verified tenant.
 */
export function bindTenant(
  principal: Principal,
  params: Record<string, unknown>,
  onViolation: (principal: Principal, requestedTenantId: string) => void
): void {
  if (params.tenantId !== undefined && params.tenantId !== principal.tenantId) {
    onViolation(principal, String(params.tenantId));
    throw tenantViolation({ param: "tenantId" });
  }
  params.tenantId = principal.tenantId;
}

/** Writes any error as `{error, code, details?}` with the seed's HTTP status. */
export function sendRestError(res: ServerResponse, err: unknown): number {
  const { status, body } = toClientError(err);
  if (res.headersSent) {
    res.end();
    return status;
  }
  const { retryAfterMs, limit } = (body.details ?? {}) as { retryAfterMs?: unknown; limit?: unknown };
  if (status === 429 && typeof retryAfterMs === "number") {
    res.setHeader("Retry-After", String(Math.ceil(retryAfterMs / 1000)));
    // The limit that refused the request is the one that applies.
    if (typeof limit === "number") setRateLimitHeaders(res, { limit, remaining: 0, resetAt: Date.now() + retryAfterMs });
  }
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.writeHead(status);
  res.end(JSON.stringify(body));
  return status;
}
