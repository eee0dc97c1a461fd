import type { Context, Service, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/context";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { invalidRequest } from "../lib/errors";
import { APP_EVENT_TYPES, type ConversationMessagePayload, type NotificationPayload } from "../lib/push";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";

/**
 * The server push API for application backends (seed 003's notification bridge, seed 002's
 * server-side events): notifications, conversation messages, feed and count updates, pushed
 * without a socket. Internal callers use `broker.call("push.<action>")`; external backends use
 * REST with a `service` token of the tenant.
 *
 * Every push is an event of the tenant's log (class B: durable, pollable, recoverable) published
 * through `eventbus.publish`, so it is idempotent by `eventId`, rate limited per tenant, handed to
 * consumer groups, and rendered live by every protocol adapter on every gateway (lib/push.ts).
 */
interface PushThis extends Service {
  publish(ctx: Context<unknown, CallerMeta>, event: PublishInput): Promise<PushResult>;
}

interface PublishInput {
  tenantId: string;
  eventId?: string;
  eventType: string;
  payload: unknown;
  audience?: { userId: string } | { userIds: string[]; conversationId?: string };
}

export interface PushResult {
  eventId: string;
  position: string;
  duplicate: boolean;
}

const identifier = { type: "string", min: 1, max: 128 } as const;
const eventId = { ...identifier, optional: true } as const;
const document = { type: "object" } as const;

export function createPushService(_config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, PushThis>({
    name: "push",
    mixins: [TenantScopeMixin()],

    actions: {
      /** `POST /api/push/notifications {userId, eventKey, notification}` → seed 003 `notifications:new`, seed 002 `notification`. */
      notification: {
        params: { tenantId: identifier, eventId, userId: identifier, eventKey: { type: "string", min: 1, max: 256 }, notification: document },
        handler(this: PushThis, ctx: Context<{ tenantId: string; eventId?: string; userId: string; eventKey: string; notification: Record<string, unknown> }, CallerMeta>) {
          const { tenantId, userId, eventKey, notification } = ctx.params;
          const payload: NotificationPayload = { eventKey, notification };
          return this.publish(ctx, { tenantId, eventId: ctx.params.eventId, eventType: APP_EVENT_TYPES.notification, payload, audience: { userId } });
        }
      },

      /**
       * `POST /api/push/messages {conversationId, kind, message, senderId, recipients}` → seed 003
       * `messages:new|updated|deleted` to the conversation's room and every recipient's personal
       * room (the sender included), seed 002 `message` on `conversation:<id>`.
       */
      message: {
        params: {
          tenantId: identifier,
          eventId,
          conversationId: identifier,
          kind: { type: "enum", values: ["new", "updated", "deleted"], optional: true },
          message: document,
          senderId: identifier,
          recipients: { type: "array", items: identifier, max: 1000 }
        },
        handler(this: PushThis, ctx: Context<{ tenantId: string; eventId?: string; conversationId: string; kind?: "new" | "updated" | "deleted"; message: Record<string, unknown>; senderId: string; recipients: string[] }, CallerMeta>) {
          const { tenantId, conversationId, message, senderId } = ctx.params;
          const recipients = [...new Set([...ctx.params.recipients, senderId])];
          const payload: ConversationMessagePayload = { conversationId, message, senderId, recipients };
          const eventType = { new: APP_EVENT_TYPES.messageNew, updated: APP_EVENT_TYPES.messageUpdated, deleted: APP_EVENT_TYPES.messageDeleted }[ctx.params.kind ?? "new"];
          return this.publish(ctx, { tenantId, eventId: ctx.params.eventId, eventType, payload, audience: { userIds: recipients, conversationId } });
        }
      },

      /** `POST /api/push/feed {update}` → seed 002 `feed_update` on `feed:updates` (the whole tenant). */
      feedUpdate: {
        params: { tenantId: identifier, eventId, update: document },
        handler(this: PushThis, ctx: Context<{ tenantId: string; eventId?: string; update: Record<string, unknown> }, CallerMeta>) {
          return this.publish(ctx, { tenantId: ctx.params.tenantId, eventId: ctx.params.eventId, eventType: APP_EVENT_TYPES.feedUpdate, payload: ctx.params.update });
        }
      },

      /** `POST /api/push/counts {userId?, counts}` → seed 002 `count_update`, to one user or the whole tenant. */
      countUpdate: {
        params: { tenantId: identifier, eventId, userId: { ...identifier, optional: true }, counts: document },
        handler(this: PushThis, ctx: Context<{ tenantId: string; eventId?: string; userId?: string; counts: Record<string, unknown> }, CallerMeta>) {
          const { tenantId, userId, counts } = ctx.params;
          return this.publish(ctx, { tenantId, eventId: ctx.params.eventId, eventType: APP_EVENT_TYPES.countUpdate, payload: counts, ...(userId !== undefined ? { audience: { userId } } : {}) });
        }
      }
    },

    methods: {
      async publish(this: PushThis, ctx: Context<unknown, CallerMeta>, input: PublishInput): Promise<PushResult> {
        if (input.audience && "userIds" in input.audience && input.audience.userIds.length === 0) throw invalidRequest("A push needs at least one recipient");
        const { eventId: given, ...rest } = input;
        // ctx.call keeps the caller's identity: eventbus.publish checks the role and the tenant again.
        return ctx.call<PushResult, object>("eventbus.publish", { ...rest, ...(given !== undefined ? { eventId: given } : {}), metadata: { source: "push" } });
      }
    }
  });
}

export default () => createPushService(loadConfig());
