import type { ConnectionInfo, ConnectionRef, DeviceInfo, Presence, PresenceChange, PresenceStatus, PresenceStore } from "./presence-store";

interface Connection {
  readonly id: string;
  nodeId: string;
  lastBeat: number;
  connectedAt: number;
  userAgent: string | undefined;
  ip: string | undefined;
}

/**
 * A user's connections: a short array while there are few (most users hold one or two, and a Map
 * costs ~180 bytes of heap even for one), a Map by connection id past {@link FEW_CONNECTIONS}.
 */
type Connections = Connection[] | Map<string, Connection>;
const FEW_CONNECTIONS = 8;

interface UserState {
  connections: Connections;
  status: PresenceStatus;
  metadata: Record<string, unknown> | undefined;
  lastSeen: number | null;
}

function countOf(connections: Connections): number {
  return Array.isArray(connections) ? connections.length : connections.size;
}

function findIn(connections: Connections, connectionId: string): Connection | undefined {
  if (!Array.isArray(connections)) return connections.get(connectionId);
  for (const conn of connections) if (conn.id === connectionId) return conn;
  return undefined;
}

function put(state: UserState, conn: Connection): void {
  const connections = state.connections;
  if (!Array.isArray(connections)) {
    connections.set(conn.id, conn);
    return;
  }
  const at = connections.findIndex(c => c.id === conn.id);
  if (at >= 0) connections[at] = conn;
  // A literal of one, not a push onto an empty array (which would reserve 17 slots).
  else if (connections.length === 0) state.connections = [conn];
  else if (connections.length < FEW_CONNECTIONS) connections.push(conn);
  else state.connections = new Map([...connections, conn].map(c => [c.id, c]));
}

/** Removes the connections `drop` picks; true when any was removed. */
function removeFrom(state: UserState, drop: (conn: Connection) => boolean): boolean {
  const connections = state.connections;
  let removed = false;
  if (Array.isArray(connections)) {
    const kept = connections.filter(c => !drop(c));
    removed = kept.length < connections.length;
    if (removed) state.connections = kept;
  } else {
    for (const [connectionId, conn] of connections) {
      if (drop(conn)) removed = connections.delete(connectionId) || removed;
    }
  }
  return removed;
}

function valuesOf(connections: Connections): Iterable<Connection> {
  return Array.isArray(connections) ? connections : connections.values();
}

/** The embedded default: exact, single-process. State is lost on restart, and gateways re-register on their next heartbeat. */
export class MemoryPresenceStore implements PresenceStore {
  /** tenantId → userId → state */
  private readonly tenants = new Map<string, Map<string, UserState>>();

  async connect(tenantId: string, userId: string, connectionId: string, nodeId: string, now: number, device: DeviceInfo = {}) {
    const state = this.stateOf(tenantId, userId, true);
    const wasOnline = countOf(state.connections) > 0;
    put(state, { id: connectionId, nodeId, lastBeat: now, connectedAt: device.connectedAt ?? now, userAgent: device.userAgent, ip: device.ip });
    state.lastSeen = now;
    if (!wasOnline) {
      state.status = "online";
      state.metadata = undefined;
    }
    return { changed: !wasOnline, presence: view(userId, state) };
  }

  async disconnect(tenantId: string, userId: string, connectionId: string, now: number) {
    const state = this.stateOf(tenantId, userId, false);
    if (!state || !removeFrom(state, conn => conn.id === connectionId)) {
      return { changed: false, presence: this.viewOrUnknown(tenantId, userId) };
    }
    state.lastSeen = now;
    return { changed: countOf(state.connections) === 0, presence: view(userId, state) };
  }

  async setStatus(tenantId: string, userId: string, status: PresenceStatus, metadata: Record<string, unknown> | undefined, now: number) {
    const state = this.stateOf(tenantId, userId, false);
    if (!state || countOf(state.connections) === 0) return { changed: false, presence: this.viewOrUnknown(tenantId, userId) };
    const changed = state.status !== status || JSON.stringify(state.metadata) !== JSON.stringify(metadata);
    state.status = status;
    state.metadata = metadata;
    state.lastSeen = now;
    return { changed, presence: view(userId, state) };
  }

  async heartbeat(connections: ConnectionRef[], now: number) {
    const unknown: ConnectionRef[] = [];
    for (const ref of connections) {
      const state = this.stateOf(ref.tenantId, ref.userId, false);
      const conn = state && findIn(state.connections, ref.connectionId);
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
    for (const conn of state ? valuesOf(state.connections) : []) {
      const info: ConnectionInfo = { connectionId: conn.id, nodeId: conn.nodeId, connectedAt: conn.connectedAt, lastSeen: conn.lastBeat };
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
        if (countOf(state.connections) === 0) continue;
        removeFrom(state, stale);
        if (countOf(state.connections) === 0) {
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
      state = { connections: [], status: "online", metadata: undefined, lastSeen: null };
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
  const connections = countOf(state.connections);
  const online = connections > 0;
  const presence: Presence = {
    userId,
    status: online ? state.status : "offline",
    lastSeen: state.lastSeen === null ? null : new Date(state.lastSeen).toISOString(),
    connections
  };
  if (online && state.metadata !== undefined) presence.metadata = state.metadata;
  return presence;
}
