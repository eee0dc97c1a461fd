/**
 * Calls `onExpired(target)` once a token's `exp` (seconds) has passed: a connection is never more
 * trusted than its token. Each protocol says "expired" its own way in `onExpired`, one function
 * per protocol shared by all of its connections.
 *
 * Connections are kept in buckets by the second their token expires, checked by one timer per
 * process (unref'd: it never holds the process open), at most a second late. A bucket maps each
 * target (the connection: a Socket.IO socket, a raw WebSocket connection) to its handler: one map entry per connection, where
 * a timer would cost ~0.4 KiB of heap and closures (a callback, a wrapper, a cancel function and
 * their contexts) ~0.2 KiB.
 */
export function scheduleTokenExpiry<T extends object>(exp: number | undefined, target: T, onExpired: (target: T) => void): void {
  if (exp === undefined) return;
  expiries.add(exp, target, onExpired as (target: object) => void);
}

/** Forgets `target` (call it when the connection closes); `exp` is the one it was scheduled with. */
export function cancelTokenExpiry(exp: number | undefined, target: object): void {
  if (exp === undefined) return;
  expiries.remove(exp, target);
}

const CHECK_EVERY_MS = 1000;

class ExpiryBuckets {
  private readonly buckets = new Map<number, Map<object, (target: object) => void>>();
  private timer: NodeJS.Timeout | undefined;
  private checkSoon = false;

  add(exp: number, target: object, onExpired: (target: object) => void): void {
    const second = Math.ceil(exp);
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = new Map();
      this.buckets.set(second, bucket);
    }
    bucket.set(target, onExpired);
    if (second * 1000 <= Date.now()) {
      // Already expired: after the caller has finished setting the connection up, like a timer of 0.
      if (!this.checkSoon) {
        this.checkSoon = true;
        setImmediate(() => {
          this.checkSoon = false;
          this.check();
        });
      }
      return;
    }
    this.start();
  }

  remove(exp: number, target: object): void {
    const second = Math.ceil(exp);
    const bucket = this.buckets.get(second);
    if (!bucket?.delete(target)) return;
    if (bucket.size === 0) this.buckets.delete(second);
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
      for (const [target, onExpired] of bucket) onExpired(target);
    }
    if (this.buckets.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const expiries = new ExpiryBuckets();
