import type { ServerResponse } from "node:http";
import type { RateLimitResult } from "../stores/rate-limit";

/**
 * `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds) for a REST
 * response counted against a sliding-window limit (stores/rate-limit), plus `Retry-After` (seconds)
 * when the request was refused. Reset is when the refused request would pass again, or, for an
 * allowed one, the end of the current window.
 */
export function rateLimitHeaders(limit: number, result: RateLimitResult, windowMs: number, now: number): Record<string, string> {
  const resetMs = result.allowed ? (Math.floor(now / windowMs) + 1) * windowMs : now + result.retryAfterMs;
  return {
    "X-RateLimit-Limit": String(limit),
    "X-RateLimit-Remaining": String(result.allowed ? Math.max(0, result.remaining) : 0),
    "X-RateLimit-Reset": String(Math.ceil(resetMs / 1000)),
    ...(result.allowed ? {} : { "Retry-After": String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) })
  };
}

/** Sets the headers on a response not yet sent (they stay on an error response too). */
export function setRateLimitHeaders(res: ServerResponse, limit: number, result: RateLimitResult, windowMs: number, now = Date.now()): void {
  if (res.headersSent) return;
  for (const [name, value] of Object.entries(rateLimitHeaders(limit, result, windowMs, now))) res.setHeader(name, value);
}
