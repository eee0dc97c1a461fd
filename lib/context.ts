import type { Principal } from "./auth";

/**
 * What adapters put in `ctx.meta` for calls made on behalf of a client. Calls without `auth`
 * come from inside the cluster (services, operators at the REPL) and are trusted to name the tenant.
 */
export interface CallerMeta {
  auth?: Principal;
  /** Correlation id carried across services for logs. */
  requestId?: string;
}
