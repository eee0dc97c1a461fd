import { randomBytes } from "node:crypto";
import type Redis from "ioredis";
import { tenantKey } from "../../lib/keys";
import { defineScript, type LuaScript } from "../redis-connection";
import { formatPosition, ID_INDEX_FACTOR, parsePosition, type AppendResult, type BusEvent, type EventLog, type EventLogLimits, type StoredEvent, withPosition } from "./event-log";

/*
 * One Redis Stream per tenant (every key prefixed with REDIS_KEY_PREFIX):
 *   t:<tenant>:events            stream  field `e` = the event as JSON; ids are Redis time "ms-seq"
 *   t:<tenant>:events:epoch      string  the epoch of this stream; a new one after the stream is lost
 *   t:<tenant>:events:trimmed    string  id of the newest entry trimmed so far
 *   t:<tenant>:events:ids        hash    eventId → position, for idempotency
 *   t:<tenant>:events:idorder    list    "<stream id> <eventId>" in append order, to bound `ids`
 * Redis 7.0 does not move `max-deleted-entry-id` on XTRIM, so trimming records the newest id it
 * removes; a cursor older than that has lost history. Retention is measured on Redis' clock, the
 * same clock that stamps the stream ids. The id index keeps at most ID_INDEX_FACTOR × the event cap
 * and nothing older than retention, so Redis' memory is bounded by the log, not by the traffic.
 */

// Shared by the scripts below. Keys are passed in, never built in Lua.
const TRIM_FUNCTION = `
local function older_than(id, bound)
  local ims, iseq = string.match(id, '(%d+)-(%d+)')
  local bms, bseq = string.match(bound, '(%d+)-(%d+)')
  ims, iseq, bms, bseq = tonumber(ims), tonumber(iseq), tonumber(bms), tonumber(bseq)
  return ims < bms or (ims == bms and iseq < bseq)
end
local function min_id(retentionMs)
  local t = redis.call('TIME')
  local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return string.format('%d', math.max(0, nowMs - retentionMs)) .. '-0'
end
-- An idorder entry is "<stream id> <eventId>"; stream ids hold no space, eventIds may.
local function stream_id_of(entry)
  return string.sub(entry, 1, string.find(entry, ' ', 1, true) - 1)
end
local function event_id_of(entry)
  return string.sub(entry, string.find(entry, ' ', 1, true) + 1)
end
-- Forgets the n oldest eventIds, in chunks that stay below Lua's unpack limit.
local function drop_ids(idsKey, orderKey, n)
  while n > 0 do
    local gone = redis.call('LPOP', orderKey, math.min(n, 1000))
    if not gone then return end
    local names = {}
    for i, entry in ipairs(gone) do names[i] = event_id_of(entry) end
    redis.call('HDEL', idsKey, unpack(names))
    n = n - #gone
  end
end
local function trim_ids(idsKey, orderKey, maxIds, minId)
  local excess = redis.call('LLEN', orderKey) - maxIds
  if excess > 0 then drop_ids(idsKey, orderKey, excess) end
  -- The order list is in stream-id order, so the expired ids are a prefix of it. LINDEX first:
  -- the common case (nothing expired) must cost one command, not a range read.
  local first = redis.call('LINDEX', orderKey, 0)
  while first and older_than(stream_id_of(first), minId) do
    local chunk = redis.call('LRANGE', orderKey, 0, 999)
    local n = 0
    for _, entry in ipairs(chunk) do
      if older_than(stream_id_of(entry), minId) then n = n + 1 else break end
    end
    drop_ids(idsKey, orderKey, n)
    first = redis.call('LINDEX', orderKey, 0)
  end
end
local function trim(stream, trimmedKey, maxLen, minId)
  local lastGone = nil
  local excess = redis.call('XLEN', stream) - maxLen
  if excess > 0 then
    local gone = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
    lastGone = gone[#gone][1]
    redis.call('XTRIM', stream, 'MAXLEN', maxLen)
  end
  -- Only when the oldest entry is expired: XREVRANGE from a bound below every entry walks the
  -- whole stream, so it must not run on every append.
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest > 0 and older_than(oldest[1][1], minId) then
    local older = redis.call('XREVRANGE', stream, '(' .. minId, '-', 'COUNT', 1)
    lastGone = older[1][1]
    redis.call('XTRIM', stream, 'MINID', minId)
  end
  if lastGone then redis.call('SET', trimmedKey, lastGone) end
  return lastGone
end
`;

