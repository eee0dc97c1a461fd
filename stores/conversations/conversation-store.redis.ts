import type Redis from "ioredis";
import { tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import type { ConversationStore } from "./conversation-store";

/*
 * Layout (every key prefixed with REDIS_KEY_PREFIX):
 *   t:<tenant>:conv:<id>          string  "1" while the conversation exists (it may have no members)
 *   t:<tenant>:conv:<id>:members  set     user ids
 */

/** KEYS: marker, members; ARGV: user ids. Returns the ids added, or false for an unknown conversation. */
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local added = {}
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then table.insert(added, ARGV[i]) end
end
return added
`;

const REMOVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local removed = {}
for i = 1, #ARGV do
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then table.insert(removed, ARGV[i]) end
end
return removed
`;

/** Returns [existed (0|1), ...members]. */
const CREATE = `
local existed = redis.call('SET', KEYS[1], '1', 'GET')
for i = 1, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
local members = redis.call('SMEMBERS', KEYS[2])
table.insert(members, 1, existed and 1 or 0)
return members
`;

const DELETE = `
local members = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return members
`;

export class RedisConversationStore implements ConversationStore {
  private readonly addScript: LuaScript;
  private readonly removeScript: LuaScript;
  private readonly createScript: LuaScript;
  private readonly deleteScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly release: () => Promise<void>
  ) {
    this.addScript = defineScript(redis, "pf2ConvAdd", ADD);
    this.removeScript = defineScript(redis, "pf2ConvRemove", REMOVE);
    this.createScript = defineScript(redis, "pf2ConvCreate", CREATE);
    this.deleteScript = defineScript(redis, "pf2ConvDelete", DELETE);
  }

  private keys(tenantId: string, conversationId: string): [string, string] {
    const base = `${this.prefix}:${tenantKey(tenantId, "conv", conversationId)}`;
    return [base, `${base}:members`];
  }

  async create(tenantId: string, conversationId: string, members: string[]) {
    const [existed, ...all] = (await this.createScript(this.keys(tenantId, conversationId), [...new Set(members)])) as [number, ...string[]];
    return { created: existed === 0, members: all.sort() };
  }

  async addMembers(tenantId: string, conversationId: string, userIds: string[]) {
    const added = (await this.addScript(this.keys(tenantId, conversationId), [...new Set(userIds)])) as string[] | null;
    return added ?? undefined;
  }

  async removeMembers(tenantId: string, conversationId: string, userIds: string[]) {
    const removed = (await this.removeScript(this.keys(tenantId, conversationId), [...new Set(userIds)])) as string[] | null;
    return removed ?? undefined;
  }

  async members(tenantId: string, conversationId: string) {
    const [marker, membersKey] = this.keys(tenantId, conversationId);
    const [[, exists], [, members]] = (await this.redis.multi().exists(marker).smembers(membersKey).exec()) as [[null, number], [null, string[]]];
    return exists === 1 ? members.sort() : undefined;
  }

  async isMember(tenantId: string, conversationId: string, userId: string) {
    return (await this.redis.sismember(this.keys(tenantId, conversationId)[1], userId)) === 1;
  }

  async delete(tenantId: string, conversationId: string) {
    return ((await this.deleteScript(this.keys(tenantId, conversationId), [])) as string[]).sort();
  }

  async close() {
    await this.release();
  }
}
