/**
 * Room membership per tenant, shared by every node. A member is one connection (a device), so a
 * user with two devices may be in a room on one and not on the other.
 *
 * The same roomId in two tenants is two unrelated rooms. Gateways deliver room traffic from their
 * own Socket.IO rooms; this store answers the cluster-wide questions (who is in a room, which rooms
 * a user shares with others, what to clean up when a connection or node disappears).
 */
export interface RoomMember {
  connectionId: string;
  userId: string;
  nodeId: string;
}

/**
 * A room's access settings (seed 001 "role-based access control for rooms"). A room that was never
 * created has none and is public: anyone of the tenant may join it.
 */
export interface RoomSettings {
  /** A private room admits only listed members and holders of an allowed role. */
  private: boolean;
  /** userIds admitted to the room when it is private. */
  members: string[];
  /** Roles (the token's `role`) whose holders are admitted when it is private. */
  allowedRoles: string[];
}

export interface RoomInfo extends RoomSettings {
  roomId: string;
  /** userId of the principal that created it (`system` for internal calls). */
  createdBy: string;
  /** ISO 8601. */
  createdAt: string;
  updatedAt: string;
}

/** A change to a room's settings; absent fields are kept. `members` replaces the list, `addMembers` / `removeMembers` edit it (applied after `members`). */
export interface RoomUpdate {
  private?: boolean;
  members?: string[];
  addMembers?: string[];
  removeMembers?: string[];
  allowedRoles?: string[];
  updatedAt: string;
}

/** What a join decision needs, without reading a large member list. */
export interface RoomAccess {
  private: boolean;
  allowedRoles: string[];
  /** Whether the asked user is on the member list. */
  isMember: boolean;
}

export interface RoomStore {
  /**
   * Records a room's settings. Returns false (and changes nothing) when the room already has
   * settings; atomic, so of two concurrent creations exactly one wins. Duplicate members and
   * roles are kept once.
   */
  createRoom(tenantId: string, roomId: string, info: Omit<RoomInfo, "roomId">): Promise<boolean>;

  /** Applies a change atomically and returns the settings after it; undefined when the room has none. */
  updateRoom(tenantId: string, roomId: string, update: RoomUpdate): Promise<RoomInfo | undefined>;

  /** The room's settings (members and roles in no particular order), or undefined when it has none. */
  getRoom(tenantId: string, roomId: string): Promise<RoomInfo | undefined>;

  /** Whether the room is private, its allowed roles and whether `userId` is a listed member; undefined when it has no settings. */
  getAccess(tenantId: string, roomId: string, userId: string): Promise<RoomAccess | undefined>;

  /** Adds the connection to the room. Returns false when it already was a member. */
  join(tenantId: string, roomId: string, member: RoomMember): Promise<boolean>;

  /** Removes the connection from the room. Returns false when it was not a member. */
  leave(tenantId: string, roomId: string, connectionId: string): Promise<boolean>;

  /** Removes the connection from every room; returns the rooms it left. */
  leaveAll(tenantId: string, connectionId: string): Promise<string[]>;

  /** Members of a room, in no particular order. */
  members(tenantId: string, roomId: string): Promise<RoomMember[]>;

  /** Rooms one connection is in. */
  roomsOfConnection(tenantId: string, connectionId: string): Promise<string[]>;

  /** Rooms any connection of the user is in. */
  roomsOfUser(tenantId: string, userId: string): Promise<string[]>;

  /** Rooms of each of several users of one tenant in one store round trip; every userId given is a key. */
  roomsOfUsers(tenantId: string, userIds: readonly string[]): Promise<Map<string, string[]>>;

  /** Removes every membership held by a node that left the cluster (room settings stay); returns how many. */
  removeNode(nodeId: string): Promise<number>;

  close(): Promise<void>;
}
