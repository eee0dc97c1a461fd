import type { Context, Service, ServiceBroker, ServiceSchema } from "moleculer";
import { OPERATOR, auditReporterOf } from "../lib/audit-trail";
import type { CallerMeta } from "../lib/context";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { authzFailed, invalidRequest, notFound } from "../lib/errors";
import { admits, isRoomAdmin } from "../lib/room-access";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createRoomStore, type RoomInfo, type RoomStore, type RoomUpdate } from "../stores/rooms";

/**
 * Room membership per tenant (seed 000 `join_room` / `leave_room`). Gateways record joins and
 * leaves here and deliver room traffic from their own Socket.IO rooms; this service answers the
 * cluster-wide questions and forgets the memberships of connections and nodes that are gone.
 */
interface RoomsThis extends Service, LocalRooms {
  store: RoomStore;
}

/** What a service of the same process may call as a function instead of an action. */
export interface LocalRooms {
  /** The rooms of each of these users of one tenant, by userId (each user once). */
  roomsOfUsers(tenantId: string, userIds: readonly string[]): Promise<Map<string, string[]>>;
}

const identifier = { type: "string", min: 1, max: 128 } as const;
/** userIds and roles of room settings: what a token's claims may hold (lib/auth.ts isIdentifier). */
const claimValue = { type: "string", min: 1, max: 128, pattern: /^[^\u0000-\u001f\u007f]+$/ } as const;
const MAX_ROOM_MEMBERS = 10_000;
const MAX_ROOM_ROLES = 32;
const userList = { type: "array", items: claimValue, max: MAX_ROOM_MEMBERS, optional: true } as const;
const roleList = { type: "array", items: claimValue, max: MAX_ROOM_ROLES, optional: true } as const;

interface CreateParams {
  tenantId: string;
  roomId: string;
  private?: boolean;
  members?: string[];
  allowedRoles?: string[];
}

type UpdateParams = { tenantId: string; roomId: string } & Omit<RoomUpdate, "updatedAt">;

/** Client calls need a room-admin role; internal calls (no `auth`) are trusted. */
function requireRoomAdmin(ctx: Context<unknown, CallerMeta>, roomId: string) {
  const caller = ctx.meta.auth;
  if (caller && !isRoomAdmin(caller)) {
    throw authzFailed("Only roles admin, service and super_admin may create or change rooms", { roomId });
  }
}

/** Room settings decide who may join: every change is an administrative action in the tenant's audit chain. */
function auditRoomChange(broker: ServiceBroker, ctx: Context<{ tenantId: string; roomId: string }, CallerMeta>, action: string, details: Record<string, unknown>): void {
  const caller = ctx.meta.auth;
  auditReporterOf(broker).record({
    tenantId: ctx.params.tenantId,
    actor: caller ? { userId: caller.userId, role: caller.role } : OPERATOR,
    action,
    target: `room:${ctx.params.roomId}`,
    outcome: "success",
    details
  });
}

