import type { ConnectionInfo, ConnectionRef, DeviceInfo, Presence, PresenceChange, PresenceStatus, PresenceStore } from "./presence-store";

interface Connection {
  nodeId: string;
  lastBeat: number;
  connectedAt: number;
  userAgent?: string;
  ip?: string;
}

interface UserState {
  connections: Map<string, Connection>;
  status: PresenceStatus;
  metadata?: Record<string, unknown>;
  lastSeen: number | null;
}

/** The embedded default: exact, single-process. State is lost on restart, and gateways re-register on their next heartbeat. */
export class MemoryPresenceStore implements PresenceStore {
  /** tenantId → userId → state */
  private readonly tenants = new Map<string, Map<string, UserState>>();

  async connect(tenantId: string, userId: string, connectionId: string, nodeId: string, now: number, device: DeviceInfo = {}) {
    const state = this.stateOf(tenantId, userId, true);
    const wasOnline = state.connections.size > 0;
    const connection: Connection = { nodeId, lastBeat: now, connectedAt: device.connectedAt ?? now };
    if (device.userAgent !== undefined) connection.userAgent = device.userAgent;
    if (device.ip !== undefined) connection.ip = device.ip;
    state.connections.set(connectionId, connection);
    state.lastSeen = now;
    if (!wasOnline) {
      state.status = "online";
      state.metadata = undefined;
    }
    return { changed: !wasOnline, presence: view(userId, state) };
  }

  async disconnect(tenantId: string, userId: string, connectionId: string, now: number) {
    const state = this.stateOf(tenantId, userId, false);
    if (!state || !state.connections.delete(connectionId)) {
      return { changed: false, presence: this.viewOrUnknown(tenantId, userId) };
    }
    state.lastSeen = now;
    return { changed: state.connections.size === 0, presence: view(userId, state) };
  }

  async setStatus(tenantId: string, userId: string, status: PresenceStatus, metadata: Record<string, unknown> | undefined, now: number) {
    const state = this.stateOf(tenantId, userId, false);
    if (!state || state.connections.size === 0) return { changed: false, presence: this.viewOrUnknown(tenantId, userId) };
    const changed = state.status !== status || JSON.stringify(state.metadata) !== JSON.stringify(metadata);
    state.status = status;
    state.metadata = metadata;
    state.lastSeen = now;
    return { changed, presence: view(userId, state) };
  }

  async heartbeat(connections: ConnectionRef[], now: number) {
    const unknown: ConnectionRef[] = [];
    for (const ref of connections) {
      const conn = this.stateOf(ref.tenantId, ref.userId, false)?.connections.get(ref.connectionId);
      if (conn) conn.lastBeat = now;
      else unknown.push(ref);
    }
    return unknown;
  }

  async expire(staleBefore: number, now: number) {
    return this.removeWhere(conn => conn.lastBeat < staleBefore, now);
  }

  async removeNode(nodeId: string, now: number) {
    return this.removeWhere(conn => conn.nodeId === nodeId, now);
  }

  async get(tenantId: string, userId: string) {
    return this.viewOrUnknown(tenantId, userId);
  }

  async getMany(tenantId: string, userIds: string[]) {
    return userIds.map(userId => this.viewOrUnknown(tenantId, userId));
  }

  async connections(tenantId: string, userId: string) {
    const state = this.stateOf(tenantId, userId, false);
    const list: ConnectionInfo[] = [];
    for (const [connectionId, conn] of state?.connections ?? []) {
      const info: ConnectionInfo = { connectionId, nodeId: conn.nodeId, connectedAt: conn.connectedAt, lastSeen: conn.lastBeat };
      if (conn.userAgent !== undefined) info.userAgent = conn.userAgent;
      if (conn.ip !== undefined) info.ip = conn.ip;
      list.push(info);
    }
    return list.sort(byConnectedAt);
  }

  async close() {
    this.tenants.clear();
  }

  private removeWhere(stale: (conn: Connection) => boolean, now: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    for (const [tenantId, users] of this.tenants) {
      for (const [userId, state] of users) {
        if (state.connections.size === 0) continue;
        for (const [connectionId, conn] of state.connections) {
          if (stale(conn)) state.connections.delete(connectionId);
        }
        if (state.connections.size === 0) {
          state.lastSeen = now;
          changes.push({ tenantId, presence: view(userId, state) });
        }
      }
    }
    return changes;
  }

  private stateOf(tenantId: string, userId: string, create: true): UserState;
  private stateOf(tenantId: string, userId: string, create: false): UserState | undefined;
  private stateOf(tenantId: string, userId: string, create: boolean): UserState | undefined {
    let users = this.tenants.get(tenantId);
    if (!users) {
      if (!create) return undefined;
      users = new Map();
      this.tenants.set(tenantId, users);
    }
    let state = users.get(userId);
    if (!state && create) {
      state = { connections: new Map(), status: "online", lastSeen: null };
      users.set(userId, state);
    }
    return state;
  }

  private viewOrUnknown(tenantId: string, userId: string): Presence {
    const state = this.stateOf(tenantId, userId, false);
    return state ? view(userId, state) : { userId, status: "offline", lastSeen: null, connections: 0 };
  }
}

/** The order `connections` promises: by `connectedAt`, then `connectionId`. */
export function byConnectedAt(a: ConnectionInfo, b: ConnectionInfo): number {
  return a.connectedAt - b.connectedAt || (a.connectionId < b.connectionId ? -1 : a.connectionId > b.connectionId ? 1 : 0);
}

function view(userId: string, state: UserState): Presence {
  const online = state.connections.size > 0;
  const presence: Presence = {
    userId,
    status: online ? state.status : "offline",
    lastSeen: state.lastSeen === null ? null : new Date(state.lastSeen).toISOString(),
    connections: state.connections.size
  };
  if (online && state.metadata !== undefined) presence.metadata = state.metadata;
  return presence;
}
