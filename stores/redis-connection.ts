import type Redis from "ioredis";

/**
 * The ioredis client class, loaded on first use: a node on the embedded default (no REDIS_URL)
 * never loads the library (about 1.6 MiB of heap and 40 modules at every start).
 */
export function redisClient(): typeof Redis {
  return (require("ioredis") as typeof import("ioredis")).default;
}

/**
 * One Redis client per URL per process, shared by every store of the process.
 *
 * Until the first connection attempt ends, commands wait for it. After that, commands fail fast while Redis is unreachable (no offline queue), so callers see an error
 * at once and degrade instead of hanging; the client keeps reconnecting in the background.
 * A command that gets no answer within {@link REDIS_COMMAND_TIMEOUT_MS} (a Redis that hangs, or a
 * network partition that keeps the TCP connection open) fails too. Such a failure is ambiguous for
 * a write: Redis may still apply it later, so writers retry idempotently (eventIds, messageIds).
 */
export const REDIS_COMMAND_TIMEOUT_MS = 2000;

const clients = new Map<string, { client: Redis; users: number }>();

export function acquireRedis(url: string): Redis {
  const entry = clients.get(url);
  if (entry) {
    entry.users += 1;
    return entry.client;
  }
  const RedisClient = redisClient();
  const client = new RedisClient(url, {
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // Closing a client that never connected must not hold the process open for ioredis' default 2 s.
    disconnectTimeout: 100,
    retryStrategy: times => Math.min(100 * times, 1000),
    lazyConnect: false
  });
  // Without a listener ioredis reports every failed reconnect as an unhandled error.
  client.on("error", () => undefined);
  // The first connection attempt decides: after it (success or failure) commands fail fast.
  const failFast = () => {
    client.options.enableOfflineQueue = false;
  };
  client.once("ready", failFast);
  client.once("error", failFast);
  clients.set(url, { client, users: 1 });
  return client;
}

export async function releaseRedis(url: string): Promise<void> {
  const entry = clients.get(url);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  clients.delete(url);
  try {
    await entry.client.quit();
  } catch {
    entry.client.disconnect();
  }
}

/** Waits until the client is ready, up to `timeoutMs`; resolves false instead of throwing. */
export function whenReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === "ready") return Promise.resolve(true);
  return new Promise(resolve => {
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once("ready", onReady);
  });
}

export type LuaScript = (keys: string[], args: Array<string | number>) => Promise<unknown>;

/** Registers a Lua script once per client and returns a typed caller (EVALSHA with EVAL fallback). */
export function defineScript(client: Redis, name: string, lua: string): LuaScript {
  const commands = client as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>;
  if (typeof commands[name] !== "function") client.defineCommand(name, { lua });
  return (keys, args) => commands[name](keys.length, ...keys, ...args);
}

/** Measures a PING round trip; throws when Redis is unreachable. */
export async function pingLatencyMs(client: Redis, timeoutMs = 1000): Promise<number> {
  const started = process.hrtime.bigint();
  await Promise.race([
    client.ping(),
    new Promise((_, reject) => setTimeout(() => reject(new Error("Redis ping timed out")), timeoutMs).unref())
  ]);
  return Number(process.hrtime.bigint() - started) / 1e6;
}
