import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Middleware, ServiceBroker } from "moleculer";

/**
 * `/health/live` and `/health/ready` for nodes that have no HTTP server of their own (presence,
 * rooms, eventbus, ... — only the gateway serves HTTP), so an orchestrator can probe every node the
 * same way. Enabled by HEALTH_PORT; a broker middleware, so it covers whatever SERVICES a node runs.
 *
 * - live: 200 while the process answers (from the start of `broker.start()` to the end of `stop()`).
 * - ready: 200 once the broker has started and, with a transporter, while it is connected to it;
 *   503 before that, while the transporter is disconnected, and from the moment the node begins to
 *   stop (SIGTERM).
 *
 * Liveness never depends on the transporter: restarting a node does not bring NATS back.
 */
export interface NodeHealthOptions {
  port: number;
  host: string;
}

export interface NodeHealth {
  ready: boolean;
  body: { status: "ready" | "not_ready"; nodeID: string; transporter: "none" | "connected" | "disconnected"; services: string[]; timestamp: string };
}

/** The readiness of a broker, as `/health/ready` reports it. */
export function nodeReadiness(broker: ServiceBroker): NodeHealth {
  const transit = broker.transit as (typeof broker.transit & { tx?: { connected?: boolean } }) | undefined;
  const transporter = !transit ? "none" : transit.connected && transit.tx?.connected !== false ? "connected" : "disconnected";
  const state = broker as ServiceBroker & { started?: boolean; stopping?: boolean };
  const ready = state.started === true && state.stopping !== true && transporter !== "disconnected";
  return {
    ready,
    body: {
      status: ready ? "ready" : "not_ready",
      nodeID: broker.nodeID,
      transporter,
      services: broker.services.map(svc => svc.fullName).filter(name => !name.startsWith("$")),
      timestamp: new Date().toISOString()
    }
  };
}

export type NodeHealthMiddleware = Middleware & {
  /** The bound address while the server listens (port 0 picks a free one). */
  address(): AddressInfo | null;
};

/** The broker middleware serving the probes on `options.port`. */
export function NodeHealthMiddleware(options: NodeHealthOptions): NodeHealthMiddleware {
  let server: Server | undefined;
  let broker: ServiceBroker | undefined;

  function respond(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? "/").split("?")[0].replace(/\/+$/, "");
    let status = 404;
    let body: Record<string, unknown> = { error: "Not found" };
    if (req.method !== "GET" && req.method !== "HEAD") {
      status = 405;
      body = { error: "Method not allowed" };
    } else if (path === "/health/live" && broker) {
      status = 200;
      body = { status: "ok", nodeID: broker.nodeID, timestamp: new Date().toISOString() };
    } else if (path === "/health/ready" && broker) {
      const health = nodeReadiness(broker);
      status = health.ready ? 200 : 503;
      body = health.body;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : text);
  }

  const middleware = {
    name: "NodeHealth",

    address(): AddressInfo | null {
      const address = server?.address();
      return address && typeof address === "object" ? address : null;
    },

    /** Listens before the services start, so liveness holds while they wait for NATS or Redis. */
    starting(b: ServiceBroker): Promise<void> {
      broker = b;
      if (server) return Promise.resolve();
      const listening = createServer(respond);
      // Probes are short; a stuck client must not keep the node from stopping.
      listening.keepAliveTimeout = 1000;
      listening.requestTimeout = 5000;
      server = listening;
      return new Promise((resolve, reject) => {
        listening.once("error", reject);
        listening.listen(options.port, options.host, () => {
          listening.off("error", reject);
          b.logger.info(`Health probes on http://${options.host}:${(listening.address() as AddressInfo).port}/health/{live,ready}`);
          resolve();
        });
      });
    },

    stopped(): Promise<void> {
      const closing = server;
      server = undefined;
      if (!closing) return Promise.resolve();
      return new Promise(resolve => {
        closing.close(() => resolve());
        closing.closeAllConnections();
      });
    }
  };
  return middleware as unknown as NodeHealthMiddleware;
}
