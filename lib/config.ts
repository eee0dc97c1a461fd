/**
 * Every configuration knob of the product, read from the environment in one place.
 * Names follow seed 001 where it has one (WS_*, REDIS_URL, JWT_SECRET); the rest are ours
 * and are listed in `.env.example` and the README.
 */
export interface Config {
  /** HTTP port shared by REST and Socket.IO. */
  wsPort: number;
  wsHost: string;
  wsPath: string;
  wsPingIntervalMs: number;
  wsPingTimeoutMs: number;
  /** Socket.IO connections accepted by one gateway node. */
  wsMaxConnections: number;
  /** Messages one connection may send per minute. */
  wsMessageRateLimit: number;
  /** Largest accepted client event (JSON bytes); larger ones get INVALID_REQUEST. */
  wsMaxPayloadBytes: number;
  /** Rooms one connection may be in at once. */
  wsMaxRoomsPerConnection: number;
  presenceTtlSeconds: number;
  redisUrl: string | undefined;
  /** Prefix of every Redis key, so several deployments can share one Redis. */
  redisKeyPrefix: string;
  jwtSecret: string | undefined;
  jwtPublicKey: string | undefined;
  corsOrigin: string | undefined;
  /** EVENT_BUS_RETENTION_PERIOD: events older than this are trimmed from the log (ms). */
  eventBusRetentionMs: number;
  /** Per-tenant size cap of the log. */
  eventBusMaxEventsPerTenant: number;
  /**
   * EVENT_BUS_MAX_RETRIES: handler attempts (the first delivery included) before an event is
   * dead-lettered; 0 behaves as 1 (no retry). Same meaning as @moleculer/channels' `maxRetries`.
   */
  eventBusMaxRetries: number;
  /** EVENT_BUS_STREAM_NAME (seed 001): the channel every published event is sent to, for consumer groups. */
  eventBusStreamName: string;
  /** EVENT_BUS_CONSUMER_GROUP (seed 001): the consumer group of subscriptions and consumers that name none. */
  eventBusConsumerGroup: string;
  /** EVENT_BUS_RETRY_DELAY_MS: delay before a failed delivery is retried (Redis: idle time before redelivery; memory: first backoff step). */
  eventBusRetryDelayMs: number;
  /** EVENT_BUS_STREAM_MAX_LEN: approximate cap of the Redis channel stream (entries, all tenants). */
  eventBusStreamMaxLen: number;
  /** Publishes one tenant may make per second. */
  eventBusPublishRateLimit: number;
  /** Polls one client may make per minute. */
  pollRateLimit: number;
  /**
   * DATABASE_URL: PostgreSQL for the durable stores that need it (audit, reconciliation); unset =
   * the embedded default. Add `?options=-c search_path=<schema>` to keep a deployment in a schema.
   */
  databaseUrl: string | undefined;
  /** DATA_DIR: where embedded-default stores keep files across restarts (audit log). */
  dataDir: string;
  /**
   * SHUTDOWN_TIMEOUT_MS: on SIGTERM the process exits within this bound. A gateway stops accepting,
   * tells its clients to reconnect elsewhere, waits up to half of it for in-flight messages to
   * become durable and acknowledged, then disconnects them; past the bound the process exits anyway.
   */
  shutdownTimeoutMs: number;
  /**
   * WS_MAX_BUFFERED_MESSAGES: server→client messages a connection may have waiting to be written
   * (its client is not reading). Class A traffic is shed as soon as anything waits; past this limit
   * the connection is closed (`slow_consumer`).
   */
  wsMaxBufferedMessages: number;
  /** WS_MAX_BUFFERED_BYTES: the same limit in bytes (waiting messages plus the write in progress). */
  wsMaxBufferedBytes: number;
}

type Env = Record<string, string | undefined>;

