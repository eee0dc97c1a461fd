/**
 * Every configuration knob of the product, read from the environment in one place.
 * Names follow seed 001 where it has one (WS_*, REDIS_URL, JWT_SECRET); the rest are ours
 * and are listed in `.env.example` and the README.
 */
import { ALL_STRATEGIES, Strategy } from "./reconciliation/types";

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
  /** AUDIT_RETENTION_DAYS: audit records younger than this are never deleted (default 7 years). */
  auditRetentionDays: number;
  /** AUDIT_AGGREGATION_WINDOW_MS: repeated security refusals of one kind become one audit record per window. */
  auditAggregationWindowMs: number;
  /** SOCKET_MAX_PAYLOAD_BYTES (seed 003): largest inbound event on `/ws/app`; larger ones get `error` and are dropped. */
  socketMaxPayloadBytes: number;
  /** JWT_CLOCK_SKEW_SECONDS: tolerance applied to a token's `exp` and `nbf` (clocks of issuer and server differ). */
  jwtClockSkewSeconds: number;
  /** JWT_ISSUER: when set, a token's `iss` must be one of these (comma list). */
  jwtIssuer: string[] | undefined;
  /** JWT_AUDIENCE: when set, a token's `aud` must contain one of these (comma list). */
  jwtAudience: string[] | undefined;
  /** API_RATE_LIMIT: requests one user may make to `/api/*` per minute (all routes together). */
  apiRateLimit: number;
  /** RECONCILIATION_DEFAULT_STRATEGY (seed 001): how a conflicting offline operation is resolved. */
  reconciliationDefaultStrategy: Strategy;
  /** RECONCILIATION_ENTITY_STRATEGIES: per entity type, `document=MERGE,invoice=SERVER_WINS`. */
  reconciliationEntityStrategies: Record<string, Strategy>;
  /** RECONCILIATION_MAX_QUEUE_SIZE (seed 001): operations one reconcile request may carry. */
  reconciliationMaxQueueSize: number;
  /** RECONCILIATION_PROCESSING_TIMEOUT (seed 001): ms one reconcile request may take. */
  reconciliationProcessingTimeoutMs: number;
  /** RECONCILIATION_RATE_LIMIT: reconcile requests per client per minute (seed 000: 10). */
  reconciliationRateLimit: number;
  /** RECONCILIATION_MAX_DELTAS: at most this many changes are sent as deltaUpdates; more → a snapshot. */
  reconciliationMaxDeltas: number;
  /** RECONCILIATION_HISTORY_SIZE: changes kept per tenant for deltaUpdates. */
  reconciliationHistorySize: number;
  /** RECONCILIATION_SNAPSHOT_LIMIT: entities in one reconcile response's snapshot. */
  reconciliationSnapshotLimit: number;
  /** RECONCILIATION_OPERATION_RETENTION: ms an operation's outcome is kept for idempotent replays. */
  reconciliationOperationRetentionMs: number;
  /** RECONCILIATION_MAX_REQUEST_BYTES: largest reconcile request body over REST. */
  reconciliationMaxRequestBytes: number;
  /**
   * HEALTH_PORT: serve `/health/live` and `/health/ready` on this port (on WS_HOST) from any node,
   * for orchestrator probes of nodes without the gateway (lib/node-health.ts); unset = no server.
   */
  healthPort: number | undefined;
  /** WS_RAW_PATH: path of the seed 002 raw WebSocket endpoint on the same HTTP server. */
  wsRawPath: string;
  /** MAX_CONNECTIONS (seed 002): raw WebSocket connections one user may hold, across the cluster. */
  maxConnectionsPerUser: number;
  /** WS_RAW_RATE_LIMIT: frames one raw WebSocket connection may send per second. */
  wsRawRateLimit: number;
  /** POLL_V1_RATE_LIMIT: seed 002 polls (`/api/v1/realtime/poll*`) one user may make per minute. */
  pollV1RateLimit: number;
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

/** A comma list of non-empty values; unset or blank = undefined. */
function listFrom(env: Env, name: string): string[] | undefined {
  const raw = stringFrom(env, name);
  if (raw === undefined) return undefined;
  const values = raw.split(",").map(v => v.trim()).filter(v => v.length > 0);
  return values.length > 0 ? values : undefined;
}

function strategyFrom(env: Env, name: string, fallback: Strategy): Strategy {
  const raw = stringFrom(env, name);
  if (raw === undefined) return fallback;
  if (!ALL_STRATEGIES.includes(raw as Strategy)) throw new Error(`Configuration ${name} must be one of ${ALL_STRATEGIES.join(", ")}, got "${raw}"`);
  return raw as Strategy;
}

