import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Context, Service, ServiceSchema } from "moleculer";
import type { DeadLetterFilter } from "../lib/channel-adapter";
import { channelSender, eventBusChannelsOf } from "../lib/channels";
import { loadConfig, type Config } from "../lib/config";
import type { CallerMeta } from "../lib/context";
import { PUSH_EVENT, type PushNotice } from "../lib/push";
import { authzFailed, ErrorCode, invalidRequest, rateLimited, RealtimeError, toClientError } from "../lib/errors";
import { receiptOf, type AppendOutcome } from "../lib/append-batcher";
import { createEventHandoff, type EventHandoff } from "../lib/event-handoff";
import { readVisible, type Viewer } from "../lib/visibility";
import { assertOwnTenantItems, TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createEventLog, type Audience, type BusEvent, type EventLog, type ReadResult, type StoredEvent } from "../stores/event-log";
import { createRateLimitStore, type RateLimitStore } from "../stores/rate-limit";
import { appliedRateLimit } from "../stores/rate-limit/rate-limit-store";
import { asServiceSchema } from "../types/service-schema";
import { OPERATOR, SYSTEM_TENANT, auditFirst, auditReporterOf } from "../lib/audit-trail";
import { reportRateLimited } from "../lib/security-audit";
import { isoNow } from "../lib/iso-now";

/**
 * The event bus (seed 000 "Event Bus API"): publishes events to the tenant's ordered, durable log,
 * pushes them to the tenant's connected clients with their position, hands them to consumer groups
 * (the EVENT_BUS_STREAM_NAME channel, lib/channels.ts), and serves reads from a cursor (replay,
 * `GET /api/events/poll`). Operators list and redrive the consumers' dead letters.
 */
interface EventBusThis extends Service {
  log: EventLog;
  rateLimits: RateLimitStore;
  handoff: EventHandoff;
  appended: EventEmitter;
  /** Appends of the last seconds, for `eventsPerSecond` in /health. */
  recentAppends: number[];
  store(tenantId: string, event: BusEvent): Promise<{ event: StoredEvent; duplicate: boolean }>;
  viewerOf(tenantId: string, userId: string): Promise<Viewer>;
  /** Set once the service stops: pending long polls return. */
  stopping?: boolean;
  longPoll(tenantId: string, userId: string, after: string | undefined, limit: number, wait: number, eventTypes?: string[]): Promise<ReadResult>;
  toChannel(event: StoredEvent): Promise<void>;
  channelStats(): Promise<Record<string, unknown>>;
}

const identifier = { type: "string", min: 1, max: 128 } as const;
const audienceSchema = {
  type: "object",
  optional: true,
  strict: true,
  props: {
    userId: { ...identifier, optional: true },
    roomId: { ...identifier, optional: true },
    userIds: { type: "array", items: identifier, min: 1, max: 1000, unique: true, optional: true },
    conversationId: { ...identifier, optional: true }
  }
} as const;

export const publishParams = {
  eventId: { ...identifier, optional: true },
  eventType: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_.:-]+$/ },
  tenantId: identifier,
  timestamp: { type: "date", convert: true, optional: true },
  payload: { type: "any", optional: true },
  metadata: { type: "object", optional: true },
  schemaVersion: { type: "string", min: 1, max: 32, optional: true },
  audience: audienceSchema
} as const;

interface PublishParams {
  eventId?: string;
  eventType: string;
  tenantId: string;
  timestamp?: Date;
  payload?: unknown;
  metadata?: Record<string, unknown>;
  schemaVersion?: string;
  audience?: { userId?: string; roomId?: string; userIds?: string[]; conversationId?: string };
}

const POLL_MAX_LIMIT = 1000;
const eventTypesSchema = { type: "array", items: { type: "string", min: 1, max: 128 }, max: 100, optional: true } as const;
const DEAD_LETTERS_MAX_LIMIT = 1000;
const REDRIVE_MAX = 10_000;
/** /health asks `stats` with a 1 s timeout; the channel figures must not make it miss that. */
const CHANNEL_STATS_TIMEOUT_MS = 500;
const POLL_MAX_WAIT_SECONDS = 30;
/** Long polls re-read at least this often, to see appends made on other nodes. */
const LONG_POLL_RECHECK_MS = 250;

