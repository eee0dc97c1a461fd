import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import { MemoryConversationStore } from "./conversation-store.memory";
import { RedisConversationStore } from "./conversation-store.redis";
import type { ConversationStore } from "./conversation-store";

export type { ConversationStore } from "./conversation-store";

/** The one resolver: Redis when REDIS_URL is set, the in-process store otherwise. */
export function createConversationStore(config: Pick<Config, "redisUrl" | "redisKeyPrefix">): ConversationStore {
  if (!config.redisUrl) return new MemoryConversationStore();
  const url = config.redisUrl;
  return new RedisConversationStore(acquireRedis(url), config.redisKeyPrefix, () => releaseRedis(url));
}
