import type Redis from "ioredis";
import { globalKey, tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import { byConnectedAt } from "./presence-store.memory";
import type { ConnectionInfo, ConnectionRef, DeviceInfo, Presence, PresenceChange, PresenceStatus, PresenceStore } from "./presence-store";

/*
 * Layout (every key prefixed with REDIS_KEY_PREFIX):
 *   t:<tenant>:presence:<user>:conns   hash  connectionId → key of its node's set
 *   t:<tenant>:presence:<user>         hash  status, metadata (JSON), lastSeen (epoch ms)
 *   t:<tenant>:presence:<user>:devices hash  connectionId → device JSON {connectedAt, userAgent?, ip?}
 *   g:presence:beats                    zset  member [tenant,user,connection] scored by last heartbeat
 *   g:presence:node:<nodeId>            set   members of that node, for removeNode
 * Scripts keep "became online/offline" decisions atomic across presence nodes. The scripts touch
 * keys of several tenants' indexes, so this store needs standalone Redis (or Sentinel), not Cluster.
 */

const CONNECT = `
local before = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], KEYS[4])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
if before == 0 then
  redis.call('HSET', KEYS[2], 'status', 'online', 'lastSeen', ARGV[3])
  redis.call('HDEL', KEYS[2], 'metadata')
else
  redis.call('HSET', KEYS[2], 'lastSeen', ARGV[3])
end
return {before, redis.call('HLEN', KEYS[1]), redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
`;

// ARGV[4] = staleBefore ('' for unconditional): a connection heartbeated since is kept.
const REMOVE = `
local nodeKey = redis.call('HGET', KEYS[1], ARGV[1])
if not nodeKey then
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[4], ARGV[1])
  return {0, redis.call('HLEN', KEYS[1]), redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
end
if ARGV[4] ~= '' then
  local score = redis.call('ZSCORE', KEYS[3], ARGV[2])
  if score and tonumber(score) >= tonumber(ARGV[4]) then
    return {0, redis.call('HLEN', KEYS[1]), redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SREM', nodeKey, ARGV[2])
redis.call('HSET', KEYS[2], 'lastSeen', ARGV[3])
return {1, redis.call('HLEN', KEYS[1]), redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
`;

const SET_STATUS = `
local live = redis.call('HLEN', KEYS[1])
if live == 0 then
  return {0, live, redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
end
local old = redis.call('HMGET', KEYS[2], 'status', 'metadata')
local changed = 0
if old[1] ~= ARGV[1] or (old[2] or '') ~= ARGV[2] then changed = 1 end
redis.call('HSET', KEYS[2], 'status', ARGV[1], 'lastSeen', ARGV[3])
if ARGV[2] == '' then redis.call('HDEL', KEYS[2], 'metadata') else redis.call('HSET', KEYS[2], 'metadata', ARGV[2]) end
return {changed, live, redis.call('HMGET', KEYS[2], 'status', 'metadata', 'lastSeen')}
`;

// ARGV = now, then (connsKey, connectionId, member) triples; returns indexes (1-based) of unknown ones.
const HEARTBEAT = `
local unknown = {}
local n = (#ARGV - 1) / 3
for i = 0, n - 1 do
  local connsKey = ARGV[2 + i * 3]
  if redis.call('HEXISTS', connsKey, ARGV[3 + i * 3]) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4 + i * 3])
  else
    table.insert(unknown, i + 1)
  end
end
return unknown
`;

type ScriptReply = [number, number, [string | null, string | null, string | null]];

const HEARTBEAT_BATCH = 500;
const SCAN_BATCH = 1000;

export class RedisPresenceStore implements PresenceStore {
  private readonly connectScript: LuaScript;
  private readonly removeScript: LuaScript;
  private readonly setStatusScript: LuaScript;
  private readonly heartbeatScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** Releases the shared client when this store is closed. */
    private readonly release: () => Promise<void> = async () => undefined
  ) {
    this.connectScript = defineScript(redis, "pf2PresenceConnect", CONNECT);
    this.removeScript = defineScript(redis, "pf2PresenceRemove", REMOVE);
    this.setStatusScript = defineScript(redis, "pf2PresenceSetStatus", SET_STATUS);
    this.heartbeatScript = defineScript(redis, "pf2PresenceHeartbeat", HEARTBEAT);
  }

  async connect(tenantId: string, userId: string, connectionId: string, nodeId: string, now: number, device: DeviceInfo = {}) {
    const stored: DeviceInfo = { connectedAt: device.connectedAt ?? now, userAgent: device.userAgent, ip: device.ip };
    const reply = (await this.connectScript(
      [this.connsKey(tenantId, userId), this.stateKey(tenantId, userId), this.beatsKey(), this.nodeKey(nodeId), this.devicesKey(tenantId, userId)],
      [connectionId, member({ tenantId, userId, connectionId }), now, JSON.stringify(stored)]
    )) as ScriptReply;
    return { changed: reply[0] === 0, presence: view(userId, reply) };
  }

  async disconnect(tenantId: string, userId: string, connectionId: string, now: number) {
    return this.remove({ tenantId, userId, connectionId }, now, "");
  }

  async setStatus(tenantId: string, userId: string, status: PresenceStatus, metadata: Record<string, unknown> | undefined, now: number) {
    const reply = (await this.setStatusScript(
      [this.connsKey(tenantId, userId), this.stateKey(tenantId, userId)],
      [status, metadata === undefined ? "" : JSON.stringify(metadata), now]
    )) as ScriptReply;
    return { changed: reply[0] === 1, presence: view(userId, reply) };
  }

  async heartbeat(connections: ConnectionRef[], now: number) {
    const unknown: ConnectionRef[] = [];
    for (let start = 0; start < connections.length; start += HEARTBEAT_BATCH) {
      const batch = connections.slice(start, start + HEARTBEAT_BATCH);
      const args: Array<string | number> = [now];
      for (const ref of batch) args.push(this.connsKey(ref.tenantId, ref.userId), ref.connectionId, member(ref));
      const missing = (await this.heartbeatScript([this.beatsKey()], args)) as number[];
      for (const index of missing) unknown.push(batch[index - 1]);
    }
    return unknown;
  }

  async expire(staleBefore: number, now: number) {
    const changes: PresenceChange[] = [];
    for (;;) {
      const members = await this.redis.zrangebyscore(this.beatsKey(), "-inf", `(${staleBefore}`, "LIMIT", 0, SCAN_BATCH);
      for (const raw of members) {
        const change = await this.removeMember(raw, now, String(staleBefore));
        if (change) changes.push(change);
      }
      if (members.length < SCAN_BATCH) return changes;
    }
  }

  async removeNode(nodeId: string, now: number) {
    const changes: PresenceChange[] = [];
    const nodeKey = this.nodeKey(nodeId);
    for (;;) {
      const members = await this.redis.spop(nodeKey, SCAN_BATCH);
      for (const raw of members) {
        const change = await this.removeMember(raw, now, "");
        if (change) changes.push(change);
      }
      if (members.length < SCAN_BATCH) return changes;
    }
  }

  async get(tenantId: string, userId: string) {
    return (await this.getMany(tenantId, [userId]))[0];
  }

  async getMany(tenantId: string, userIds: string[]) {
    if (userIds.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const userId of userIds) {
      pipeline.hlen(this.connsKey(tenantId, userId));
      pipeline.hmget(this.stateKey(tenantId, userId), "status", "metadata", "lastSeen");
    }
    const results = (await pipeline.exec()) ?? [];
    return userIds.map((userId, i) => {
      const [lenErr, live] = results[i * 2];
      const [stateErr, state] = results[i * 2 + 1];
      if (lenErr) throw lenErr;
      if (stateErr) throw stateErr;
      return view(userId, [0, live as number, state as ScriptReply[2]]);
    });
  }

  async connections(tenantId: string, userId: string) {
    const [[connsErr, conns], [devicesErr, devices]] = ((await this.redis
      .pipeline()
      .hgetall(this.connsKey(tenantId, userId))
      .hgetall(this.devicesKey(tenantId, userId))
      .exec()) ?? []) as Array<[Error | null, Record<string, string>]>;
    if (connsErr) throw connsErr;
    if (devicesErr) throw devicesErr;
    const ids = Object.keys(conns);
    if (ids.length === 0) return [];
    const beats = this.redis.pipeline();
    for (const connectionId of ids) beats.zscore(this.beatsKey(), member({ tenantId, userId, connectionId }));
    const scores = (await beats.exec()) ?? [];
    const list: ConnectionInfo[] = [];
    ids.forEach((connectionId, i) => {
      const [err, score] = scores[i] as [Error | null, string | null];
      if (err) throw err;
      // Removed between the two reads: it is no longer live.
      if (score === null) return;
      const lastSeen = Number(score);
      const device = parseDevice(devices[connectionId]);
      const nodeKey = conns[connectionId];
      const info: ConnectionInfo = { connectionId, nodeId: decodeURIComponent(nodeKey.slice(nodeKey.lastIndexOf(":") + 1)), connectedAt: device.connectedAt ?? lastSeen, lastSeen };
      if (device.userAgent !== undefined) info.userAgent = device.userAgent;
      if (device.ip !== undefined) info.ip = device.ip;
      list.push(info);
    });
    return list.sort(byConnectedAt);
  }

  async close() {
    await this.release();
  }

  private async remove(ref: ConnectionRef, now: number, staleBefore: string) {
    const reply = (await this.removeScript(
      [this.connsKey(ref.tenantId, ref.userId), this.stateKey(ref.tenantId, ref.userId), this.beatsKey(), this.devicesKey(ref.tenantId, ref.userId)],
      [ref.connectionId, member(ref), now, staleBefore]
    )) as ScriptReply;
    return { changed: reply[0] === 1 && reply[1] === 0, presence: view(ref.userId, reply) };
  }

  private async removeMember(raw: string, now: number, staleBefore: string): Promise<PresenceChange | undefined> {
    const ref = parseMember(raw);
    if (!ref) {
      await this.redis.zrem(this.beatsKey(), raw);
      return undefined;
    }
    const { changed, presence } = await this.remove(ref, now, staleBefore);
    return changed ? { tenantId: ref.tenantId, presence } : undefined;
  }

  private connsKey(tenantId: string, userId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "presence", userId, "conns")}`;
  }
  private stateKey(tenantId: string, userId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "presence", userId)}`;
  }
  private devicesKey(tenantId: string, userId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "presence", userId, "devices")}`;
  }
  private beatsKey() {
    return `${this.prefix}:${globalKey("presence", "beats")}`;
  }
  private nodeKey(nodeId: string) {
    return `${this.prefix}:${globalKey("presence", "node", nodeId)}`;
  }
}

function member(ref: ConnectionRef): string {
  return JSON.stringify([ref.tenantId, ref.userId, ref.connectionId]);
}

function parseMember(raw: string): ConnectionRef | undefined {
  try {
    const [tenantId, userId, connectionId] = JSON.parse(raw) as unknown[];
    if (typeof tenantId === "string" && typeof userId === "string" && typeof connectionId === "string") {
      return { tenantId, userId, connectionId };
    }
  } catch {
    // fall through: a foreign or corrupt member is dropped by the caller
  }
  return undefined;
}

/** A device entry; a missing or corrupt one (written by an older version) is treated as empty. */
function parseDevice(raw: string | undefined): DeviceInfo {
  if (raw === undefined) return {};
  try {
    const value = JSON.parse(raw) as Record<string, unknown>;
    const device: DeviceInfo = {};
    if (typeof value.connectedAt === "number") device.connectedAt = value.connectedAt;
    if (typeof value.userAgent === "string") device.userAgent = value.userAgent;
    if (typeof value.ip === "string") device.ip = value.ip;
    return device;
  } catch {
    return {};
  }
}

function view(userId: string, reply: ScriptReply): Presence {
  const live = reply[1];
  const [status, metadata, lastSeen] = reply[2];
  const presence: Presence = {
    userId,
    status: live > 0 ? ((status as PresenceStatus | null) ?? "online") : "offline",
    lastSeen: lastSeen ? new Date(Number(lastSeen)).toISOString() : null,
    connections: live
  };
  if (live > 0 && metadata) presence.metadata = JSON.parse(metadata) as Record<string, unknown>;
  return presence;
}
