/**
 * Who is online, per tenant, across every gateway node.
 *
 * A user is a set of connections (devices). The user is online from the first connection until
 * the last one is removed, either by a clean disconnect, by its gateway node leaving the cluster
 * (`removeNode`), or by its heartbeat growing older than the TTL (`expire`). While online, the
 * user may choose a status (`online`, `away`, or `offline` to appear invisible) with metadata.
 *
 * Every mutating method reports whether the user's visible presence changed, so exactly one
 * caller pushes each change even when several presence nodes share the store.
 */
export type PresenceStatus = "online" | "away" | "offline";

export interface Presence {
  userId: string;
  status: PresenceStatus;
  metadata?: Record<string, unknown>;
  /** Last activity (connect, status change, disconnect), ISO 8601; null for a user never seen. */
  lastSeen: string | null;
  /** Live connections (devices) of the user. */
  connections: number;
}

export interface ConnectionRef {
  tenantId: string;
  userId: string;
  connectionId: string;
}

/** What a gateway knows about one connection (device) when it registers it; every field optional. */
export interface DeviceInfo {
  /** When the connection was accepted (epoch ms); defaults to the `now` of its first `connect`. */
  connectedAt?: number;
  userAgent?: string;
  ip?: string;
}

/** One live connection of a user, as `connections` lists it. */
export interface ConnectionInfo {
  connectionId: string;
  nodeId: string;
  /** Epoch ms. */
  connectedAt: number;
  /** Last heartbeat (or the connect), epoch ms. */
  lastSeen: number;
  userAgent?: string;
  ip?: string;
}

export interface PresenceChange {
  tenantId: string;
  presence: Presence;
}

export interface PresenceStore {
  /**
   * Adds a connection. `changed` is true when the user came online. Idempotent per connectionId:
   * connecting a known connection again refreshes its heartbeat and replaces its device info.
   * `device` is kept with the connection until it is removed (listed by `connections`).
   */
  connect(tenantId: string, userId: string, connectionId: string, nodeId: string, now: number, device?: DeviceInfo): Promise<{ changed: boolean; presence: Presence }>;

  /** Removes a connection. `changed` is true when it was the user's last one (user went offline). */
  disconnect(tenantId: string, userId: string, connectionId: string, now: number): Promise<{ changed: boolean; presence: Presence }>;

  /**
   * Sets the chosen status of an online user. `changed` is false when the status and metadata are
   * unchanged or the user has no live connection (a disconnected user cannot come back by it).
   */
  setStatus(tenantId: string, userId: string, status: PresenceStatus, metadata: Record<string, unknown> | undefined, now: number): Promise<{ changed: boolean; presence: Presence }>;

  /**
   * Refreshes the heartbeat of live connections. Returns the ones the store no longer knows
   * (expired or lost), so their gateway can register them again.
   */
  heartbeat(connections: ConnectionRef[], now: number): Promise<ConnectionRef[]>;

  /** Removes every connection whose heartbeat is older than `staleBefore`; returns users that went offline. */
  expire(staleBefore: number, now: number): Promise<PresenceChange[]>;

  /** Removes every connection held by a gateway node that left the cluster; returns users that went offline. */
  removeNode(nodeId: string, now: number): Promise<PresenceChange[]>;

  /** Current presence of one user; `offline` with `connections: 0` for a user never seen. */
  get(tenantId: string, userId: string): Promise<Presence>;

  /** Presence of several users of one tenant, in the order asked. */
  getMany(tenantId: string, userIds: string[]): Promise<Presence[]>;

  /**
   * The live connections (devices) of one user on every node, ordered by `connectedAt`, then
   * `connectionId`; empty for a user that is offline or never seen. `lastSeen` is the connection's
   * last heartbeat. Lists exactly the connections `get` counts.
   */
  connections(tenantId: string, userId: string): Promise<ConnectionInfo[]>;

  /** Releases timers and connections. */
  close(): Promise<void>;
}
