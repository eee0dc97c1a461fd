import type { Principal } from "./auth";

/**
 * What adapters put in `ctx.meta` for calls made on behalf of a client. Calls without `auth`
 * come from inside the cluster (services, operators at the REPL) and are trusted to name the tenant.
 */
export interface CallerMeta {
  auth?: Principal;
  /** Correlation id carried across services for logs. */
  requestId?: string;
  /** Set by an action that counted the call against a limit of its own, for REST `X-RateLimit-*` headers. */
  $rateLimit?: AppliedRateLimit;
}

/** A limit's state after counting a request. */
export interface AppliedRateLimit {
  limit: number;
  remaining: number;
  /** Epoch ms when the window ends (refused: when a request will be allowed again). */
  resetAt: number;
}
