import { Errors, type Context, type Middleware, type ServiceBroker } from "moleculer";

/**
 * Whether this node is connected to the transporter, for `/health`, and a quick re-forming of the
 * cluster when it reconnects.
 *
 * Moleculer's NATS transporter (nats.js v2) reconnects by itself but tells Moleculer nothing: its
 * `connected` flag stays true while the server is gone, and the cluster re-forms only when the next
 * heartbeats arrive. Here the client's status stream is followed: a disconnect is reported at once,
 * and on reconnect the node announces itself and asks the others for theirs.
 *
 * While the transporter is down, calls to remote nodes are refused at once (ServiceNotAvailable)
 * instead of waiting for their timeout ({@link TransporterWatchMiddleware}).
 */
export interface TransporterStatus {
  connected: boolean;
  /** When the last change was seen (ms since epoch). */
  since: number;
  /** Reconnections since start. */
  reconnects: number;
}

interface NatsClientLike {
  status(): AsyncIterable<{ type: string; data?: unknown }>;
  isClosed(): boolean;
  flush(): Promise<void>;
}

interface TransitLike {
  connected: boolean;
  tx?: { client?: unknown };
}

interface DiscovererLike {
  sendLocalNodeInfo(): unknown;
  discoverAllNodes(): unknown;
}

const watched = new WeakMap<ServiceBroker, TransporterStatus>();
export interface TransporterListener {
  /** The node lost its transporter's server (it keeps trying to reconnect). */
  disconnect?(): void;
  /** It is connected again and has announced itself to the cluster. */
  reconnect?(): void;
}

const listeners = new WeakMap<ServiceBroker, TransporterListener[]>();

/** Follows this node's transporter losing and regaining its server; returns the unsubscribe function. */
export function onTransporterChange(broker: ServiceBroker, listener: TransporterListener): () => void {
  listeners.set(broker, [...(listeners.get(broker) ?? []), listener]);
  return () => listeners.set(broker, (listeners.get(broker) ?? []).filter(l => l !== listener));
}

function notify(broker: ServiceBroker, what: keyof TransporterListener) {
  for (const listener of listeners.get(broker) ?? []) {
    try {
      listener[what]?.();
    } catch (err) {
      broker.logger.warn("Transporter listener failed", { error: (err as Error).message });
    }
  }
}

function natsClientOf(broker: ServiceBroker): NatsClientLike | undefined {
  const client = (broker.transit as unknown as TransitLike | undefined)?.tx?.client as Partial<NatsClientLike> | undefined;
  return client && typeof client.status === "function" && typeof client.isClosed === "function" ? (client as NatsClientLike) : undefined;
}

/** Starts following the transporter of a started broker; idempotent. */
export function watchTransporter(broker: ServiceBroker): void {
  if (!broker.transit || watched.has(broker)) return;
  const status: TransporterStatus = { connected: true, since: Date.now(), reconnects: 0 };
  watched.set(broker, status);
  countInfoAsHeartbeat(broker);
  const client = natsClientOf(broker);
  if (!client) return;
  void (async () => {
    for await (const event of client.status()) {
      if (event.type === "disconnect") {
        status.connected = false;
        status.since = Date.now();
        broker.logger.warn("Transporter disconnected; reconnecting", { server: String(event.data ?? "") });
        // Replies sent while this node is away are lost (core NATS keeps nothing for it): calls in
        // flight to other nodes fail now instead of at their timeout.
        rejectRemoteCalls(broker);
        notify(broker, "disconnect");
      } else if (event.type === "reconnect") {
        status.connected = true;
        status.since = Date.now();
        status.reconnects += 1;
        broker.logger.info("Transporter reconnected; re-announcing this node", { server: String(event.data ?? "") });
        const discoverer = (broker.registry as unknown as { discoverer: DiscovererLike }).discoverer;
        try {
          await discoverer.sendLocalNodeInfo();
          await discoverer.discoverAllNodes();
        } catch (err) {
          broker.logger.warn("Re-announcing after a reconnect failed", { error: (err as Error).message });
        }
        notify(broker, "reconnect");
      }
    }
  })().catch((err: Error) => broker.logger.warn("Transporter status stream ended", { error: err.message }));
}

interface RegistryNodeLike {
  local: boolean;
  lastHeartbeatTime: number;
}