function audienceOf(input: PublishParams["audience"]): Audience | undefined {
  if (!input) return undefined;
  const named = [input.userId, input.roomId, input.userIds].filter(v => v !== undefined).length;
  if (named > 1) throw invalidRequest("audience names one of userId, roomId or userIds");
  if (input.conversationId !== undefined && input.userIds === undefined) throw invalidRequest("audience.conversationId goes with audience.userIds");
  if (input.userIds !== undefined) return { userIds: input.userIds, ...(input.conversationId !== undefined ? { conversationId: input.conversationId } : {}) };
  if (input.userId !== undefined) return { userId: input.userId };
  if (input.roomId !== undefined) return { roomId: input.roomId };
  return undefined;
}

export function createEventBusService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, EventBusThis>({
    name: "eventbus",
    mixins: [TenantScopeMixin()],

    actions: {
      /**
       * Publish an event (`broker.call("eventbus.publish", event)`, `POST /api/events/publish`).
       * Resolves once the event is durable in the log and handed to the consumer groups' channel;
       * idempotent by eventId. When the channel refuses it, publish rejects (503, retryable) and a
       * retry with the same eventId sends it; an ordinary duplicate is not sent again.
       */
      publish: {
        params: publishParams,
        async handler(this: EventBusThis, ctx: Context<PublishParams, CallerMeta>) {
          const caller = ctx.meta.auth;
          if (caller && caller.role !== "service") throw authzFailed("Publishing needs a token with role 'service'");
          const { tenantId } = ctx.params;
          const now = Date.now();
          const quota = await this.rateLimits.consume(tenantId, "publish", config.eventBusPublishRateLimit, 1000, now);
          if (!quota.allowed) {
            reportRateLimited(this.broker, caller ?? { tenantId, ...OPERATOR }, "publish", { via: caller ? "rest" : "action", max: config.eventBusPublishRateLimit, windowMs: 1000 });
            throw rateLimited({ retryAfterMs: quota.retryAfterMs, limit: config.eventBusPublishRateLimit, windowMs: 1000 });
          }
          ctx.meta.$rateLimit = appliedRateLimit(quota, config.eventBusPublishRateLimit, 1000, now);
          const audience = audienceOf(ctx.params.audience);
          const event: BusEvent = {
            eventId: ctx.params.eventId ?? randomUUID(),
            eventType: ctx.params.eventType,
            tenantId,
            timestamp: ctx.params.timestamp ? ctx.params.timestamp.toISOString() : isoNow(),
            payload: ctx.params.payload ?? null,
            metadata: ctx.params.metadata ?? {},
            schemaVersion: ctx.params.schemaVersion ?? "1.0",
            ...(audience ? { audience } : {})
          };
          const channelled = channelSender(this.broker) !== undefined && eventBusChannelsOf(this.broker) !== undefined;
          // See lib/event-handoff.ts: an earlier attempt of this eventId may have stored the event
          // without handing it to the consumer groups.
          const markedNow = channelled ? await this.handoff.begin(tenantId, event.eventId, Date.now()) : false;
          const { event: stored, duplicate } = await this.store(tenantId, event);
          // A retry of an attempt that did not finish (its mark was still set) may find the event
          // stored but never pushed: push it again (clients drop duplicates by eventId). An
          // ordinary duplicate is not pushed twice.
          const unfinishedRetry = duplicate && channelled && !markedNow;
          if (!duplicate || unfinishedRetry) {
            // Realtime is best effort on top of the durable log: a client that misses it replays it.
            // Every gateway renders the event for each protocol it serves (lib/push.ts).
            await this.broker.broadcast(PUSH_EVENT, { stored } satisfies PushNotice, "gateway").catch((err: Error) => this.logger.warn("Realtime push failed", { tenantId, error: err.message }));
          }
          if (channelled) {
            if (!duplicate || !markedNow) await this.toChannel(stored);
            await this.handoff.end(tenantId, stored.eventId).catch((err: Error) => this.logger.warn("Could not clear an event handoff mark", { tenantId, error: err.message }));
          }
          return { eventId: stored.eventId, position: stored.position, duplicate };
        }
      },

      /** Appends an already-formed event (gateways persisting class B/C messages). */
      append: {
        visibility: "public",
        params: { tenantId: identifier, event: { type: "object" } },
        async handler(this: EventBusThis, ctx: Context<{ tenantId: string; event: BusEvent }>) {
          if (ctx.params.event.tenantId !== ctx.params.tenantId) throw invalidRequest("event.tenantId must be the tenant");
          return this.store(ctx.params.tenantId, ctx.params.event);
        }
      },

      /**
       * Appends a gateway's batch of already-formed events (one request per event-loop turn of the
       * gateway instead of one per message; lib/append-batcher.ts). Appends in order and answers
       * per event, so one refused event does not fail the others.
       */
      appendMany: {
        visibility: "public",
        params: { events: { type: "array", min: 1, max: 1000, items: { type: "object", props: { tenantId: identifier }, strict: false } } },
        async handler(this: EventBusThis, ctx: Context<{ events: BusEvent[] }, CallerMeta>): Promise<AppendOutcome[]> {
          assertOwnTenantItems(this.broker, this.logger, ctx.meta.auth, ctx.params.events, "eventbus.appendMany");
          const outcomes: AppendOutcome[] = [];
          for (const event of ctx.params.events) {
            try {
              outcomes.push({ ok: receiptOf(await this.store(event.tenantId, event)) });
            } catch (err) {
              const { body } = toClientError(err);
              outcomes.push({ error: { message: body.error, code: body.code } });
            }
          }
          return outcomes;
        }
      },

      /** Events after a cursor that a user may see (tenant-wide, theirs, their rooms'). */
      read: {
        visibility: "public",
        params: {
          tenantId: identifier,
          userId: identifier,
          rooms: { type: "array", items: "string", max: 10000, optional: true },
          after: { type: "string", max: 200, optional: true },
          limit: { type: "number", integer: true, min: 1, max: POLL_MAX_LIMIT, optional: true },
          eventTypes: eventTypesSchema
        },
        async handler(this: EventBusThis, ctx: Context<{ tenantId: string; userId: string; rooms?: string[]; after?: string; limit?: number; eventTypes?: string[] }>): Promise<ReadResult> {
          const { tenantId, userId, rooms, after, limit, eventTypes } = ctx.params;
          return readVisible((a, l) => this.log.read(tenantId, a, l), after, limit ?? 100, { userId, rooms: new Set(rooms ?? []), ...(eventTypes ? { eventTypes: new Set(eventTypes) } : {}) });
        }
      },

      /**
       * The long poll behind every polling transport, without a rate limit of its own (callers apply
       * theirs): what `userId` may see after `lastEventId`, waiting up to `wait` s for something.
       */
      pollFor: {
        visibility: "public",
        params: {
          tenantId: identifier,
          userId: identifier,
          lastEventId: { type: "string", max: 200, optional: true },
          limit: { type: "number", integer: true, min: 1, max: POLL_MAX_LIMIT, optional: true },
          wait: { type: "number", min: 0, max: POLL_MAX_WAIT_SECONDS, optional: true },
          eventTypes: eventTypesSchema
        },
        handler(this: EventBusThis, ctx: Context<{ tenantId: string; userId: string; lastEventId?: string; limit?: number; wait?: number; eventTypes?: string[] }>) {
          const { tenantId, userId, lastEventId, limit = 100, wait = 0, eventTypes } = ctx.params;
          return this.longPoll(tenantId, userId, lastEventId || undefined, limit, wait, eventTypes);
        }
      },

      /** `GET /api/events/poll?lastEventId=&limit=&wait=` (seed 000, class B fallback). */
      poll: {
        params: {
          tenantId: identifier,
          lastEventId: { type: "string", max: 200, optional: true },
          limit: { type: "number", integer: true, min: 1, max: POLL_MAX_LIMIT, convert: true, optional: true },
          wait: { type: "number", min: 0, max: POLL_MAX_WAIT_SECONDS, convert: true, optional: true }
        },
        async handler(this: EventBusThis, ctx: Context<{ tenantId: string; lastEventId?: string; limit?: number; wait?: number }, CallerMeta>) {
          const { tenantId, lastEventId, limit = 100, wait = 0 } = ctx.params;
          const caller = ctx.meta.auth;
          if (!caller) throw invalidRequest("poll is made on behalf of a user");
          const now = Date.now();
          const quota = await this.rateLimits.consume(tenantId, `poll:${caller.userId}`, config.pollRateLimit, 60_000, now);
          if (!quota.allowed) {
            reportRateLimited(this.broker, caller, "poll", { via: "rest", max: config.pollRateLimit, windowMs: 60_000 });
            throw rateLimited({ retryAfterMs: quota.retryAfterMs, limit: config.pollRateLimit, windowMs: 60_000 });
          }
          ctx.meta.$rateLimit = appliedRateLimit(quota, config.pollRateLimit, 60_000, now);
          const result = await this.longPoll(tenantId, caller.userId, lastEventId || undefined, limit, wait);
          return {
            events: result.events,
            hasMore: result.hasMore,
            nextEventId: result.next,
            ...(result.lost ? { historyLost: true } : {})
          };
        }
      },

      /** The newest `count` events a user may see, oldest first (a snapshot). */
      tail: {
        visibility: "public",
        params: { tenantId: identifier, count: { type: "number", integer: true, min: 1, max: 10000 } },
        async handler(this: EventBusThis, ctx: Context<{ tenantId: string; count: number }>) {
          return this.log.tail(ctx.params.tenantId, ctx.params.count);
        }
      },

      /** For /health: throughput of the last 10 s and whether the backend answers. */
      stats: {
        visibility: "public",
        async handler(this: EventBusThis) {
          const now = Date.now();
          this.recentAppends = this.recentAppends.filter(t => t > now - 10_000);
          let status = "healthy";
          try {
            await this.log.head("__health__");
          } catch {
            status = "unhealthy";
          }
          const channels = await this.channelStats();
          return { status, eventsPerSecond: Math.round((this.recentAppends.length / 10) * 10) / 10, backend: config.redisUrl ? "redis" : "memory", ...channels };
        }
      },

      /**
       * Dead-lettered events of the consumer groups, oldest first (operators: REPL / cluster only).
       * With Redis the queue is shared by all nodes; in memory it is this process's consumers'.
       */
      deadLetters: {
        visibility: "public",
        params: {
          tenantId: { ...identifier, optional: true },
          limit: { type: "number", integer: true, min: 1, max: DEAD_LETTERS_MAX_LIMIT, convert: true, optional: true }
        },
        async handler(this: EventBusThis, ctx: Context<{ tenantId?: string; limit?: number }>) {
          const { adapter } = requireChannels(this);
          const filter: DeadLetterFilter = { tenantId: ctx.params.tenantId, limit: ctx.params.limit ?? 100 };
          const [deadLetters, total] = await Promise.all([adapter.listDeadLetters(filter), adapter.deadLetterCount()]);
          return { deadLetters, total };
        }
      },

      /**
       * Re-sends dead-lettered events to their channel, for the group that failed them only, and
       * removes them from the dead-letter queue: those named by `ids`, or with `all: true` every one
       * (of `tenantId` when given). Audited (`eventbus.redrive` in the tenant's chain, `_system`
       * without one): the request is recorded before anything moves (refused if it cannot be), the
       * result after.
       */
      redrive: {
        visibility: "public",
        params: {
          ids: { type: "array", items: { type: "string", min: 1, max: 64 }, min: 1, max: REDRIVE_MAX, optional: true },
          all: { type: "boolean", optional: true },
          tenantId: { ...identifier, optional: true },
          limit: { type: "number", integer: true, min: 1, max: REDRIVE_MAX, convert: true, optional: true }
        },
        async handler(this: EventBusThis, ctx: Context<{ ids?: string[]; all?: boolean; tenantId?: string; limit?: number }, CallerMeta>) {
          const { ids, all, tenantId, limit } = ctx.params;
          if (!ids && all !== true) throw invalidRequest("Name the dead letters to redrive (ids) or pass all: true");
          const { adapter } = requireChannels(this);
          const caller = ctx.meta.auth;
          const entry = {
            tenantId: tenantId ?? SYSTEM_TENANT,
            actor: caller ? { userId: caller.userId, role: caller.role } : OPERATOR,
            action: "eventbus.redrive",
            target: tenantId !== undefined ? `tenant:${tenantId}` : "dead-letters:*"
          };
          const request = { ...(ids ? { ids: ids.length, idsSample: ids.slice(0, 20) } : { all: true }), limit: limit ?? REDRIVE_MAX };
          const { id: requestId } = await auditFirst(this.broker, { ...entry, outcome: "requested", details: request });
          let result: Awaited<ReturnType<typeof adapter.redrive>>;
          try {
            result = await adapter.redrive({ ids, tenantId, limit: limit ?? REDRIVE_MAX });
          } catch (err) {
            auditReporterOf(this.broker).record({ ...entry, outcome: "failure", details: { ...request, requestId, error: (err as Error).message.slice(0, 500) } });
            throw err;
          }
          auditReporterOf(this.broker).record({ ...entry, outcome: "success", details: { ...request, requestId, redriven: result.redriven.length, skipped: result.skipped.length } });
          this.logger.info("Redrove dead letters", { redriven: result.redriven.length, skipped: result.skipped.length, tenantId });
          return result;
        }
      }
    },

    methods: {
      async store(this: EventBusThis, tenantId: string, event: BusEvent) {
        const result = await this.log.append(tenantId, event, Date.now());
        if (!result.duplicate) {
          this.recentAppends.push(Date.now());
          if (this.recentAppends.length > 100_000) this.recentAppends.splice(0, 50_000);
          this.appended.emit(tenantId);
        }
        return result;
      },

      async toChannel(this: EventBusThis, event: StoredEvent) {
        const send = channelSender(this.broker);
        const channels = eventBusChannelsOf(this.broker);
        if (!send || !channels) return;
        try {
          await send(channels.settings.channel, event, { xaddMaxLen: `~${channels.settings.streamMaxLen}` });
        } catch (err) {
          this.logger.warn("Event stored but not handed to consumer groups", { tenantId: event.tenantId, eventId: event.eventId, error: (err as Error).message });
          // The publisher retries with the same eventId; the handoff mark makes that retry send it.
          throw new RealtimeError(ErrorCode.INTERNAL_ERROR, "Event stored but not yet delivered to consumers; retry with the same eventId", { retryable: true, eventId: event.eventId }, 503);
        }
      },

      /** Dead-letter count and, with Redis, each consumer group's pending and lag; {} when unknown. */
      async channelStats(this: EventBusThis): Promise<Record<string, unknown>> {
        const channels = eventBusChannelsOf(this.broker);
        if (!channels) return {};
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("timeout")), CHANNEL_STATS_TIMEOUT_MS);
        });
        try {
          const [deadLetters, consumerGroups] = await Promise.race([
            Promise.all([channels.adapter.deadLetterCount(), channels.adapter.consumerGroups(channels.settings.channel)]),
            timeout
          ]);
          return { deadLetters, ...(consumerGroups ? { consumerGroups } : {}) };
        } catch {
          return {};
        } finally {
          clearTimeout(timer);
        }
      },

      async longPoll(this: EventBusThis, tenantId: string, userId: string, after: string | undefined, limit: number, wait: number, eventTypes?: string[]): Promise<ReadResult> {
        const viewer = await this.viewerOf(tenantId, userId);
        if (eventTypes) viewer.eventTypes = new Set(eventTypes);
        const read = () => readVisible((a, l) => this.log.read(tenantId, a, l), after, limit, viewer);
        let result = await read();
        const deadline = Date.now() + wait * 1000;
        // A stopping service answers its pending long polls with what it has.
        while (!result.lost && result.events.length === 0 && Date.now() < deadline && !this.stopping) {
          await new Promise<void>(resolve => {
            const done = () => {
              clearTimeout(timer);
              this.appended.off(tenantId, done);
              resolve();
            };
            const timer = setTimeout(done, Math.min(LONG_POLL_RECHECK_MS, Math.max(0, deadline - Date.now())));
            timer.unref();
            this.appended.on(tenantId, done);
          });
          result = await read();
        }
        return result;
      },

      async viewerOf(this: EventBusThis, tenantId: string, userId: string): Promise<Viewer> {
        // Rooms are connection-level; a poller sees the rooms its user is in on any device. Without
        // the rooms service it still sees tenant-wide and personal events.
        const rooms = await this.broker.call<string[], { tenantId: string; userId: string }>("rooms.ofUser", { tenantId, userId }).catch(() => [] as string[]);
        return { userId, rooms: new Set(rooms) };
      }
    },

    created(this: EventBusThis) {
      this.log = createEventLog(config);
      this.rateLimits = createRateLimitStore(config);
      this.handoff = createEventHandoff(config);
      this.appended = new EventEmitter();
      this.appended.setMaxListeners(0);
      this.recentAppends = [];
    },

    started(this: EventBusThis) {
      if (!channelSender(this.broker) || !eventBusChannelsOf(this.broker)) {
        this.logger.warn("No event-bus channel on this broker (build it with channelMiddlewares): consumer groups receive nothing");
      }
    },

    async stopped(this: EventBusThis) {
      this.stopping = true;
      await this.log.close();
      await this.rateLimits.close();
      await this.handoff.close();
    }
  });
}

function requireChannels(service: EventBusThis) {
  const channels = eventBusChannelsOf(service.broker);
  if (!channels) throw new RealtimeError(ErrorCode.INTERNAL_ERROR, "Consumer groups are not enabled on this node (no channel middleware)");
  return channels;
}

export default () => createEventBusService(loadConfig());
