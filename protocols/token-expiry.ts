/**
 * Calls `onExpired` once a token's `exp` (seconds) has passed: a connection is never more trusted
 * than its token. Each protocol says "expired" its own way in `onExpired`.
 *
 * Connections are kept in buckets by the second their token expires, checked by one timer per
 * process (unref'd: it never holds the process open), at most a second late. A timer per
 * connection would cost ~0.4 KiB of heap each and a timer list per distinct delay.
 */
export function scheduleTokenExpiry(exp: number | undefined, keep: (cancel: () => void) => void, onExpired: () => void): void {
  if (exp === undefined) return;
  keep(expiries.add(exp, onExpired));
}

const CHECK_EVERY_MS = 1000;

class ExpiryBuckets {
  private readonly buckets = new Map<number, Set<() => void>>();
  private timer: NodeJS.Timeout | undefined;

  /** Returns the function that cancels it (call it when the connection closes). */
  add(exp: number, onExpired: () => void): () => void {
    const second = Math.ceil(exp);
    if (second * 1000 <= Date.now()) {
      // Already expired: after the caller has kept its cancel function, like a timer of 0.
      let cancelled = false;
      setImmediate(() => cancelled || onExpired());
      return () => (cancelled = true);
    }
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = new Set();
      this.buckets.set(second, bucket);
    }
    // A wrapper per entry, so the same callback added twice is two entries.
    const entry = () => onExpired();
    bucket.add(entry);
    this.start();
    return () => {
      const current = this.buckets.get(second);
      if (!current?.delete(entry)) return;
      if (current.size === 0) this.buckets.delete(second);
    };
  }

  private start() {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  private check() {
    const now = Date.now();
    for (const [second, bucket] of this.buckets) {
      if (second * 1000 > now) continue;
      this.buckets.delete(second);
      for (const onExpired of bucket) onExpired();
    }
    if (this.buckets.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const expiries = new ExpiryBuckets();
