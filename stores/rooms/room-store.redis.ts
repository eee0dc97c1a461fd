import type Redis from "ioredis";
import { globalKey, tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import type { RoomMember, RoomStore } from "./room-store";

/*
 * Layout (every key prefixed with REDIS_KEY_PREFIX):
 *   t:<tenant>:room:<room>:members   hash  connectionId → JSON [userId, nodeId, userRoomsKey, nodeKey]
 *   t:<tenant>:conn:<conn>:rooms     hash  roomId → members key of that room
 *   t:<tenant>:user:<user>:rooms     hash  roomId → number of the user's connections in it
 *   g:rooms:node:<nodeId>            set   JSON [tenant, connection] of connections with memberships
 * Keys of related records are stored beside them so scripts stay atomic without rebuilding names.
 */

const JOIN = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], KEYS[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('SADD', KEYS[4], ARGV[4])
return 1
`;

const LEAVE_ONE = `
local function leave(membersKey, connRoomsKey, connectionId, roomId, nodeMember)
  local v = redis.call('HGET', membersKey, connectionId)
  if not v then return 0 end
  local m = cjson.decode(v)
  redis.call('HDEL', membersKey, connectionId)
  redis.call('HDEL', connRoomsKey, roomId)
  if redis.call('HINCRBY', m[3], roomId, -1) <= 0 then redis.call('HDEL', m[3], roomId) end
  if redis.call('HLEN', connRoomsKey) == 0 then redis.call('SREM', m[4], nodeMember) end
  return 1
end
`;

const LEAVE = `${LEAVE_ONE}
return leave(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
`;

const LEAVE_ALL = `${LEAVE_ONE}
local rooms = redis.call('HGETALL', KEYS[1])
local left = {}
for i = 1, #rooms, 2 do
  if leave(rooms[i + 1], KEYS[1], ARGV[1], rooms[i], ARGV[2]) == 1 then table.insert(left, rooms[i]) end
end
redis.call('DEL', KEYS[1])
return left
`;

const NODE_BATCH = 1000;

export class RedisRoomStore implements RoomStore {
  private readonly joinScript: LuaScript;
  private readonly leaveScript: LuaScript;
  private readonly leaveAllScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** Releases the shared client when this store is closed. */
    private readonly release: () => Promise<void> = async () => undefined
  ) {
    this.joinScript = defineScript(redis, "pf2RoomJoin", JOIN);
    this.leaveScript = defineScript(redis, "pf2RoomLeave", LEAVE);
    this.leaveAllScript = defineScript(redis, "pf2RoomLeaveAll", LEAVE_ALL);
  }

  async join(tenantId: string, roomId: string, member: RoomMember) {
    const userRoomsKey = this.userRoomsKey(tenantId, member.userId);
    const nodeKey = this.nodeKey(member.nodeId);
    const joined = await this.joinScript(
      [this.membersKey(tenantId, roomId), this.connRoomsKey(tenantId, member.connectionId), userRoomsKey, nodeKey],
      [member.connectionId, JSON.stringify([member.userId, member.nodeId, userRoomsKey, nodeKey]), roomId, nodeMember(tenantId, member.connectionId)]
    );
    return joined === 1;
  }

  async leave(tenantId: string, roomId: string, connectionId: string) {
    const left = await this.leaveScript(
      [this.membersKey(tenantId, roomId), this.connRoomsKey(tenantId, connectionId)],
      [connectionId, roomId, nodeMember(tenantId, connectionId)]
    );
    return left === 1;
  }

  async leaveAll(tenantId: string, connectionId: string) {
    return (await this.leaveAllScript([this.connRoomsKey(tenantId, connectionId)], [connectionId, nodeMember(tenantId, connectionId)])) as string[];
  }

  async members(tenantId: string, roomId: string) {
    const raw = await this.redis.hgetall(this.membersKey(tenantId, roomId));
    return Object.entries(raw).map(([connectionId, value]) => {
      const [userId, nodeId] = JSON.parse(value) as [string, string];
      return { connectionId, userId, nodeId };
    });
  }

  async roomsOfConnection(tenantId: string, connectionId: string) {
    return this.redis.hkeys(this.connRoomsKey(tenantId, connectionId));
  }

  async roomsOfUser(tenantId: string, userId: string) {
    return this.redis.hkeys(this.userRoomsKey(tenantId, userId));
  }

  async removeNode(nodeId: string) {
    let removed = 0;
    for (;;) {
      const entries = await this.redis.spop(this.nodeKey(nodeId), NODE_BATCH);
      for (const entry of entries) {
        const [tenantId, connectionId] = JSON.parse(entry) as [string, string];
        removed += (await this.leaveAll(tenantId, connectionId)).length;
      }
      if (entries.length < NODE_BATCH) return removed;
    }
  }

  async close() {
    await this.release();
  }

  private membersKey(tenantId: string, roomId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "room", roomId, "members")}`;
  }
  private connRoomsKey(tenantId: string, connectionId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "conn", connectionId, "rooms")}`;
  }
  private userRoomsKey(tenantId: string, userId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "user", userId, "rooms")}`;
  }
  private nodeKey(nodeId: string) {
    return `${this.prefix}:${globalKey("rooms", "node", nodeId)}`;
  }
}

function nodeMember(tenantId: string, connectionId: string) {
  return JSON.stringify([tenantId, connectionId]);
}