function intFrom(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`Configuration ${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return value;
}

function stringFrom(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === "" ? undefined : raw;
}

/** A channel or consumer-group name: it becomes part of Redis keys and Moleculer event names. */
function nameFrom(env: Env, name: string, fallback: string): string {
  const raw = stringFrom(env, name);
  if (raw === undefined) return fallback;
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(raw)) {
    throw new Error(`Configuration ${name} must be 1-128 characters of A-Z a-z 0-9 _ . : -, got "${raw}"`);
  }
  return raw;
}

/** A PEM key may be given inline with literal "\n" escapes (common in .env files and k8s secrets). */
function pemFrom(env: Env, name: string): string | undefined {
  const raw = stringFrom(env, name);
  return raw?.replace(/\\n/g, "\n");
}

export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const config: Config = {
    wsPort: intFrom(env, "WS_PORT", 3000),
    wsHost: stringFrom(env, "WS_HOST") ?? "0.0.0.0",
    wsPath: stringFrom(env, "WS_PATH") ?? "/socket.io",
    wsPingIntervalMs: intFrom(env, "WS_PING_INTERVAL", 30000, 1),
    wsPingTimeoutMs: intFrom(env, "WS_PING_TIMEOUT", 60000, 1),
    wsMaxConnections: intFrom(env, "WS_MAX_CONNECTIONS", 50000, 1),
    wsMessageRateLimit: intFrom(env, "WS_MESSAGE_RATE_LIMIT", 100, 1),
    wsMaxPayloadBytes: intFrom(env, "WS_MAX_PAYLOAD_BYTES", 64 * 1024, 1),
    wsMaxRoomsPerConnection: intFrom(env, "WS_MAX_ROOMS_PER_CONNECTION", 1000, 1),
    presenceTtlSeconds: intFrom(env, "PRESENCE_TTL_SECONDS", 60, 1),
    redisUrl: stringFrom(env, "REDIS_URL"),
    redisKeyPrefix: stringFrom(env, "REDIS_KEY_PREFIX") ?? "pf2",
    jwtSecret: stringFrom(env, "JWT_SECRET"),
    jwtPublicKey: pemFrom(env, "JWT_PUBLIC_KEY"),
    corsOrigin: stringFrom(env, "CORS_ORIGIN"),
    eventBusRetentionMs: intFrom(env, "EVENT_BUS_RETENTION_PERIOD", 7 * 24 * 60 * 60 * 1000, 1000),
    eventBusMaxEventsPerTenant: intFrom(env, "EVENT_BUS_MAX_EVENTS_PER_TENANT", 100_000, 1),
    eventBusMaxRetries: intFrom(env, "EVENT_BUS_MAX_RETRIES", 3, 0),
    eventBusStreamName: nameFrom(env, "EVENT_BUS_STREAM_NAME", "webwaka:events"),
    eventBusConsumerGroup: nameFrom(env, "EVENT_BUS_CONSUMER_GROUP", "webwaka-consumers"),
    eventBusRetryDelayMs: intFrom(env, "EVENT_BUS_RETRY_DELAY_MS", 1000, 10),
    eventBusStreamMaxLen: intFrom(env, "EVENT_BUS_STREAM_MAX_LEN", 1_000_000, 1000),
    eventBusPublishRateLimit: intFrom(env, "EVENT_BUS_PUBLISH_RATE_LIMIT", 1000, 1),
    pollRateLimit: intFrom(env, "POLL_RATE_LIMIT", 60, 1),
    databaseUrl: stringFrom(env, "DATABASE_URL"),
    dataDir: stringFrom(env, "DATA_DIR") ?? "./data",
    shutdownTimeoutMs: intFrom(env, "SHUTDOWN_TIMEOUT_MS", 30_000, 1000),
    wsMaxBufferedMessages: intFrom(env, "WS_MAX_BUFFERED_MESSAGES", 1000, 1),
    wsMaxBufferedBytes: intFrom(env, "WS_MAX_BUFFERED_BYTES", 8 * 1024 * 1024, 1024),
    ...overrides
  };
  if (config.redisUrl && !/^rediss?:\/\//.test(config.redisUrl)) {
    throw new Error(`REDIS_URL must be a redis:// or rediss:// URL, got "${config.redisUrl}"`);
  }
  if (config.databaseUrl && !/^postgres(ql)?:\/\//.test(config.databaseUrl)) {
    throw new Error(`DATABASE_URL must be a postgres:// or postgresql:// URL, got "${config.databaseUrl}"`);
  }
  if (!config.jwtSecret && !config.jwtPublicKey) {
    // The embedded default must start with nothing configured; a fixed dev secret would be a
    // silent backdoor in production, so refuse to guess when NODE_ENV says production.
    if (env.NODE_ENV === "production") {
      throw new Error("Set JWT_SECRET (HS256) or JWT_PUBLIC_KEY (RS256/ES256) in production");
    }
    config.jwtSecret = DEV_JWT_SECRET;
  }
  return config;
}

/** Used only when neither JWT_SECRET nor JWT_PUBLIC_KEY is set and NODE_ENV is not production. */
export const DEV_JWT_SECRET = "pf2-dev-secret-change-me";
