import jwt from "jsonwebtoken";
import { createTokenVerifier } from "../../lib/auth";
import { DEV_JWT_SECRET, loadConfig } from "../../lib/config";
import { rsaKeys } from "../helpers/tokens";

describe("loadConfig", () => {
  it("defaults match seed 001", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      wsPort: 3000,
      wsPath: "/socket.io",
      wsMaxConnections: 50000,
      wsMessageRateLimit: 100,
      wsMaxPayloadBytes: 65536,
      presenceTtlSeconds: 60
    });
  });

  it("defaults the remaining knobs to an embedded, unconfigured deployment", () => {
    expect(loadConfig({})).toEqual({
      wsPort: 3000,
      wsHost: "0.0.0.0",
      wsPath: "/socket.io",
      wsPingIntervalMs: 30000,
      wsPingTimeoutMs: 60000,
      wsMaxConnections: 50000,
      wsMessageRateLimit: 100,
      wsMaxPayloadBytes: 65536,
      wsMaxRoomsPerConnection: 1000,
      presenceTtlSeconds: 60,
      redisUrl: undefined,
      redisKeyPrefix: "pf2",
      jwtSecret: DEV_JWT_SECRET,
      jwtPublicKey: undefined,
      corsOrigin: undefined,
      eventBusRetentionMs: 604800000,
      eventBusMaxEventsPerTenant: 100000,
      eventBusMaxRetries: 3,
      eventBusStreamName: "webwaka:events",
      eventBusConsumerGroup: "webwaka-consumers",
      eventBusRetryDelayMs: 1000,
      eventBusStreamMaxLen: 1000000,
      eventBusPublishRateLimit: 1000,
      pollRateLimit: 60,
      databaseUrl: undefined,
      dataDir: "./data",
      auditRetentionDays: 2555,
      auditAggregationWindowMs: 60000,
      socketMaxPayloadBytes: 5120,
      jwtClockSkewSeconds: 30,
      jwtIssuer: undefined,
      jwtAudience: undefined,
      apiRateLimit: 600,
      reconciliationDefaultStrategy: "LAST_WRITE_WINS",
      reconciliationEntityStrategies: {},
      reconciliationMaxQueueSize: 10000,
      reconciliationProcessingTimeoutMs: 30000,
      reconciliationRateLimit: 10,
      reconciliationMaxDeltas: 1000,
      reconciliationHistorySize: 10000,
      reconciliationSnapshotLimit: 1000,
      reconciliationOperationRetentionMs: 604800000,
      reconciliationMaxRequestBytes: 16777216,
      wsRawPath: "/ws",
      maxConnectionsPerUser: 10,
      wsRawRateLimit: 100,
      pollV1RateLimit: 30,
      shutdownTimeoutMs: 30000,
      wsMaxBufferedMessages: 1000,
      wsMaxBufferedBytes: 8388608
    });
  });

  it("reads every variable from the given environment", () => {
    const config = loadConfig({
      WS_PORT: "8080",
      WS_HOST: "127.0.0.1",
      WS_PATH: "/rt",
      WS_PING_INTERVAL: "1000",
      WS_PING_TIMEOUT: "2000",
      WS_MAX_CONNECTIONS: "10",
      WS_MESSAGE_RATE_LIMIT: "5",
      WS_MAX_PAYLOAD_BYTES: "1024",
      WS_MAX_ROOMS_PER_CONNECTION: "3",
      PRESENCE_TTL_SECONDS: "15",
      REDIS_URL: "redis://cache:6379",
      REDIS_KEY_PREFIX: "staging",
      JWT_SECRET: "s3cret",
      CORS_ORIGIN: "https://app.example",
      EVENT_BUS_RETENTION_PERIOD: "60000",
      EVENT_BUS_MAX_EVENTS_PER_TENANT: "50",
      EVENT_BUS_MAX_RETRIES: "5",
      EVENT_BUS_STREAM_NAME: "staging:events",
      EVENT_BUS_CONSUMER_GROUP: "billing",
      EVENT_BUS_RETRY_DELAY_MS: "250",
      EVENT_BUS_STREAM_MAX_LEN: "5000",
      EVENT_BUS_PUBLISH_RATE_LIMIT: "10",
      POLL_RATE_LIMIT: "7",
      DATABASE_URL: "postgres://db/pf2",
      DATA_DIR: "/var/lib/pf2",
      AUDIT_RETENTION_DAYS: "3650",
      AUDIT_AGGREGATION_WINDOW_MS: "5000",
      SOCKET_MAX_PAYLOAD_BYTES: "2048",
      JWT_CLOCK_SKEW_SECONDS: "5",
      JWT_ISSUER: "https://id.example, https://id2.example",
      JWT_AUDIENCE: "pf2",
      API_RATE_LIMIT: "120",
      RECONCILIATION_DEFAULT_STRATEGY: "MERGE",
      RECONCILIATION_ENTITY_STRATEGIES: "invoice=SERVER_WINS, note:v2=MANUAL",
      RECONCILIATION_MAX_QUEUE_SIZE: "100",
      RECONCILIATION_PROCESSING_TIMEOUT: "5000",
      RECONCILIATION_RATE_LIMIT: "3",
      RECONCILIATION_MAX_DELTAS: "20",
      RECONCILIATION_HISTORY_SIZE: "50",
      RECONCILIATION_SNAPSHOT_LIMIT: "10",
      RECONCILIATION_OPERATION_RETENTION: "86400000",
      RECONCILIATION_MAX_REQUEST_BYTES: "65536",
      WS_RAW_PATH: "/raw",
      MAX_CONNECTIONS: "4",
      WS_RAW_RATE_LIMIT: "50",
      POLL_V1_RATE_LIMIT: "12",
      SHUTDOWN_TIMEOUT_MS: "5000",
      WS_MAX_BUFFERED_MESSAGES: "50",
      WS_MAX_BUFFERED_BYTES: "65536"
    });
    expect(config).toEqual({
      wsPort: 8080,
      wsHost: "127.0.0.1",
      wsPath: "/rt",
      wsPingIntervalMs: 1000,
      wsPingTimeoutMs: 2000,
      wsMaxConnections: 10,
      wsMessageRateLimit: 5,
      wsMaxPayloadBytes: 1024,
      wsMaxRoomsPerConnection: 3,
      presenceTtlSeconds: 15,
      redisUrl: "redis://cache:6379",
      redisKeyPrefix: "staging",
      jwtSecret: "s3cret",
      jwtPublicKey: undefined,
      corsOrigin: "https://app.example",
      eventBusRetentionMs: 60000,
      eventBusMaxEventsPerTenant: 50,
      eventBusMaxRetries: 5,
      eventBusStreamName: "staging:events",
      eventBusConsumerGroup: "billing",
      eventBusRetryDelayMs: 250,
      eventBusStreamMaxLen: 5000,
      eventBusPublishRateLimit: 10,
      pollRateLimit: 7,
      databaseUrl: "postgres://db/pf2",
      dataDir: "/var/lib/pf2",
      auditRetentionDays: 3650,
      auditAggregationWindowMs: 5000,
      socketMaxPayloadBytes: 2048,
      jwtClockSkewSeconds: 5,
      jwtIssuer: ["https://id.example", "https://id2.example"],
      jwtAudience: ["pf2"],
      apiRateLimit: 120,
      reconciliationDefaultStrategy: "MERGE",
      reconciliationEntityStrategies: { invoice: "SERVER_WINS", "note:v2": "MANUAL" },
      reconciliationMaxQueueSize: 100,
      reconciliationProcessingTimeoutMs: 5000,
      reconciliationRateLimit: 3,
      reconciliationMaxDeltas: 20,
      reconciliationHistorySize: 50,
      reconciliationSnapshotLimit: 10,
      reconciliationOperationRetentionMs: 86400000,
      reconciliationMaxRequestBytes: 65536,
      wsRawPath: "/raw",
      maxConnectionsPerUser: 4,
      wsRawRateLimit: 50,
      pollV1RateLimit: 12,
      shutdownTimeoutMs: 5000,
      wsMaxBufferedMessages: 50,
      wsMaxBufferedBytes: 65536
    });
  });

  it.each([
    ["RECONCILIATION_DEFAULT_STRATEGY", "FIRST_WRITE_WINS"],
    ["RECONCILIATION_ENTITY_STRATEGIES", "document"],
    ["RECONCILIATION_ENTITY_STRATEGIES", "document=merge"],
    ["RECONCILIATION_ENTITY_STRATEGIES", "bad type=MERGE"],
    ["RECONCILIATION_MAX_QUEUE_SIZE", "0"]
  ])("refuses %s=%s", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it("treats blank values as unset", () => {
    const config = loadConfig({ WS_PORT: "", WS_PATH: "   ", REDIS_URL: " ", JWT_SECRET: "" });
    expect(config.wsPort).toBe(3000);
    expect(config.wsPath).toBe("/socket.io");
    expect(config.redisUrl).toBeUndefined();
    expect(config.jwtSecret).toBe(DEV_JWT_SECRET);
  });

  it("reads JWT_ISSUER / JWT_AUDIENCE as comma lists and treats a blank list as unset", () => {
    expect(loadConfig({ JWT_ISSUER: " , ", JWT_AUDIENCE: "" })).toMatchObject({ jwtIssuer: undefined, jwtAudience: undefined });
    expect(loadConfig({ JWT_AUDIENCE: "a,,b " }).jwtAudience).toEqual(["a", "b"]);
  });

  it("accepts WS_PORT 0 (any free port)", () => {
    expect(loadConfig({ WS_PORT: "0" }).wsPort).toBe(0);
  });

  it.each([
    ["WS_PORT", "abc"],
    ["WS_PORT", "30.5"],
    ["WS_PORT", "-1"],
    ["WS_MAX_CONNECTIONS", "0"],
    ["WS_MAX_CONNECTIONS", "1e400"],
    ["WS_MESSAGE_RATE_LIMIT", "ten"],
    ["WS_MAX_PAYLOAD_BYTES", "64k"],
    ["PRESENCE_TTL_SECONDS", "0"],
    ["WS_PING_INTERVAL", "NaN"],
    ["EVENT_BUS_RETRY_DELAY_MS", "5"],
    ["EVENT_BUS_STREAM_MAX_LEN", "10"],
    ["EVENT_BUS_STREAM_NAME", "has spaces"],
    ["EVENT_BUS_CONSUMER_GROUP", "a*b"],
    ["AUDIT_RETENTION_DAYS", "0"],
    ["AUDIT_RETENTION_DAYS", "7y"],
    ["AUDIT_AGGREGATION_WINDOW_MS", "5"],
    ["DATABASE_URL", "mysql://db/rt"],
    ["JWT_CLOCK_SKEW_SECONDS", "-1"],
    ["API_RATE_LIMIT", "0"],
    ["MAX_CONNECTIONS", "0"],
    ["WS_RAW_RATE_LIMIT", "x"],
    ["POLL_V1_RATE_LIMIT", "0"],
    ["WS_RAW_PATH", "ws"],
    ["WS_RAW_PATH", "/socket.io"],
    ["WS_RAW_PATH", "/socket.io/raw"],
    ["WS_RAW_PATH", "/w s"]
  ])("refuses %s=%j", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it("refuses to start in production without a JWT key", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/JWT_SECRET|JWT_PUBLIC_KEY/);
    expect(() => loadConfig({ NODE_ENV: "production", JWT_SECRET: "  " })).toThrow();
  });

  it("starts in production with either key, and never adds the dev secret there", () => {
    expect(loadConfig({ NODE_ENV: "production", JWT_SECRET: "prod-secret" }).jwtSecret).toBe("prod-secret");
    const withKey = loadConfig({ NODE_ENV: "production", JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----" });
    expect(withKey.jwtSecret).toBeUndefined();
    expect(loadConfig({ NODE_ENV: "production" }, { jwtSecret: "from-override" }).jwtSecret).toBe("from-override");
  });

  it("adds the dev secret only when no key at all is configured", () => {
    expect(loadConfig({ NODE_ENV: "development" }).jwtSecret).toBe(DEV_JWT_SECRET);
    expect(loadConfig({ JWT_PUBLIC_KEY: "key" }).jwtSecret).toBeUndefined();
  });

  it("converts literal \\n escapes of JWT_PUBLIC_KEY into newlines, giving a usable key", () => {
    const { publicKey, privateKey } = rsaKeys();
    const escaped = publicKey.trim().replace(/\n/g, "\\n");
    expect(escaped).not.toContain("\n");
    const config = loadConfig({ JWT_PUBLIC_KEY: escaped });
    expect(config.jwtPublicKey).toBe(publicKey.trim());
    const token = jwt.sign({ tenantId: "t", userId: "u" }, privateKey, { algorithm: "RS256" });
    expect(createTokenVerifier(config).verify(token)).toMatchObject({ tenantId: "t", userId: "u" });
  });

  it("keeps a PEM with real newlines as is", () => {
    const { publicKey } = rsaKeys();
    expect(loadConfig({ JWT_PUBLIC_KEY: publicKey }).jwtPublicKey).toBe(publicKey);
  });

  it("lets overrides win over the environment", () => {
    const config = loadConfig({ WS_PORT: "8080", REDIS_URL: "redis://a" }, { wsPort: 0, redisUrl: undefined, wsHost: "127.0.0.1" });
    expect(config.wsPort).toBe(0);
    expect(config.redisUrl).toBeUndefined();
    expect(config.wsHost).toBe("127.0.0.1");
  });

  it("does not read process.env when an environment is given", () => {
    const saved = process.env.WS_PORT;
    process.env.WS_PORT = "9999";
    try {
      expect(loadConfig({}).wsPort).toBe(3000);
    } finally {
      if (saved === undefined) delete process.env.WS_PORT;
      else process.env.WS_PORT = saved;
    }
  });
});
