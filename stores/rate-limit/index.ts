import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import { MemoryRateLimitStore } from "./rate-limit-store.memory";
import { RedisRateLimitStore } from "./rate-limit-store.redis";
import type { RateLimitStore } from "./rate-limit-store";

export type { RateLimitResult, RateLimitStore } from "./rate-limit-store";

/** The one resolver: Redis when REDIS_URL is set, the in-process store otherwise. */
export function createRateLimitStore(config: Pick<Config, "redisUrl" | "redisKeyPrefix">): RateLimitStore {
  if (!config.redisUrl) return new MemoryRateLimitStore();
  const url = config.redisUrl;
  return new RedisRateLimitStore(acquireRedis(url), config.redisKeyPrefix, () => releaseRedis(url));
}
