import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import type { ConnectionSlotStore } from "./connection-slot-store";
import { MemoryConnectionSlotStore } from "./connection-slot-store.memory";
import { RedisConnectionSlotStore } from "./connection-slot-store.redis";

export type { ConnectionSlotStore, SlotRef, SlotResult } from "./connection-slot-store";

/** The one resolver: Redis when REDIS_URL is set, the in-process store otherwise. */
export function createConnectionSlotStore(config: Pick<Config, "redisUrl" | "redisKeyPrefix">): ConnectionSlotStore {
  if (!config.redisUrl) return new MemoryConnectionSlotStore();
  const url = config.redisUrl;
  return new RedisConnectionSlotStore(acquireRedis(url), config.redisKeyPrefix, () => releaseRedis(url));
}
