import type { RoomAccess, RoomInfo, RoomMember, RoomStore, RoomUpdate } from "./room-store";

interface StoredRoom {
  private: boolean;
  members: Set<string>;
  allowedRoles: Set<string>;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

interface TenantRooms {
  /** roomId → connectionId → member */
  rooms: Map<string, Map<string, RoomMember>>;
  /** connectionId → roomIds */
  byConnection: Map<string, Set<string>>;
  /** userId → roomId → number of the user's connections in it */
  byUser: Map<string, Map<string, number>>;
}

/** The embedded default: exact, single-process. */
export class MemoryRoomStore implements RoomStore {
  private readonly tenants = new Map<string, TenantRooms>();
  /** nodeId → "tenant\0connection" of connections with at least one membership */
  private readonly byNode = new Map<string, Set<string>>();
  /** tenantId → roomId → settings (kept apart from memberships, which come and go) */
  private readonly settings = new Map<string, Map<string, StoredRoom>>();

  async createRoom(tenantId: string, roomId: string, info: Omit<RoomInfo, "roomId">) {
    let rooms = this.settings.get(tenantId);
    if (!rooms) {
      rooms = new Map();
      this.settings.set(tenantId, rooms);
    }
    if (rooms.has(roomId)) return false;
    rooms.set(roomId, {
      private: info.private,
      members: new Set(info.members),
      allowedRoles: new Set(info.allowedRoles),
      createdBy: info.createdBy,
      createdAt: info.createdAt,
      updatedAt: info.updatedAt
    });
    return true;
  }

  async updateRoom(tenantId: string, roomId: string, update: RoomUpdate) {
    const room = this.settings.get(tenantId)?.get(roomId);
    if (!room) return undefined;
    if (update.private !== undefined) room.private = update.private;
    if (update.members !== undefined) room.members = new Set(update.members);
    for (const userId of update.addMembers ?? []) room.members.add(userId);
    for (const userId of update.removeMembers ?? []) room.members.delete(userId);
    if (update.allowedRoles !== undefined) room.allowedRoles = new Set(update.allowedRoles);
    room.updatedAt = update.updatedAt;
    return infoOf(roomId, room);
  }

  async getRoom(tenantId: string, roomId: string) {
    const room = this.settings.get(tenantId)?.get(roomId);
    return room ? infoOf(roomId, room) : undefined;
  }

  async getAccess(tenantId: string, roomId: string, userId: string): Promise<RoomAccess | undefined> {
    const room = this.settings.get(tenantId)?.get(roomId);
    if (!room) return undefined;
    return { private: room.private, allowedRoles: [...room.allowedRoles], isMember: room.members.has(userId) };
  }

  async join(tenantId: string, roomId: string, member: RoomMember) {
    const t = this.tenant(tenantId);
    let room = t.rooms.get(roomId);
    if (!room) {
      room = new Map();
      t.rooms.set(roomId, room);
    }
    if (room.has(member.connectionId)) return false;
    room.set(member.connectionId, { ...member });
    addTo(t.byConnection, member.connectionId, roomId);
    let userRooms = t.byUser.get(member.userId);
    if (!userRooms) {
      userRooms = new Map();
      t.byUser.set(member.userId, userRooms);
    }
    userRooms.set(roomId, (userRooms.get(roomId) ?? 0) + 1);
    addTo(this.byNode, member.nodeId, nodeEntry(tenantId, member.connectionId));
    return true;
  }

  async leave(tenantId: string, roomId: string, connectionId: string) {
    const t = this.tenants.get(tenantId);
    const member = t?.rooms.get(roomId)?.get(connectionId);
    if (!t || !member) return false;
    this.removeMembership(t, tenantId, roomId, member);
    return true;
  }

  async leaveAll(tenantId: string, connectionId: string) {
    const t = this.tenants.get(tenantId);
    const roomIds = [...(t?.byConnection.get(connectionId) ?? [])];
    for (const roomId of roomIds) {
      const member = t?.rooms.get(roomId)?.get(connectionId);
      if (t && member) this.removeMembership(t, tenantId, roomId, member);
    }
    return roomIds;
  }

  async members(tenantId: string, roomId: string) {
    return [...(this.tenants.get(tenantId)?.rooms.get(roomId)?.values() ?? [])].map(m => ({ ...m }));
  }

  async roomsOfConnection(tenantId: string, connectionId: string) {
    return [...(this.tenants.get(tenantId)?.byConnection.get(connectionId) ?? [])];
  }

  async roomsOfUser(tenantId: string, userId: string) {
    return [...(this.tenants.get(tenantId)?.byUser.get(userId)?.keys() ?? [])];
  }

  async roomsOfUsers(tenantId: string, userIds: readonly string[]) {
    const byUser = this.tenants.get(tenantId)?.byUser;
    const rooms = new Map<string, string[]>();
    for (const userId of userIds) rooms.set(userId, [...(byUser?.get(userId)?.keys() ?? [])]);
    return rooms;
  }

  async removeNode(nodeId: string) {
    let removed = 0;
    for (const entry of [...(this.byNode.get(nodeId) ?? [])]) {
      const [tenantId, connectionId] = entry.split("\0");
      removed += (await this.leaveAll(tenantId, connectionId)).length;
    }
    this.byNode.delete(nodeId);
    return removed;
  }

  async close() {
    this.tenants.clear();
    this.byNode.clear();
    this.settings.clear();
  }

  private removeMembership(t: TenantRooms, tenantId: string, roomId: string, member: RoomMember) {
    const room = t.rooms.get(roomId);
    room?.delete(member.connectionId);
    if (room?.size === 0) t.rooms.delete(roomId);
    const connRooms = t.byConnection.get(member.connectionId);
    connRooms?.delete(roomId);
    if (connRooms?.size === 0) {
      t.byConnection.delete(member.connectionId);
      const nodeSet = this.byNode.get(member.nodeId);
      nodeSet?.delete(nodeEntry(tenantId, member.connectionId));
      if (nodeSet?.size === 0) this.byNode.delete(member.nodeId);
    }
    const userRooms = t.byUser.get(member.userId);
    const count = (userRooms?.get(roomId) ?? 0) - 1;
    if (count > 0) userRooms?.set(roomId, count);
    else userRooms?.delete(roomId);
    if (userRooms?.size === 0) t.byUser.delete(member.userId);
    if (t.rooms.size === 0 && t.byConnection.size === 0) this.tenants.delete(tenantId);
  }

  private tenant(tenantId: string): TenantRooms {
    let t = this.tenants.get(tenantId);
    if (!t) {
      t = { rooms: new Map(), byConnection: new Map(), byUser: new Map() };
      this.tenants.set(tenantId, t);
    }
    return t;
  }
}

function infoOf(roomId: string, room: StoredRoom): RoomInfo {
  return {
    roomId,
    private: room.private,
    members: [...room.members],
    allowedRoles: [...room.allowedRoles],
    createdBy: room.createdBy,
    createdAt: room.createdAt,
    updatedAt: room.updatedAt
  };
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V) {
  let set = map.get(key);
  if (!set) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
}

function nodeEntry(tenantId: string, connectionId: string) {
  return `${tenantId}\0${connectionId}`;
}
