import type Redis from "ioredis";
import { globalKey, tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import type { RoomAccess, RoomInfo, RoomMember, RoomStore, RoomUpdate } from "./room-store";

/*
 * Layout (every key prefixed with REDIS_KEY_PREFIX):
 *   t:<tenant>:room:<room>:members   hash  connectionId → JSON [userId, nodeId, userRoomsKey, nodeKey]
 *   t:<tenant>:conn:<conn>:rooms     hash  roomId → members key of that room
 *   t:<tenant>:user:<user>:rooms     hash  roomId → number of the user's connections in it
 *   g:rooms:node:<nodeId>            set   JSON [tenant, connection] of connections with memberships
 *   t:<tenant>:room:<room>:settings  hash  private "1"|"0", roles (JSON list), createdBy, createdAt, updatedAt
 *   t:<tenant>:room:<room>:acl       set   userIds admitted to the room when it is private
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

/** SADD/SREM arguments per call inside scripts (Lua's unpack has a stack limit). */
const SET_ARGS = `
local function apply(cmd, key, from, count)
  for j = from, from + count - 1, 1000 do
    redis.call(cmd, key, unpack(ARGV, j, math.min(j + 999, from + count - 1)))
  end
end
`;

const CREATE_ROOM = `${SET_ARGS}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'private', ARGV[1], 'roles', ARGV[2], 'createdBy', ARGV[3], 'createdAt', ARGV[4], 'updatedAt', ARGV[5])
redis.call('DEL', KEYS[2])
apply('SADD', KEYS[2], 6, #ARGV - 5)
return 1
`;

const UPDATE_ROOM = `${SET_ARGS}
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'private', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'roles', ARGV[2]) end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[3])
local replaced, added, removed = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
apply('SADD', KEYS[2], 8, replaced)
apply('SADD', KEYS[2], 8 + replaced, added)
apply('SREM', KEYS[2], 8 + replaced + added, removed)
return {redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2])}
`;

const NODE_BATCH = 1000;

export class RedisRoomStore implements RoomStore {
  private readonly joinScript: LuaScript;
  private readonly leaveScript: LuaScript;
  private readonly leaveAllScript: LuaScript;
  private readonly createRoomScript: LuaScript;
  private readonly updateRoomScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** Releases the shared client when this store is closed. */
    private readonly release: () => Promise<void> = async () => undefined
  ) {
    this.joinScript = defineScript(redis, "pf2RoomJoin", JOIN);
    this.leaveScript = defineScript(redis, "pf2RoomLeave", LEAVE);
    this.leaveAllScript = defineScript(redis, "pf2RoomLeaveAll", LEAVE_ALL);
    this.createRoomScript = defineScript(redis, "pf2RoomCreate", CREATE_ROOM);
    this.updateRoomScript = defineScript(redis, "pf2RoomUpdate", UPDATE_ROOM);
  }

  async createRoom(tenantId: string, roomId: string, info: Omit<RoomInfo, "roomId">) {
    const created = await this.createRoomScript(
      [this.settingsKey(tenantId, roomId), this.aclKey(tenantId, roomId)],
      [info.private ? "1" : "0", JSON.stringify(unique(info.allowedRoles)), info.createdBy, info.createdAt, info.updatedAt, ...unique(info.members)]
    );
    return created === 1;
  }

  async updateRoom(tenantId: string, roomId: string, update: RoomUpdate) {
    const replace = update.members !== undefined ? unique(update.members) : [];
    const add = unique(update.addMembers ?? []);
    const remove = unique(update.removeMembers ?? []);
    const result = (await this.updateRoomScript(
      [this.settingsKey(tenantId, roomId), this.aclKey(tenantId, roomId)],
      [
        update.private === undefined ? "" : update.private ? "1" : "0",
        update.allowedRoles === undefined ? "" : JSON.stringify(unique(update.allowedRoles)),
        update.updatedAt,
        update.members !== undefined ? "1" : "0",
        replace.length,
        add.length,
        remove.length,
        ...replace,
        ...add,
        ...remove
      ]
    )) as [string[], string[]] | null;
    if (!result) return undefined;
    const [flat, members] = result;
    const hash: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) hash[flat[i]] = flat[i + 1];
    return roomInfoOf(roomId, hash, members);
  }

  async getRoom(tenantId: string, roomId: string) {
    const replies = await this.redis.multi().hgetall(this.settingsKey(tenantId, roomId)).smembers(this.aclKey(tenantId, roomId)).exec();
    const [hash, members] = repliesOf(replies) as [Record<string, string>, string[]];
    return roomInfoOf(roomId, hash, members);
  }

  async getAccess(tenantId: string, roomId: string, userId: string): Promise<RoomAccess | undefined> {
    const replies = await this.redis
      .multi()
      .hmget(this.settingsKey(tenantId, roomId), "private", "roles")
      .sismember(this.aclKey(tenantId, roomId), userId)
      .exec();
    const [[isPrivate, roles], isMember] = repliesOf(replies) as [[string | null, string | null], number];
    if (isPrivate === null) return undefined;
    return { private: isPrivate === "1", allowedRoles: parseList(roles), isMember: isMember === 1 };
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

  async roomsOfUsers(tenantId: string, userIds: readonly string[]) {
    const unique = [...new Set(userIds)];
    if (unique.length === 0) return new Map<string, string[]>();
    const pipeline = this.redis.pipeline();
    for (const userId of unique) pipeline.hkeys(this.userRoomsKey(tenantId, userId));
    const replies = repliesOf(await pipeline.exec()) as string[][];
    return new Map(unique.map((userId, i) => [userId, replies[i]]));
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
  private settingsKey(tenantId: string, roomId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "room", roomId, "settings")}`;
  }
  private aclKey(tenantId: string, roomId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "room", roomId, "acl")}`;
  }
  private nodeKey(nodeId: string) {
    return `${this.prefix}:${globalKey("rooms", "node", nodeId)}`;
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function parseList(raw: string | null | undefined): string[] {
  if (!raw) return [];
  const parsed = JSON.parse(raw) as unknown;
  return Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === "string") : [];
}

function roomInfoOf(roomId: string, hash: Record<string, string>, members: string[]): RoomInfo | undefined {
  if (hash.private === undefined) return undefined;
  return {
    roomId,
    private: hash.private === "1",
    members,
    allowedRoles: parseList(hash.roles),
    createdBy: hash.createdBy ?? "",
    createdAt: hash.createdAt ?? "",
    updatedAt: hash.updatedAt ?? ""
  };
}

/** The results of a MULTI or a pipeline, throwing the first command error. */
function repliesOf(replies: Array<[Error | null, unknown]> | null): unknown[] {
  if (!replies) throw new Error("Redis transaction aborted");
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function nodeMember(tenantId: string, connectionId: string) {
  return JSON.stringify([tenantId, connectionId]);
}
