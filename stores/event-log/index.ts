import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis } from "../redis-connection";
import type { EventLog } from "./event-log";
import { MemoryEventLog } from "./event-log.memory";
import { RedisEventLog } from "./event-log.redis";

export * from "./event-log";

/** The one resolver: Redis Streams when REDIS_URL is set, the in-process log otherwise. */
export function createEventLog(config: Pick<Config, "redisUrl" | "redisKeyPrefix" | "eventBusRetentionMs" | "eventBusMaxEventsPerTenant">): EventLog {
  const limits = { retentionMs: config.eventBusRetentionMs, maxEventsPerTenant: config.eventBusMaxEventsPerTenant };
  if (!config.redisUrl) return new MemoryEventLog(limits);
  const url = config.redisUrl;
  return new RedisEventLog(acquireRedis(url), config.redisKeyPrefix, limits, () => releaseRedis(url));
}
