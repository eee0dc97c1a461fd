import { retryAfter, slidingEstimate, type RateLimitResult, type RateLimitStore } from "./rate-limit-store";

interface Counter {
  window: number;
  current: number;
  previous: number;
  windowMs: number;
}

/** The embedded default: exact for one process. Idle counters are swept so memory stays bounded. */
export class MemoryRateLimitStore implements RateLimitStore {
  /** tenantId → key → counter: no key string is built per hit (a socket message counts one). */
  private readonly counters = new Map<string, Map<string, Counter>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs = 60_000) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), sweepEveryMs);
    this.sweeper.unref();
  }

  async consume(tenantId: string, key: string, limit: number, windowMs: number, now: number) {
    return this.consumeNow(tenantId, key, limit, windowMs, now);
  }

  consumeNow(tenantId: string, key: string, limit: number, windowMs: number, now: number): RateLimitResult {
    let keys = this.counters.get(tenantId);
    if (!keys) {
      keys = new Map();
      this.counters.set(tenantId, keys);
    }
    const window = Math.floor(now / windowMs);
    let counter = keys.get(key);
    if (!counter || counter.windowMs !== windowMs) {
      counter = { window, current: 0, previous: 0, windowMs };
      keys.set(key, counter);
    } else if (counter.window !== window) {
      counter.previous = counter.window === window - 1 ? counter.current : 0;
      counter.current = 0;
      counter.window = window;
    }
    const estimate = slidingEstimate(counter.previous, counter.current + 1, now, windowMs);
    if (estimate > limit) {
      return { allowed: false, remaining: 0, retryAfterMs: retryAfter(counter.previous, counter.current, limit, now, windowMs) };
    }
    counter.current += 1;
    return { allowed: true, remaining: Math.max(0, Math.floor(limit - estimate)), retryAfterMs: 0 };
  }

  async reset(tenantId: string, key: string) {
    const keys = this.counters.get(tenantId);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.counters.delete(tenantId);
  }

  async close() {
    clearInterval(this.sweeper);
    this.counters.clear();
  }

  private sweep(now: number) {
    for (const [tenantId, keys] of this.counters) {
      for (const [key, counter] of keys) {
        if (Math.floor(now / counter.windowMs) > counter.window + 1) keys.delete(key);
      }
      if (keys.size === 0) this.counters.delete(tenantId);
    }
  }
}
