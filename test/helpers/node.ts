import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Server } from "node:http";
import { ServiceBroker, type BrokerOptions, type Service } from "moleculer";
import { channelMiddlewares } from "../../lib/channels";
import { loadConfig, type Config } from "../../lib/config";
import { createGatewayService } from "../../services/gateway.service";
import { createPresenceService } from "../../services/presence.service";
import { createRoomsService } from "../../services/rooms.service";
import { createEventBusService } from "../../services/eventbus.service";
import { createAuditService } from "../../services/audit.service";
import { auditMiddleware } from "../../lib/audit-trail";
import { createConversationsService } from "../../services/conversations.service";
import { createPushService } from "../../services/push.service";
import { createReconciliationService } from "../../services/reconciliation.service";
import { TEST_SECRET } from "./tokens";

export const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

export type ServiceName = "gateway" | "presence" | "rooms" | "eventbus" | "conversations" | "push" | "reconciliation" | "audit";

export interface TestNode {
  broker: ServiceBroker;
  config: Config;
  /** HTTP port of the gateway (REST and Socket.IO), when the node runs one. */
  port: number;
  url: string;
  stop(): Promise<void>;
}

export interface NodeOptions {
  services?: ServiceName[];
  config?: Partial<Config>;
  broker?: Partial<BrokerOptions>;
}

/**
 * Starts a real broker with real services; the gateway listens on a free port of 127.0.0.1. Like
 * moleculer.config.ts, the broker gets the event-bus channel middlewares and the audit reporter
 * for the node's config. Unless the test names a `dataDir`, the node gets a fresh temporary one
 * (removed by stop()), so tests never write ./data.
 */
export async function startNode(options: NodeOptions = {}): Promise<TestNode> {
  const ownDataDir = options.config?.dataDir === undefined ? mkdtempSync(path.join(tmpdir(), "pf2-node-")) : undefined;
  const config = loadConfig({}, { jwtSecret: TEST_SECRET, wsPort: 0, wsHost: "127.0.0.1", ...(ownDataDir ? { dataDir: ownDataDir } : {}), ...options.config });
  const broker = new ServiceBroker({
    logger: false,
    transporter: null,
    requestTimeout: 5000,
    heartbeatInterval: 1,
    heartbeatTimeout: 4,
    middlewares: [...channelMiddlewares(config), auditMiddleware(config)],
    ...options.broker
  });
  const factories = {
    gateway: createGatewayService,
    presence: createPresenceService,
    rooms: createRoomsService,
    eventbus: createEventBusService,
    conversations: createConversationsService,
    push: createPushService,
    reconciliation: createReconciliationService,
    audit: createAuditService
  };
  for (const name of options.services ?? (Object.keys(factories) as ServiceName[])) {
    broker.createService(factories[name](config));
  }
  await broker.start();
  let port = 0;
  const gateway = broker.getLocalService("gateway") as (Service & { server?: Server; joinedAt?: number }) | undefined;
  if (gateway?.server) port = (gateway.server.address() as AddressInfo).port;
  // With a transporter a gateway takes clients one heartbeat after start (it has joined the cluster).
  if (gateway?.joinedAt !== undefined && Number.isFinite(gateway.joinedAt)) {
    await new Promise(resolve => setTimeout(resolve, Math.max(0, gateway.joinedAt! - Date.now())));
  }
  return {
    broker,
    config,
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      await broker.stop();
      if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
    }
  };
}
