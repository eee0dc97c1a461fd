import type Redis from "ioredis";
import { tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import type { ConnectionSlotStore, SlotRef } from "./connection-slot-store";

/*
 * t:<tenant>:slots:<user>  sorted set: member = connection id, score = expiry (epoch ms).
 * The key itself expires with its newest slot, so a user who left leaves nothing behind.
 * Expiry is measured on the callers' clocks (gateways), which only need to agree within the TTL.
 */

// KEYS: slots; ARGV: connectionId, limit, now, expiresAt, ttlMs → {allowed, count}
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if not held and count >= tonumber(ARGV[2]) then return {0, count} end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
if held then return {1, count} end
return {1, count + 1}
`;

// KEYS: slots; ARGV: connectionId, now, expiresAt, ttlMs. Only a slot still alive is extended.
const REFRESH = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`;

const REFRESH_COMMAND = "pf2SlotRefresh";

export class RedisConnectionSlotStore implements ConnectionSlotStore {
  private readonly acquireScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly release_: () => Promise<void> = async () => undefined
  ) {
    this.acquireScript = defineScript(redis, "pf2SlotAcquire", ACQUIRE);
    defineScript(redis, REFRESH_COMMAND, REFRESH);
  }

  async acquire(ref: SlotRef, limit: number, ttlMs: number, now: number) {
    const [allowed, count] = (await this.acquireScript([this.key(ref.tenantId, ref.userId)], [ref.connectionId, limit, now, now + ttlMs, ttlMs])) as [number, number];
    return { allowed: allowed === 1, count };
  }

  async refresh(refs: SlotRef[], ttlMs: number, now: number) {
    if (refs.length === 0) return;
    const pipeline = this.redis.pipeline() as unknown as Record<string, (...args: Array<string | number>) => unknown> & { exec(): Promise<Array<[Error | null, unknown]> | null> };
    for (const ref of refs) pipeline[REFRESH_COMMAND](1, this.key(ref.tenantId, ref.userId), ref.connectionId, now, now + ttlMs, ttlMs);
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async release(ref: SlotRef) {
    await this.redis.zrem(this.key(ref.tenantId, ref.userId), ref.connectionId);
  }

  async count(tenantId: string, userId: string, now: number) {
    return this.redis.zcount(this.key(tenantId, userId), `(${now}`, "+inf");
  }

  async close() {
    await this.release_();
  }

  private key(tenantId: string, userId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "slots", userId)}`;
  }
}
