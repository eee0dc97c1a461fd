import { retryAfter, slidingEstimate, type RateLimitStore } from "./rate-limit-store";

interface Counter {
  window: number;
  current: number;
  previous: number;
  windowMs: number;
}

/** The embedded default: exact for one process. Idle counters are swept so memory stays bounded. */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly counters = new Map<string, Counter>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(sweepEveryMs = 60_000) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), sweepEveryMs);
    this.sweeper.unref();
  }

  async consume(tenantId: string, key: string, limit: number, windowMs: number, now: number) {
    const id = counterId(tenantId, key);
    const window = Math.floor(now / windowMs);
    let counter = this.counters.get(id);
    if (!counter || counter.windowMs !== windowMs) {
      counter = { window, current: 0, previous: 0, windowMs };
      this.counters.set(id, counter);
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
    this.counters.delete(counterId(tenantId, key));
  }

  async close() {
    clearInterval(this.sweeper);
    this.counters.clear();
  }

  private sweep(now: number) {
    for (const [id, counter] of this.counters) {
      if (Math.floor(now / counter.windowMs) > counter.window + 1) this.counters.delete(id);
    }
  }
}

function counterId(tenantId: string, key: string) {
  return `${tenantId}\0${key}`;
}
