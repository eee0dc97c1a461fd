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

export interface RoomStore {
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

  /** Removes every membership held by a node that left the cluster; returns how many. */
  removeNode(nodeId: string): Promise<number>;

  close(): Promise<void>;
}
