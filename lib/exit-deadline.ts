import type { Middleware, ServiceBroker } from "moleculer";

/**
 * Bounds a node's shutdown: once the broker starts stopping (SIGTERM, SIGINT), the process exits
 * with code 1 if the stop has not finished within `timeoutMs` (SHUTDOWN_TIMEOUT_MS); when it
 * finishes, the runner exits with 0. Used by the runner's configuration only: in tests and
 * embedded brokers nothing may call `process.exit`.
 */
export function ExitDeadlineMiddleware(timeoutMs: number, exit: (code: number) => void = code => process.exit(code)): Middleware {
  let timer: NodeJS.Timeout | undefined;
  return {
    name: "ExitDeadline",
    stopping(broker: ServiceBroker) {
      timer = setTimeout(() => {
        broker.logger.error("Shutdown did not finish within SHUTDOWN_TIMEOUT_MS; exiting", { timeoutMs });
        exit(1);
      }, timeoutMs);
      timer.unref();
    },
    stopped() {
      clearTimeout(timer);
    }
  } as unknown as Middleware;
}
