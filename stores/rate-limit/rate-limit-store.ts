/**
 * Sliding-window rate limits per tenant: `limit` hits per `windowMs`, estimated from the current
 * and the previous fixed window (the previous one weighted by how much of it still overlaps).
 * This bounds bursts at window edges to the limit, unlike a plain fixed window.
 *
 * A refused hit is not counted, so a client that keeps trying is not locked out longer than the
 * window, and the limit holds exactly even when several nodes count the same key.
 */
export interface RateLimitResult {
  allowed: boolean;
  /** Hits left in the current estimate (0 when refused). */
  remaining: number;
  /** When refused: milliseconds until a hit is likely to be allowed again. */
  retryAfterMs: number;
}

export interface RateLimitStore {
  /** Counts one hit for `key` of the tenant, unless it would exceed the limit. */
  consume(tenantId: string, key: string, limit: number, windowMs: number, now: number): Promise<RateLimitResult>;

  /**
   * The same as `consume`, answered at once: only a store that needs no I/O (the memory store) has
   * it, so a hot path (every socket message) can skip a promise and an await per hit.
   */
  consumeNow?(tenantId: string, key: string, limit: number, windowMs: number, now: number): RateLimitResult;

  /** Forgets a key (a closed connection); `windowMs` is the window it was counted with. */
  reset(tenantId: string, key: string, windowMs?: number, now?: number): Promise<void>;

  close(): Promise<void>;
}

/** Shared arithmetic of the sliding window, so every backend decides the same way. */
export function slidingEstimate(previous: number, current: number, now: number, windowMs: number): number {
  const elapsed = (now % windowMs) / windowMs;
  return previous * (1 - elapsed) + current;
}

export function retryAfter(previous: number, current: number, limit: number, now: number, windowMs: number): number {
  const windowEnd = (Math.floor(now / windowMs) + 1) * windowMs;
  if (current >= limit) {
    // This window is full: in the next one it becomes the previous window, and a hit passes once
    // its weight has decayed so that current*(1-e) + 1 <= limit.
    // (In whole milliseconds, computed without a rounded fraction so the hint is not 1 ms late.)
    const nextElapsedMs = current === 0 ? 0 : Math.ceil((windowMs * (current - limit + 1)) / current);
    return windowEnd + Math.max(0, nextElapsedMs) - now;
  }
  if (previous === 0) return windowEnd - now;
  // The previous window's weight decays linearly; find when previous*(1-e) + current <= limit - 1.
  const neededElapsedMs = Math.ceil((windowMs * (previous - (limit - 1 - current))) / previous);
  const at = Math.floor(now / windowMs) * windowMs + Math.max(0, neededElapsedMs);
  return Math.max(1, Math.min(windowEnd, at) - now);
}

/** What a counted hit means for `X-RateLimit-*` headers: the limit, hits left, and when the window ends (refused: when a hit passes again). */
export function appliedRateLimit(result: RateLimitResult, limit: number, windowMs: number, now: number): { limit: number; remaining: number; resetAt: number } {
  const resetAt = result.allowed ? (Math.floor(now / windowMs) + 1) * windowMs : now + result.retryAfterMs;
  return { limit, remaining: result.allowed ? Math.max(0, result.remaining) : 0, resetAt };
}
