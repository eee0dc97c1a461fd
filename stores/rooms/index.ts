import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import { MemoryRoomStore } from "./room-store.memory";
import { RedisRoomStore } from "./room-store.redis";
import type { RoomStore } from "./room-store";

export type { RoomAccess, RoomInfo, RoomMember, RoomSettings, RoomStore, RoomUpdate } from "./room-store";

/** The one resolver: Redis when REDIS_URL is set, the in-process store otherwise. */
export function createRoomStore(config: Pick<Config, "redisUrl" | "redisKeyPrefix">): RoomStore {
  if (!config.redisUrl) return new MemoryRoomStore();
  const url = config.redisUrl;
  return new RedisRoomStore(acquireRedis(url), config.redisKeyPrefix, () => releaseRedis(url));
}
