import type { Namespace } from "socket.io";
import { roomChannel, tenantChannel, userChannel } from "./keys";
import type { Audience } from "../stores/event-log";

/**
 * Who receives a server→client event. Always inside one tenant: the tenant is part of every
 * Socket.IO room name a target resolves to, so no target can reach another tenant's sockets.
 */
export type DeliveryTarget =
  | { userId: string }
  | { roomId: string }
  | { roomIds: string[] }
  | { userIds: string[] }
  | { connectionId: string }
  | { tenant: true };

/** One server→client event on its way to every gateway node (the `gateway.deliver` broadcast). */
export interface Delivery {
  tenantId: string;
  target: DeliveryTarget;
  event: string;
  payload: unknown;
  /** Class A traffic: dropped for a client whose transport is not writable instead of buffered. */
  volatile?: boolean;
  /** A connection that must not receive it (the sender's own socket). */
  exceptConnectionId?: string;
  /** Socket.IO namespace of the protocol it is for; default `/` (PF-2). */
  namespace?: string;
}

/** The event every gateway node subscribes to; each turns it into a local Socket.IO emit. */
export const DELIVERY_EVENT = "gateway.deliver";

/** Emits a delivery to the sockets of this node only. */
export function emitLocally(nsp: Namespace, delivery: Delivery): void {
  const { tenantId, target } = delivery;
  if ("connectionId" in target) {
    const socket = nsp.sockets.get(target.connectionId);
    // A connection id is not tenant-scoped by itself: check the owner before emitting.
    if (!socket || (socket.data as { tenantId?: string }).tenantId !== tenantId) return;
    // Through the adapter (every socket is in the room named by its id), so a socket being
    // replayed holds this push like any other.
    const operator = nsp.to(target.connectionId);
    (delivery.volatile ? operator.volatile : operator).emit(delivery.event, delivery.payload);
    return;
  }
  const channels =
    "userId" in target
      ? userChannel(tenantId, target.userId)
      : "roomId" in target
        ? roomChannel(tenantId, target.roomId)
        : "roomIds" in target
          ? target.roomIds.map(roomId => roomChannel(tenantId, roomId))
          : "userIds" in target
            ? target.userIds.map(userId => userChannel(tenantId, userId))
            : tenantChannel(tenantId);
  if (Array.isArray(channels) && channels.length === 0) return;
  let operator = nsp.to(channels);
  if (delivery.exceptConnectionId) operator = operator.except(delivery.exceptConnectionId);
  if (delivery.volatile) operator = operator.volatile;
  operator.emit(delivery.event, delivery.payload);
}

/** The sockets an event of the log reaches live: the same ones that may read it on replay. */
export function targetOfAudience(audience: Audience | undefined): DeliveryTarget {
  if (!audience) return { tenant: true };
  if ("userIds" in audience) return { userIds: audience.userIds };
  return "userId" in audience ? { userId: audience.userId } : { roomId: audience.roomId };
}