export function createRoomsService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, RoomsThis>({
    name: "rooms",
    mixins: [TenantScopeMixin()],

    actions: {
      /**
       * Records a connection in a room. On behalf of a client (`join_room`, resume) the room's
       * settings decide first: a private room admits only its members and allowed roles.
       */
      join: {
        visibility: "public",
        params: { tenantId: identifier, roomId: identifier, connectionId: identifier, userId: identifier, nodeId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; roomId: string; connectionId: string; userId: string; nodeId: string }, CallerMeta>) {
          const { tenantId, roomId, connectionId, userId, nodeId } = ctx.params;
          const caller = ctx.meta.auth;
          if (caller) {
            if (caller.userId !== userId) throw authzFailed("A client joins rooms as itself only", { roomId });
            if (!admits(await this.store.getAccess(tenantId, roomId, caller.userId), caller)) {
              throw authzFailed("This room is private: only its members and allowed roles may join", { roomId, reason: "private" });
            }
          }
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
          if (caller && !isRoomAdmin(caller)) {
            const callerRooms = await this.store.roomsOfUser(tenantId, caller.userId);
            if (!callerRooms.includes(roomId)) throw authzFailed("Only members may list a room's members", { roomId });
          }
          const members = await this.store.members(tenantId, roomId);
          return { roomId, members: members.map(({ userId, connectionId }) => ({ userId, connectionId })) };
        }
      },

      /**
       * `POST /api/rooms`: declares a room's settings. Private unless `private: false`; a private
       * room admits `members` (userIds) and holders of `allowedRoles`. Needs a room-admin role.
       */
      create: {
        params: { tenantId: identifier, roomId: claimValue, private: { type: "boolean", optional: true }, members: userList, allowedRoles: roleList },
        async handler(this: RoomsThis, ctx: Context<CreateParams, CallerMeta & { $statusCode?: number }>): Promise<RoomInfo> {
          const { tenantId, roomId } = ctx.params;
          requireRoomAdmin(ctx, roomId);
          const now = new Date().toISOString();
          const info = {
            private: ctx.params.private ?? true,
            members: [...new Set(ctx.params.members ?? [])],
            allowedRoles: [...new Set(ctx.params.allowedRoles ?? [])],
            createdBy: ctx.meta.auth?.userId ?? "system",
            createdAt: now,
            updatedAt: now
          };
          if (!(await this.store.createRoom(tenantId, roomId, info))) {
            throw invalidRequest("The room already exists; change it with rooms.update (PATCH /api/rooms/:roomId)", { roomId, reason: "exists" });
          }
          this.logger.info("Room created", { tenantId, roomId, private: info.private, by: info.createdBy });
          auditRoomChange(this.broker, ctx, "rooms.create", { private: info.private, members: info.members.length, allowedRoles: info.allowedRoles });
          ctx.meta.$statusCode = 201;
          return { roomId, ...info };
        }
      },

      /**
       * `PATCH /api/rooms/:roomId`: changes a created room's settings (absent fields are kept;
       * `members` replaces the list, `addMembers` / `removeMembers` edit it). Needs a room-admin
       * role. Checked at join: connections already in the room stay until they leave.
       */
      update: {
        params: {
          tenantId: identifier,
          roomId: claimValue,
          private: { type: "boolean", optional: true },
          members: userList,
          addMembers: userList,
          removeMembers: userList,
          allowedRoles: roleList
        },
        async handler(this: RoomsThis, ctx: Context<UpdateParams, CallerMeta>): Promise<RoomInfo> {
          const { tenantId, roomId, private: isPrivate, members, addMembers, removeMembers, allowedRoles } = ctx.params;
          requireRoomAdmin(ctx, roomId);
          const update: RoomUpdate = {
            ...(isPrivate !== undefined ? { private: isPrivate } : {}),
            ...(members !== undefined ? { members } : {}),
            ...(addMembers !== undefined ? { addMembers } : {}),
            ...(removeMembers !== undefined ? { removeMembers } : {}),
            ...(allowedRoles !== undefined ? { allowedRoles } : {}),
            updatedAt: new Date().toISOString()
          };
          if (Object.keys(update).length === 1) {
            throw invalidRequest("Nothing to change: give private, members, addMembers, removeMembers or allowedRoles", { roomId });
          }
          const room = await this.store.updateRoom(tenantId, roomId, update);
          if (!room) throw notFound("No such room; create it first (POST /api/rooms)", { roomId });
          this.logger.info("Room updated", { tenantId, roomId, private: room.private, by: ctx.meta.auth?.userId ?? "system" });
          auditRoomChange(this.broker, ctx, "rooms.update", {
            ...(isPrivate !== undefined ? { private: isPrivate } : {}),
            ...(members !== undefined ? { members: members.length } : {}),
            ...(addMembers !== undefined ? { addMembers: addMembers.length } : {}),
            ...(removeMembers !== undefined ? { removeMembers: removeMembers.length } : {}),
            ...(allowedRoles !== undefined ? { allowedRoles } : {})
          });
          return room;
        }
      },

      /**
       * `GET /api/rooms/:roomId`: a created room's settings. Room admins see any room of their
       * tenant; others see public rooms and the private rooms they are admitted to.
       */
      get: {
        params: { tenantId: identifier, roomId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; roomId: string }, CallerMeta>): Promise<RoomInfo> {
          const { tenantId, roomId } = ctx.params;
          const caller = ctx.meta.auth;
          if (caller && !isRoomAdmin(caller) && !admits(await this.store.getAccess(tenantId, roomId, caller.userId), caller)) {
            throw authzFailed("This room is private", { roomId, reason: "private" });
          }
          const room = await this.store.getRoom(tenantId, roomId);
          if (!room) throw notFound("No such room (rooms that were never created are public and have no settings)", { roomId });
          return room;
        }
      },

      ofUser: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; userId: string }>) {
          return this.store.roomsOfUser(ctx.params.tenantId, ctx.params.userId);
        }
      },

      /** Rooms of several users of one tenant (presence pushes of a batch of changes). */
      ofUsers: {
        visibility: "public",
        params: { tenantId: identifier, userIds: { type: "array", items: identifier, min: 1, max: 1000 } },
        async handler(this: RoomsThis, ctx: Context<{ tenantId: string; userIds: string[] }>) {
          return Object.fromEntries(await this.roomsOfUsers(ctx.params.tenantId, ctx.params.userIds));
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

    methods: {
      roomsOfUsers(this: RoomsThis, tenantId: string, userIds: readonly string[]) {
        return this.store.roomsOfUsers(tenantId, userIds);
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
