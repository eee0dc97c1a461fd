import type { Middleware, ServiceBroker } from "moleculer";

/**
 * Bounds a node's shutdown: once the broker starts stopping (SIGTERM, SIGINT), the process exits
 * with code 1 if it has not exited by itself within `timeoutMs` (SHUTDOWN_TIMEOUT_MS). Used by the
 * runner's configuration only: in tests and embedded brokers nothing may call `process.exit`.
 */
export function ExitDeadlineMiddleware(timeoutMs: number, exit: (code: number) => void = code => process.exit(code)): Middleware {
  return {
    name: "ExitDeadline",
    stopping(broker: ServiceBroker) {
      const timer = setTimeout(() => {
        broker.logger.error("Shutdown did not finish within SHUTDOWN_TIMEOUT_MS; exiting", { timeoutMs });
        exit(1);
      }, timeoutMs);
      timer.unref();
    }
  } as unknown as Middleware;
}
