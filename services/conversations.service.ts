import type { Context, Service, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/context";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { authzFailed, notFound } from "../lib/errors";
import { MEMBERS_REMOVED_EVENT, type MembersRemovedNotice } from "../lib/push";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createConversationStore, type ConversationStore } from "../stores/conversations";

/**
 * Conversations as application backends declare them (seed 003): who belongs to which
 * conversation. Realtime adapters ask `isMember` before a socket may join a conversation; removals
 * are broadcast to every gateway so the removed users' sockets leave the conversation's room.
 *
 * Declaring and changing conversations is for backends (callers without a user token, or tokens
 * with role `service`); users cannot add themselves.
 */
interface ConversationsThis extends Service {
  store: ConversationStore;
  requireBackend(ctx: Context<unknown, CallerMeta>): void;
  announceRemoval(notice: MembersRemovedNotice): Promise<void>;
}

const identifier = { type: "string", min: 1, max: 128 } as const;
const userIds = { type: "array", items: identifier, max: 10_000 } as const;
/** Roles that declare conversations; `admin` may read them. */
const BACKEND_ROLES = new Set(["service"]);
const READER_ROLES = new Set(["service", "admin", "super_admin"]);

type ConversationParams = { tenantId: string; conversationId: string };

export function createConversationsService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, ConversationsThis>({
    name: "conversations",
    mixins: [TenantScopeMixin()],

    actions: {
      /** `POST /api/conversations {conversationId, members}`: declare (or extend) a conversation. */
      create: {
        params: { tenantId: identifier, conversationId: identifier, members: { ...userIds, optional: true } },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams & { members?: string[] }, CallerMeta>) {
          this.requireBackend(ctx);
          const { tenantId, conversationId, members } = ctx.params;
          const result = await this.store.create(tenantId, conversationId, members ?? []);
          return { conversationId, ...result };
        }
      },

      /** `POST /api/conversations/:conversationId/members {userIds}`. */
      addMembers: {
        params: { tenantId: identifier, conversationId: identifier, userIds: { ...userIds, min: 1 } },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams & { userIds: string[] }, CallerMeta>) {
          this.requireBackend(ctx);
          const { tenantId, conversationId } = ctx.params;
          const added = await this.store.addMembers(tenantId, conversationId, ctx.params.userIds);
          if (added === undefined) throw notFound("Unknown conversation", { conversationId });
          return { conversationId, added };
        }
      },

      /** `POST /api/conversations/:conversationId/members/remove {userIds}`: their sockets leave the room too. */
      removeMembers: {
        params: { tenantId: identifier, conversationId: identifier, userIds: { ...userIds, min: 1 } },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams & { userIds: string[] }, CallerMeta>) {
          this.requireBackend(ctx);
          const { tenantId, conversationId } = ctx.params;
          const removed = await this.store.removeMembers(tenantId, conversationId, ctx.params.userIds);
          if (removed === undefined) throw notFound("Unknown conversation", { conversationId });
          if (removed.length > 0) await this.announceRemoval({ tenantId, conversationId, userIds: removed });
          return { conversationId, removed };
        }
      },

      /** `DELETE /api/conversations/:conversationId`: every member's sockets leave the room. */
      delete: {
        params: { tenantId: identifier, conversationId: identifier },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams, CallerMeta>) {
          this.requireBackend(ctx);
          const { tenantId, conversationId } = ctx.params;
          const removed = await this.store.delete(tenantId, conversationId);
          if (removed.length > 0) await this.announceRemoval({ tenantId, conversationId, userIds: removed });
          return { conversationId, removed };
        }
      },

      /** `GET /api/conversations/:conversationId`: members (backends and tenant admins). */
      get: {
        params: { tenantId: identifier, conversationId: identifier },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams, CallerMeta>) {
          const caller = ctx.meta.auth;
          if (caller && !READER_ROLES.has(caller.role)) throw authzFailed("Only backends and admins may list a conversation's members");
          const members = await this.store.members(ctx.params.tenantId, ctx.params.conversationId);
          if (members === undefined) throw notFound("Unknown conversation", { conversationId: ctx.params.conversationId });
          return { conversationId: ctx.params.conversationId, members };
        }
      },

      /** Membership check for realtime adapters (a user may ask about themselves only). */
      isMember: {
        visibility: "public",
        params: { tenantId: identifier, conversationId: identifier, userId: identifier },
        async handler(this: ConversationsThis, ctx: Context<ConversationParams & { userId: string }, CallerMeta>) {
          const caller = ctx.meta.auth;
          if (caller && caller.userId !== ctx.params.userId && !READER_ROLES.has(caller.role)) throw authzFailed("Users may only check their own membership");
          return { member: await this.store.isMember(ctx.params.tenantId, ctx.params.conversationId, ctx.params.userId) };
        }
      }
    },

    methods: {
      requireBackend(this: ConversationsThis, ctx: Context<unknown, CallerMeta>) {
        const caller = ctx.meta.auth;
        if (caller && !BACKEND_ROLES.has(caller.role)) throw authzFailed("Declaring conversations needs a token with role 'service'");
      },

      async announceRemoval(this: ConversationsThis, notice: MembersRemovedNotice) {
        // The store is already changed: a gateway that misses this keeps a stale room membership
        // until the socket leaves; joins are checked against the store, which already excludes them.
        await this.broker.broadcast(MEMBERS_REMOVED_EVENT, notice, "gateway").catch((err: Error) =>
          this.logger.warn("Conversation removal not announced", { tenantId: notice.tenantId, conversationId: notice.conversationId, error: err.message })
        );
      }
    },

    created(this: ConversationsThis) {
      this.store = createConversationStore(config);
    },

    async stopped(this: ConversationsThis) {
      await this.store.close();
    }
  });
}

export default () => createConversationsService(loadConfig());
