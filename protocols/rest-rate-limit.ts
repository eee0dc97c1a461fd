import type { IncomingMessage, ServerResponse } from "node:http";
import { requestToken, type TokenVerifier } from "../lib/auth";
import type { AppliedRateLimit } from "../lib/context";
import { rateLimited } from "../lib/errors";
import { appliedRateLimit, type RateLimitResult } from "../stores/rate-limit/rate-limit-store";

/**
 * The general REST limit (API_RATE_LIMIT requests per user per minute over every `/api/*` route)
 * and the `X-RateLimit-*` headers every `/api/*` response carries:
 *
 * - `X-RateLimit-Limit`: requests allowed per window by the limit that applies;
 * - `X-RateLimit-Remaining`: requests left in it;
 * - `X-RateLimit-Reset`: epoch seconds when the current window ends, or, once refused, when a
 *   request will be allowed again (429 responses also carry `Retry-After` in seconds).
 *
 * Where a route has a tighter limit of its own (poll: POLL_RATE_LIMIT per user per minute,
 * publish: EVENT_BUS_PUBLISH_RATE_LIMIT per tenant per second) the headers show the one with the
 * fewest requests left. Callers are counted per verified user; requests without a valid token per
 * client address, so refusals cost an anonymous client its own quota, never a user's.
 */
export const REST_WINDOW_MS = 60_000;

/** Tenant bucket of unauthenticated callers: no real tenant id is empty (lib/auth.ts isIdentifier). */
export const ANONYMOUS_TENANT = "";

export type RateLimitState = AppliedRateLimit;

export interface RestLimiterHost {
  verifier: TokenVerifier;
  config: { apiRateLimit: number };
  consumeRate(tenantId: string, key: string, limit: number, windowMs: number): Promise<RateLimitResult>;
}

type LimitedRequest = IncomingMessage & { $rateLimit?: RateLimitState };

/** The state a store answer stands for. */
export const rateLimitState = appliedRateLimit;

export function setRateLimitHeaders(res: ServerResponse, state: RateLimitState): void {
  if (res.headersSent) return;
  res.setHeader("X-RateLimit-Limit", String(state.limit));
  res.setHeader("X-RateLimit-Remaining", String(Math.max(0, Math.floor(state.remaining))));
  res.setHeader("X-RateLimit-Reset", String(Math.ceil(state.resetAt / 1000)));
}

/** Of two limits that both apply, the one that bites first. */
export function tighter(a: RateLimitState | undefined, b: RateLimitState | undefined): RateLimitState | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.remaining < a.remaining || (b.remaining === a.remaining && b.resetAt > a.resetAt) ? b : a;
}

/** Who a request is counted as: its verified user, or its client address. */
export function callerBucket(verifier: TokenVerifier, req: IncomingMessage): { tenantId: string; key: string } {
  const token = requestToken(req.headers);
  if (token) {
    try {
      const principal = verifier.verify(token);
      return { tenantId: principal.tenantId, key: `api:user:${principal.userId}` };
    } catch {
      // Counted by address below; authentication answers the request with AUTH_FAILED.
    }
  }
  return { tenantId: ANONYMOUS_TENANT, key: `api:ip:${req.socket?.remoteAddress ?? "unknown"}` };
}

/** Counts one request against the general limit, sets the headers and returns the state. */
export async function countRequest(host: RestLimiterHost, req: IncomingMessage, res: ServerResponse): Promise<RateLimitState> {
  const limited = req as LimitedRequest;
  if (limited.$rateLimit) return limited.$rateLimit;
  const { tenantId, key } = callerBucket(host.verifier, req);
  const limit = host.config.apiRateLimit;
  const now = Date.now();
  const result = await host.consumeRate(tenantId, key, limit, REST_WINDOW_MS);
  const state = rateLimitState(result, limit, REST_WINDOW_MS, now);
  limited.$rateLimit = state;
  setRateLimitHeaders(res, state);
  if (!result.allowed) throw rateLimited({ retryAfterMs: result.retryAfterMs, limit, windowMs: REST_WINDOW_MS });
  return state;
}

/**
 * moleculer-web route middlewares (`use`, called with the gateway service as `this`): the first
 * counts every request that reached the route, the second (an error middleware) counts requests
 * its body parser refused, so those carry the headers too. OPTIONS preflights are not counted.
 */
export function restRateLimitMiddlewares() {
  return [
    function limitRequest(this: RestLimiterHost, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
      if (req.method === "OPTIONS") return next();
      countRequest(this, req, res).then(() => next(), next);
    },
    function limitRefusedRequest(this: RestLimiterHost, err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) {
      if (req.method === "OPTIONS") return next(err);
      // The request is refused either way; a rate-limit refusal would only replace its error.
      countRequest(this, req, res).then(
        () => next(err),
        () => next(err)
      );
    }
  ];
}

/**
 * For the gateway's error handler: counts an `/api/*` request refused before the route's
 * middlewares ran (moleculer-web refuses undecodable path parameters while resolving the alias),
 * so its answer carries the headers too. Never throws; the request keeps its own error.
 */
export async function countRefusedRequest(host: RestLimiterHost, req: IncomingMessage, res: ServerResponse, prefix = "/api"): Promise<void> {
  const url = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? "";
  if (req.method === "OPTIONS" || res.headersSent || res.getHeader("X-RateLimit-Limit") !== undefined) return;
  if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) return;
  await countRequest(host, req, res).catch(() => undefined);
}

/** The state of the limit that applies to an answered request, given an action's own limit. */
export function appliedLimit(req: IncomingMessage, own: RateLimitState | undefined): RateLimitState | undefined {
  return tighter((req as LimitedRequest).$rateLimit, own);
}