// KEYS: stream, epoch, ids, trimmed, idorder; ARGV: newEpoch, json, maxLen, retentionMs, eventId, maxIds
const APPEND = `${TRIM_FUNCTION}
local minId = min_id(tonumber(ARGV[4]))
local epoch = redis.call('GET', KEYS[2])
if not epoch or redis.call('EXISTS', KEYS[1]) == 0 then
  -- A lost stream takes its history with it: ids that pointed into it no longer answer.
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[4], KEYS[3], KEYS[5])
end
local known = redis.call('HGET', KEYS[3], ARGV[5])
if known and not older_than(string.match(known, '%.(.*)$'), minId) then return {0, known} end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
trim(KEYS[1], KEYS[4], tonumber(ARGV[3]), minId)
local position = epoch .. '.' .. id
-- Trim before adding: an expired entry for this same eventId must go before the new one is set,
-- or dropping it would delete the new mapping.
trim_ids(KEYS[3], KEYS[5], tonumber(ARGV[6]) - 1, minId)
redis.call('HSET', KEYS[3], ARGV[5], position)
redis.call('RPUSH', KEYS[5], id .. ' ' .. ARGV[5])
return {1, position}
`;

// KEYS: stream, trimmed, ids, idorder; ARGV: maxLen, retentionMs, maxIds
const TRIM = `${TRIM_FUNCTION}
local minId = min_id(tonumber(ARGV[2]))
local before = redis.call('XLEN', KEYS[1])
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]), minId)
trim_ids(KEYS[3], KEYS[4], tonumber(ARGV[3]), minId)
return before - redis.call('XLEN', KEYS[1])
`;

// KEYS: stream, epoch, trimmed; ARGV: cursorEpoch ('' = from the start), cursorId, count
// Returns {status, epoch, trimmedUpTo, lastId, entries}; status 1 = ok, 0 = other epoch or no log.
const READ = `
local epoch = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[1] == '' then return {1, epoch or '', '0-0', '', {}} end
  return {0, epoch or '', '0-0', '', {}}
end
local trimmed = redis.call('GET', KEYS[3]) or '0-0'
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local lastId = ''
if #last > 0 then lastId = last[1][1] end
local start = '-'
if ARGV[1] ~= '' then
  if ARGV[1] ~= epoch then return {0, epoch, trimmed, lastId, {}} end
  start = '(' .. ARGV[2]
end
return {1, epoch, trimmed, lastId, redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[3])}
`;

type StreamEntry = [string, string[]];