/** `type=STRATEGY,type=STRATEGY`: the strategy of each named entity type. */
function entityStrategiesFrom(env: Env, name: string): Record<string, Strategy> {
  const raw = stringFrom(env, name);
  const out: Record<string, Strategy> = {};
  if (raw === undefined) return out;
  for (const part of raw.split(",").map(p => p.trim()).filter(p => p.length > 0)) {
    const eq = part.lastIndexOf("=");
    const type = part.slice(0, eq).trim();
    const strategy = part.slice(eq + 1).trim();
    if (eq <= 0 || !/^[A-Za-z0-9_.:-]{1,64}$/.test(type) || !ALL_STRATEGIES.includes(strategy as Strategy)) {
      throw new Error(`Configuration ${name} must be a comma list of <entityType>=<${ALL_STRATEGIES.join("|")}>, got "${part}"`);
    }
    Object.defineProperty(out, type, { value: strategy as Strategy, enumerable: true, writable: true, configurable: true });
  }
  return out;
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
    auditRetentionDays: intFrom(env, "AUDIT_RETENTION_DAYS", 2555, 1),
    auditAggregationWindowMs: intFrom(env, "AUDIT_AGGREGATION_WINDOW_MS", 60_000, 10),
    socketMaxPayloadBytes: intFrom(env, "SOCKET_MAX_PAYLOAD_BYTES", 5 * 1024, 1),
    jwtClockSkewSeconds: intFrom(env, "JWT_CLOCK_SKEW_SECONDS", 30, 0),
    jwtIssuer: listFrom(env, "JWT_ISSUER"),
    jwtAudience: listFrom(env, "JWT_AUDIENCE"),
    apiRateLimit: intFrom(env, "API_RATE_LIMIT", 600, 1),
    reconciliationDefaultStrategy: strategyFrom(env, "RECONCILIATION_DEFAULT_STRATEGY", Strategy.LAST_WRITE_WINS),
    reconciliationEntityStrategies: entityStrategiesFrom(env, "RECONCILIATION_ENTITY_STRATEGIES"),
    reconciliationMaxQueueSize: intFrom(env, "RECONCILIATION_MAX_QUEUE_SIZE", 10_000, 1),
    reconciliationProcessingTimeoutMs: intFrom(env, "RECONCILIATION_PROCESSING_TIMEOUT", 30_000, 100),
    reconciliationRateLimit: intFrom(env, "RECONCILIATION_RATE_LIMIT", 10, 1),
    reconciliationMaxDeltas: intFrom(env, "RECONCILIATION_MAX_DELTAS", 1000, 0),
    reconciliationHistorySize: intFrom(env, "RECONCILIATION_HISTORY_SIZE", 10_000, 0),
    reconciliationSnapshotLimit: intFrom(env, "RECONCILIATION_SNAPSHOT_LIMIT", 1000, 1),
    reconciliationOperationRetentionMs: intFrom(env, "RECONCILIATION_OPERATION_RETENTION", 7 * 24 * 60 * 60 * 1000, 1000),
    reconciliationMaxRequestBytes: intFrom(env, "RECONCILIATION_MAX_REQUEST_BYTES", 16 * 1024 * 1024, 1024),
    healthPort: stringFrom(env, "HEALTH_PORT") === undefined ? undefined : intFrom(env, "HEALTH_PORT", 0, 0),
    wsRawPath: stringFrom(env, "WS_RAW_PATH") ?? "/ws",
    maxConnectionsPerUser: intFrom(env, "MAX_CONNECTIONS", 10, 1),
    wsRawRateLimit: intFrom(env, "WS_RAW_RATE_LIMIT", 100, 1),
    pollV1RateLimit: intFrom(env, "POLL_V1_RATE_LIMIT", 30, 1),
    shutdownTimeoutMs: intFrom(env, "SHUTDOWN_TIMEOUT_MS", 30_000, 1000),
    wsMaxBufferedMessages: intFrom(env, "WS_MAX_BUFFERED_MESSAGES", 1000, 1),
    wsMaxBufferedBytes: intFrom(env, "WS_MAX_BUFFERED_BYTES", 8 * 1024 * 1024, 1024),
    ...overrides
  };
  if (!/^\/[A-Za-z0-9_.~\/-]*$/.test(config.wsRawPath) || config.wsRawPath === config.wsPath || config.wsRawPath.startsWith(`${config.wsPath.replace(/\/$/, "")}/`)) {
    throw new Error(`WS_RAW_PATH must be a path starting with "/" outside WS_PATH, got "${config.wsRawPath}"`);
  }
  if (config.redisUrl && !/^rediss?:\/\//.test(config.redisUrl)) {
    throw new Error(`REDIS_URL must be a redis:// or rediss:// URL, got "${config.redisUrl}"`);
  }
  if (config.healthPort !== undefined && config.healthPort > 65535) {
    throw new Error(`Configuration HEALTH_PORT must be a TCP port (0-65535), got "${config.healthPort}"`);
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
