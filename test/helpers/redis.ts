import Redis from "ioredis";
import { randomUUID } from "node:crypto";

/** The real Redis every Redis-backed test uses; CI starts it. A test that cannot reach it fails. */
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A key prefix unique to one test file, so parallel runs and leftovers never collide. */
export function uniquePrefix(label: string): string {
  return `pf2test-${label}-${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under a prefix. */
export async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}