/**
 * A node's INFO packet proves it is alive as much as its heartbeat does, but Moleculer refreshes
 * the heartbeat clock only for a node it had already declared gone. After an outage every node
 * re-announces itself (INFO) while its last heartbeat is still from before the outage, so the
 * next heartbeat check (every heartbeatTimeout) could evict a node that has just come back, and
 * its services would be unavailable until its next heartbeat made this node ask again (measured:
 * a gateway evicted the services node 1.2 s after both had reconnected).
 */
function countInfoAsHeartbeat(broker: ServiceBroker) {
  const localBus = (broker as unknown as { localBus?: { on(event: string, listener: (payload: { node?: RegistryNodeLike }) => void): void } }).localBus;
  localBus?.on("$node.updated", ({ node }) => {
    if (node && !node.local) node.lastHeartbeatTime = Math.round(process.uptime());
  });
}

function rejectRemoteCalls(broker: ServiceBroker) {
  const transit = broker.transit as unknown as { removePendingRequestByNodeID?(nodeID: string): void };
  const nodes = (broker.registry as unknown as { nodes: { toArray(): Array<{ id: string; local: boolean }> } }).nodes.toArray();
  for (const node of nodes) if (!node.local) transit.removePendingRequestByNodeID?.(node.id);
}

/** The transporter's state as this node sees it; undefined without a transporter. */
export function transporterStatus(broker: ServiceBroker): TransporterStatus | undefined {
  const transit = broker.transit as unknown as TransitLike | undefined;
  if (!transit) return undefined;
  const client = natsClientOf(broker);
  const known = watched.get(broker);
  const connected = transit.connected && (known ? known.connected : true) && !(client?.isClosed() ?? false);
  return { connected, since: known?.since ?? 0, reconnects: known?.reconnects ?? 0 };
}

/**
 * Resolves once the transporter's server has received everything this node sent before the call
 * (NATS: a PING/PONG round trip); rejects after `timeoutMs` or while disconnected. Without a
 * transporter, or with one that has no such notion, resolves at once.
 */
/**
 * One flush for every caller of the same event-loop turn: a flush issued after all of their
 * publishes confirms each of them, so a burst of messages costs one round trip to NATS, not one each.
 */
const pendingFlushes = new WeakMap<ServiceBroker, Promise<void>>();

export function flushTransporterSoon(broker: ServiceBroker, timeoutMs: number): Promise<void> {
  let pending = pendingFlushes.get(broker);
  if (!pending) {
    pending = new Promise<void>(resolve => setImmediate(resolve)).then(() => {
      pendingFlushes.delete(broker);
      return flushTransporter(broker, timeoutMs);
    });
    pendingFlushes.set(broker, pending);
  }
  return pending;
}

export async function flushTransporter(broker: ServiceBroker, timeoutMs: number): Promise<void> {
  if (!broker.transit) return;
  const status = transporterStatus(broker);
  if (status && !status.connected) throw new Error("Transporter is disconnected");
  const client = natsClientOf(broker);
  if (!client) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.flush(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Transporter flush timed out after ${timeoutMs} ms`)), timeoutMs);
      })
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** How often a NATS client retries a lost server (nats.js would wait 2 s). */
export const NATS_RECONNECT_WAIT_MS = 500;

/**
 * The middleware that follows the transporter of every node (moleculer.config.ts), refuses calls
 * to remote nodes at once while it is disconnected (they could only time out), and makes the NATS
 * client retry a lost server every {@link NATS_RECONNECT_WAIT_MS}.
 */
export function TransporterWatchMiddleware(): Middleware {
  let broker: ServiceBroker | undefined;
  return {
    name: "TransporterWatch",
    created(b: ServiceBroker) {
      broker = b;
      // The runner sets `transporter` from the TRANSPORTER string, so client options go here,
      // before the transporter connects.
      const tx = (b.transit as unknown as { tx?: { constructor: { name: string }; opts?: Record<string, unknown> } } | undefined)?.tx;
      if (tx?.opts && tx.constructor.name === "NatsTransporter" && tx.opts.reconnectTimeWait === undefined) tx.opts.reconnectTimeWait = NATS_RECONNECT_WAIT_MS;
    },
    started(b: ServiceBroker) {
      watchTransporter(b);
    },
    remoteAction(next: (ctx: Context) => Promise<unknown>, action: { name: string }) {
      return (ctx: Context) => {
        const status = broker ? transporterStatus(broker) : undefined;
        if (status && !status.connected) {
          return Promise.reject(new Errors.ServiceNotAvailableError({ action: action.name, nodeID: ctx.nodeID ?? undefined }));
        }
        return next(ctx);
      };
    }
  } as unknown as Middleware;
}
