import type { Context, Service, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/context";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { authzFailed } from "../lib/errors";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createRoomStore, type RoomStore } from "../stores/rooms";

/**
 * Room membership per tenant (seed 000 `join_room` / `leave_room`). Gateways record joins and
 * leaves here and deliver room traffic from their own Socket.IO rooms; this service answers the
 * cluster-wide questions and forgets the memberships of connections and nodes that are gone.
 */
interface RoomsThis extends Service {
  store: RoomStore;
}

const identifier = { type: "string", min: 1, max: 128 } as const;

/** Roles that may inspect any room of their own tenant without being in it. */
const ROOM_ADMIN_ROLES = new Set(["admin", "service", "super_admin"]);

export function createRoomsService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, RoomsThis>({
    name: "rooms",
    mixins: [TenantScopeMixin()],

    actions: {
      join: {
        visibility: "public",
        params: { tenantId: identifier, roomId: identifier, connectionId: identifier, userId: identifier, nodeId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; roomId: string; connectionId: string; userId: string; nodeId: string }>) {
          const { tenantId, roomId, connectionId, userId, nodeId } = ctx.params;
          return { roomId, joined: await this.store.join(tenantId, roomId, { connectionId, userId, nodeId }) };
        }
      },

      leave: {
        visibility: "public",
        params: { tenantId: identifier, roomId: identifier, connectionId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; roomId: string; connectionId: string }>) {
          const { tenantId, roomId, connectionId } = ctx.params;
          return { roomId, left: await this.store.leave(tenantId, roomId, connectionId) };
        }
      },

      leaveAll: {
        visibility: "public",
        params: { tenantId: identifier, connectionId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; connectionId: string }>) {
          return { roomIds: await this.store.leaveAll(ctx.params.tenantId, ctx.params.connectionId) };
        }
      },

      /** `GET /api/rooms/:roomId/members`: a user sees members of rooms one of their devices is in. */
      members: {
        params: { tenantId: identifier, roomId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; roomId: string }, CallerMeta>) {
          const { tenantId, roomId } = ctx.params;
          const caller = ctx.meta.auth;
          if (caller && !ROOM_ADMIN_ROLES.has(caller.role)) {
            const callerRooms = await this.store.roomsOfUser(tenantId, caller.userId);
            if (!callerRooms.includes(roomId)) throw authzFailed("Only members may list a room's members", { roomId });
          }
          const members = await this.store.members(tenantId, roomId);
          return { roomId, members: members.map(({ userId, connectionId }) => ({ userId, connectionId })) };
        }
      },

      ofUser: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; userId: string }>) {
          return this.store.roomsOfUser(ctx.params.tenantId, ctx.params.userId);
        }
      },

      ofConnection: {
        visibility: "public",
        params: { tenantId: identifier, connectionId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; connectionId: string }>) {
          return this.store.roomsOfConnection(ctx.params.tenantId, ctx.params.connectionId);
        }
      },

      /** Called by the presence service once it has pushed the departed node's presence changes. */
      removeNode: {
        visibility: "public",
        params: { nodeId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ nodeId: string }>) {
          return { removed: await this.store.removeNode(ctx.params.nodeId) };
        }
      }
    },

    created(this: RoomsThis) {
      this.store = createRoomStore(config);
    },

    async stopped(this: RoomsThis) {
      await this.store.close();
    }
  });
}

export default () => createRoomsService(loadConfig());