export class RedisEventLog implements EventLog {
  private readonly appendScript: LuaScript;
  private readonly readScript: LuaScript;
  private readonly trimScript: LuaScript;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: EventLogLimits,
    private readonly release: () => Promise<void> = async () => undefined
  ) {
    this.appendScript = defineScript(redis, "pf2EventAppend", APPEND);
    this.readScript = defineScript(redis, "pf2EventRead", READ);
    this.trimScript = defineScript(redis, "pf2EventTrim", TRIM);
  }

  /** `now` is ignored: Redis trims by its own clock, which also stamps the stream ids. */
  async append(tenantId: string, event: BusEvent, _now: number): Promise<AppendResult> {
    const json = JSON.stringify(event);
    const [written, position] = (await this.appendScript(
      [this.streamKey(tenantId), this.epochKey(tenantId), this.idsKey(tenantId), this.trimmedKey(tenantId), this.idOrderKey(tenantId)],
      [newEpoch(), json, this.limits.maxEventsPerTenant, this.limits.retentionMs, event.eventId, this.maxIds()]
    )) as [number, string];
    if (written === 1) return { event: withPosition(event, position), duplicate: false };
    const original = await this.eventAt(tenantId, position);
    return { event: original ?? withPosition(event, position), duplicate: true };
  }

  async read(tenantId: string, after: string | undefined, limit: number) {
    const cursor = after === undefined ? undefined : parsePosition(after);
    if (after !== undefined && (!cursor || cursor.offset.length !== 2)) {
      return { events: [], hasMore: false, next: await this.head(tenantId), lost: true };
    }
    const cursorId = cursor ? cursor.offset.join("-") : "";
    const [ok, epoch, trimmedUpTo, lastId, entries] = (await this.readScript(
      [this.streamKey(tenantId), this.epochKey(tenantId), this.trimmedKey(tenantId)],
      [cursor ? cursor.epoch : "", cursorId, limit + 1]
    )) as [number, string, string, string, StreamEntry[]];
    const head = lastId && epoch ? formatPosition(epoch, lastId) : null;
    // A cursor is served only if nothing after it was trimmed and it is not ahead of the log. When
    // trimming emptied the stream, the newest id this epoch ever wrote is the newest one trimmed.
    const newestId = lastId !== "" ? lastId : trimmedUpTo;
    if (ok !== 1 || (cursor && (compareIds(cursorId, trimmedUpTo) < 0 || compareIds(cursorId, newestId) > 0))) {
      return { events: [], hasMore: false, next: head, lost: true };
    }
    const events = entries.slice(0, limit).map(entry => decode(epoch, entry));
    const next = events.length > 0 ? events[events.length - 1].position : (after ?? head);
    return { events, hasMore: entries.length > limit, next, lost: false };
  }

  async tail(tenantId: string, count: number) {
    if (count <= 0) return [];
    const [epoch, entries] = await Promise.all([
      this.redis.get(this.epochKey(tenantId)),
      this.redis.xrevrange(this.streamKey(tenantId), "+", "-", "COUNT", count) as Promise<StreamEntry[]>
    ]);
    return entries.reverse().map(entry => decode(epoch ?? "", entry));
  }

  async head(tenantId: string) {
    const [epoch, entries] = await Promise.all([
      this.redis.get(this.epochKey(tenantId)),
      this.redis.xrevrange(this.streamKey(tenantId), "+", "-", "COUNT", 1) as Promise<StreamEntry[]>
    ]);
    return epoch && entries.length > 0 ? formatPosition(epoch, entries[0][0]) : null;
  }

  /** Trims by Redis' clock (see append); `now` is ignored. */
  async trim(tenantId: string, _now: number) {
    return (await this.trimScript(
      [this.streamKey(tenantId), this.trimmedKey(tenantId), this.idsKey(tenantId), this.idOrderKey(tenantId)],
      [this.limits.maxEventsPerTenant, this.limits.retentionMs, this.maxIds()]
    )) as number;
  }

  async close() {
    await this.release();
  }

  private async eventAt(tenantId: string, position: string): Promise<StoredEvent | undefined> {
    const parsed = parsePosition(position);
    if (!parsed) return undefined;
    const id = parsed.offset.join("-");
    const entries = (await this.redis.xrange(this.streamKey(tenantId), id, id)) as StreamEntry[];
    return entries.length > 0 ? decode(parsed.epoch, entries[0]) : undefined;
  }

  private streamKey(tenantId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "events")}`;
  }
  private epochKey(tenantId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "events", "epoch")}`;
  }
  private trimmedKey(tenantId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "events", "trimmed")}`;
  }
  private idsKey(tenantId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "events", "ids")}`;
  }
  private idOrderKey(tenantId: string) {
    return `${this.prefix}:${tenantKey(tenantId, "events", "idorder")}`;
  }
  private maxIds() {
    return this.limits.maxEventsPerTenant * ID_INDEX_FACTOR;
  }
}

function newEpoch() {
  return `r${randomBytes(6).toString("hex")}`;
}

function decode(epoch: string, [id, fields]: StreamEntry): StoredEvent {
  const json = fields[fields.indexOf("e") + 1];
  return { ...(JSON.parse(json) as BusEvent), position: formatPosition(epoch, id) };
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am !== bm ? am - bm : (as ?? 0) - (bs ?? 0);
}
