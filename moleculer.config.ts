import path from "node:path";
import type { BrokerOptions } from "moleculer";
import { channelMiddlewares } from "./lib/channels";
import { loadConfig } from "./lib/config";
import { NodeHealthMiddleware } from "./lib/node-health";

/**
 * Broker options from the environment, following the Moleculer runner's convention:
 * TRANSPORTER (none = one process), NODEID, NAMESPACE, LOGLEVEL; SERVICES picks the services of
 * this node (comma list, default: all of them). The Channels middleware (consumer groups of bus
 * events, lib/channels.ts) is configured from the same environment as the services.
 */
const env = process.env;

// The runner resolves SERVICES names against SERVICEDIR; point it at the compiled services.
if (!env.SERVICEDIR) env.SERVICEDIR = path.join(__dirname, "services");

/** Broker options shared by the runner, tests and benchmarks. */
export function brokerOptions(overrides: Partial<BrokerOptions> = {}): BrokerOptions {
  const config = loadConfig(env);
  const transporter = env.TRANSPORTER && env.TRANSPORTER.trim() !== "" ? env.TRANSPORTER : null;
  return {
    namespace: env.NAMESPACE ?? "",
    nodeID: env.NODEID || undefined,
    transporter,
    logger: {
      type: "Console",
      options: { formatter: env.LOG_FORMAT === "text" ? "short" : "json", colors: false, moduleColors: false, autoPadding: false }
    },
    logLevel: (env.LOGLEVEL ?? env.LOG_LEVEL ?? "info") as BrokerOptions["logLevel"],
    // Every product error crosses nodes with its code, type and data intact.
    errorRegenerator: undefined,
    requestTimeout: 10_000,
    // Callers fail fast while a service has no live node instead of queueing behind it.
    retryPolicy: { enabled: false },
    circuitBreaker: {
      enabled: true,
      threshold: 0.5,
      minRequestCount: 20,
      windowTime: 60,
      halfOpenTime: 10_000,
      check: (err: Error & { code?: number }) => err && (err.code === undefined || err.code >= 500)
    },
    bulkhead: { enabled: true, concurrency: 200, maxQueueSize: 2000 },
    registry: { strategy: "RoundRobin", preferLocal: true },
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    tracking: { enabled: true, shutdownTimeout: 10_000 },
    metrics: { enabled: env.METRICS === "true" },
    tracing: { enabled: env.TRACING === "true" },
    // One adapter per broker: each call builds new middlewares. HEALTH_PORT adds the probe server
    // of nodes without the gateway (lib/node-health.ts).
    middlewares: [
      ...channelMiddlewares(config),
      ...(config.healthPort !== undefined ? [NodeHealthMiddleware({ port: config.healthPort, host: config.wsHost })] : [])
    ],
    ...overrides
  };
}

export default brokerOptions();
