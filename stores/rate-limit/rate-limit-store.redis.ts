import type Redis from "ioredis";
import { tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import { retryAfter, slidingEstimate, type RateLimitStore } from "./rate-limit-store";

/*
 * t:<tenant>:ratelimit:<key>:<window>  string counter, expiring after two windows.
 * The script counts and decides in one step so concurrent nodes never overshoot the limit.
 */
const CONSUME = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local estimate = previous * (1 - tonumber(ARGV[1])) + current + 1
if estimate > tonumber(ARGV[2]) then return {0, previous, current} end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, previous, current + 1}
`;

export class RedisRateLimitStore implements RateLimitStore {
  private readonly consumeScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** Releases the shared client when this store is closed. */
    private readonly release: () => Promise<void> = async () => undefined
  ) {
    this.consumeScript = defineScript(redis, "pf2RateLimitConsume", CONSUME);
  }

  async consume(tenantId: string, key: string, limit: number, windowMs: number, now: number) {
    const window = Math.floor(now / windowMs);
    const elapsed = (now % windowMs) / windowMs;
    const [allowed, previous, current] = (await this.consumeScript(
      [this.counterKey(tenantId, key, window), this.counterKey(tenantId, key, window - 1)],
      [elapsed, limit, windowMs * 2]
    )) as [number, number, number];
    if (allowed !== 1) {
      return { allowed: false, remaining: 0, retryAfterMs: retryAfter(previous, current, limit, now, windowMs) };
    }
    const estimate = slidingEstimate(previous, current, now, windowMs);
    return { allowed: true, remaining: Math.max(0, Math.floor(limit - estimate)), retryAfterMs: 0 };
  }

  async reset(tenantId: string, key: string, windowMs?: number, now = Date.now()) {
    // Counters also expire on their own after two windows; deleting early just frees memory.
    if (windowMs === undefined) return;
    const window = Math.floor(now / windowMs);
    await this.redis.del(this.counterKey(tenantId, key, window), this.counterKey(tenantId, key, window - 1));
  }

  async close() {
    await this.release();
  }

  private counterKey(tenantId: string, key: string, window: number) {
    return `${this.prefix}:${tenantKey(tenantId, "ratelimit", key, String(window))}`;
  }
}
