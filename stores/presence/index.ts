import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import { MemoryPresenceStore } from "./presence-store.memory";
import { RedisPresenceStore } from "./presence-store.redis";
import type { PresenceStore } from "./presence-store";

export type { PresenceStore } from "./presence-store";

/** The one resolver: Redis when REDIS_URL is set, the in-process store otherwise. */
export function createPresenceStore(config: Pick<Config, "redisUrl" | "redisKeyPrefix">): PresenceStore {
  if (!config.redisUrl) return new MemoryPresenceStore();
  const url = config.redisUrl;
  return new RedisPresenceStore(acquireRedis(url), config.redisKeyPrefix, () => releaseRedis(url));
}
