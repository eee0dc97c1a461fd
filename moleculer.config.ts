import path from "node:path";
import type { BrokerOptions } from "moleculer";
import { channelMiddlewares } from "./lib/channels";
import { loadConfig } from "./lib/config";
import { auditMiddleware } from "./lib/audit-trail";
import { auditReplCommand } from "./lib/audit-repl";
import { NodeHealthMiddleware } from "./lib/node-health";
import { ExitDeadlineMiddleware } from "./lib/exit-deadline";
import { TransporterWatchMiddleware } from "./lib/transporter-status";
import { tuneV8 } from "./lib/v8-tuning";

/**
 * Broker options from the environment, following the Moleculer runner's convention:
 * TRANSPORTER (none = one process), NODEID, NAMESPACE, LOGLEVEL; SERVICES picks the services of
 * this node (comma list, default: all of them). The Channels middleware (consumer groups of bus
 * events, lib/channels.ts) is configured from the same environment as the services.
 */
const env = process.env;

// Before any service allocates (lib/v8-tuning.ts).
tuneV8(env);

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
    // Fail fast (README "Failure handling"): a call to a service with no live node is refused at
    // once (ServiceNotAvailable); one whose node died mid-call is rejected when the node is declared
    // gone (heartbeatTimeout: within 6-13 s with a check every 6 s), at most after requestTimeout.
    requestTimeout: 10_000,
    // No retries: a retry after a timeout could apply a non-idempotent call twice; callers that
    // can retry safely (idempotent eventIds and messageIds) do so themselves.
    retryPolicy: { enabled: false },
    // An endpoint that keeps failing (5xx, timeouts) is skipped for 10 s while another node, or a
    // fast ServiceNotAvailable, answers instead of another 10 s timeout.
    circuitBreaker: {
      enabled: true,
      threshold: 0.5,
      minRequestCount: 20,
      windowTime: 60,
      halfOpenTime: 10_000,
      check: (err: Error & { code?: number }) => err && (err.code === undefined || err.code >= 500)
    },
    // A slow dependency cannot pile up unbounded work: 200 concurrent calls per action, 2000 queued,
    // beyond that QueueIsFull (retryable) at once.
    bulkhead: { enabled: true, concurrency: 200, maxQueueSize: 2000 },
    registry: { strategy: "RoundRobin", preferLocal: true },
    heartbeatInterval: 2,
    heartbeatTimeout: 6,
    // In-flight calls get up to a quarter of SHUTDOWN_TIMEOUT_MS to finish when the node stops
    // (Moleculer waits twice: for calls made by the node, then for each service's own).
    tracking: { enabled: true, shutdownTimeout: Math.floor(config.shutdownTimeoutMs / 4) },
    metrics: { enabled: env.METRICS === "true" },
    tracing: { enabled: env.TRACING === "true" },
    // One adapter per broker: each call builds new middlewares. HEALTH_PORT adds the probe server
    // of nodes without the gateway (lib/node-health.ts); the audit reporter aggregates and spools
    // this node's security records (lib/audit-trail.ts).
    middlewares: [
      ...channelMiddlewares(config),
      TransporterWatchMiddleware(),
      auditMiddleware(config),
      ...(config.healthPort !== undefined ? [NodeHealthMiddleware({ port: config.healthPort, host: config.wsHost })] : [])
    ],
    // `audit verify <tenantId>` in `npm run repl` (lib/audit-repl.ts).
    replCommands: [auditReplCommand],
    ...overrides
  };
}

/** The runner's options: as above, and the process exits within SHUTDOWN_TIMEOUT_MS of a stop signal. */
const runnerOptions = brokerOptions();
runnerOptions.middlewares = [...(runnerOptions.middlewares ?? []), ExitDeadlineMiddleware(loadConfig(env).shutdownTimeoutMs)];
export default runnerOptions;
