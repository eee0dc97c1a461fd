import type Redis from "ioredis";
import type { Config } from "../../lib/config";
import { acquireRedis, releaseRedis, whenReady } from "../../stores/redis-connection";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";

/**
 * The backends every store contract runs against: the in-process store and the Redis store on the
 * real Redis at REDIS_URL. Both are built through the store's own resolver, exactly as services do.
 */
export type StoreConfig = Pick<Config, "redisUrl" | "redisKeyPrefix">;

export interface Backend {
  name: "memory" | "redis";
  usesRedis: boolean;
}

export const backends: readonly Backend[] = [
  { name: "memory", usesRedis: false },
  { name: "redis", usesRedis: true }
];

/** Fails (never skips) when Redis cannot be reached. */
export async function requireRedis(timeoutMs = 5000): Promise<Redis> {
  const client = acquireRedis(REDIS_URL);
  if (!(await whenReady(client, timeoutMs))) {
    await releaseRedis(REDIS_URL);
    throw new Error(`Redis at ${REDIS_URL} is not reachable: Redis contract tests cannot run`);
  }
  return client;
}

/**
 * Registers the hooks of one backend inside the current `describe` and returns a getter for a
 * fresh store per test. Redis stores get a unique key prefix per test, dropped after the file.
 */
export function useStore<S extends { close(): Promise<void> }>(
  backend: Backend,
  label: string,
  create: (config: StoreConfig) => S
): () => S {
  let store: S | undefined;
  let client: Redis | undefined;
  const prefixes: string[] = [];

  beforeAll(async () => {
    // Holding one reference keeps the shared client connected (and ready) across the tests, since
    // the stores fail fast instead of queueing commands while the client is still connecting.
    if (backend.usesRedis) client = await requireRedis();
  });

  beforeEach(() => {
    if (backend.usesRedis && client?.status !== "ready") throw new Error(`Redis at ${REDIS_URL} is not ready`);
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    store = create({ redisUrl: backend.usesRedis ? REDIS_URL : undefined, redisKeyPrefix: prefix });
  });

  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  afterAll(async () => {
    if (!backend.usesRedis) return;
    try {
      if (client) await Promise.all(prefixes.map(prefix => dropPrefix(prefix)));
    } finally {
      if (client) await releaseRedis(REDIS_URL);
      client = undefined;
    }
  });

  return () => {
    if (!store) throw new Error("store used outside of a test");
    return store;
  };
}

/** Every key currently under a prefix (to prove a Redis store really writes to Redis). */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys.sort();
}
