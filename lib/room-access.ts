import type { Principal } from "./auth";
import type { RoomAccess } from "../stores/rooms";

/**
 * Room authorization (seed 001 "role-based access control for rooms"; seed 003 "the server
 * validates membership before honoring the request"), in one place.
 *
 * - A room without settings, or created with `private: false`, is public: anyone of the tenant joins.
 * - A private room admits a user listed in its `members` or holding one of its `allowedRoles`.
 *   No role is admitted implicitly: an admin who wants in lists their role or themselves.
 * - Creating and changing room settings needs one of ROOM_ADMIN_ROLES in the room's tenant.
 */

/** Roles that may create and change rooms, and inspect any room of their own tenant. */
export const ROOM_ADMIN_ROLES: ReadonlySet<string> = new Set(["admin", "service", "super_admin"]);

export function isRoomAdmin(principal: Pick<Principal, "role">): boolean {
  return ROOM_ADMIN_ROLES.has(principal.role);
}

/** Whether `principal` may join (or read the settings of) a room with this access record. */
export function admits(access: RoomAccess | undefined, principal: Pick<Principal, "role">): boolean {
  if (!access || !access.private) return true;
  return access.isMember || access.allowedRoles.includes(principal.role);
}
