import type { Namespace } from "socket.io";
import { conversationChannel, tenantChannel, userChannel } from "../../lib/keys";
import { APP_EVENT_TYPES, type DisconnectNotice, type MembersRemovedNotice, type PresenceNotice, type PushNotice, type PushSink } from "../../lib/push";
import type { Audience, StoredEvent } from "../../stores/event-log";
import { disconnectSockets } from "../system-disconnect";
import type { AppConnectionState } from "./app-adapter";

/**
 * How seed 003 `/ws/app` clients see server→client traffic.
 *
 * - `app.notification` → `notifications:new {eventKey, notification}` to the user's room.
 * - `app.message.new|updated|deleted` → `messages:new|updated|deleted {conversationId, message,
 *   senderId, recipients}` to the `conversation:<id>` room and the `user:<id>` room of every
 *   recipient (the sender included) in one emit, which Socket.IO sends once per socket however
 *   many of those rooms it is in. Every gateway renders the one notice it gets for its own
 *   sockets, so this holds across nodes.
 * - Other logged events (bus events, PF-2 chat messages, feed, counts) are not part of seed 003
 *   and are not rendered here; they remain pollable.
 * - Presence notices (every protocol's connections) → `presence:update` snapshots.
 */
export const APP_OUT = {
  ready: "notifications:ready",
  notification: "notifications:new",
  messageNew: "messages:new",
  messageUpdated: "messages:updated",
  messageDeleted: "messages:deleted",
  presence: "presence:update",
  error: "error"
} as const;

const MESSAGE_EVENTS: Record<string, string> = {
  [APP_EVENT_TYPES.messageNew]: APP_OUT.messageNew,
  [APP_EVENT_TYPES.messageUpdated]: APP_OUT.messageUpdated,
  [APP_EVENT_TYPES.messageDeleted]: APP_OUT.messageDeleted
};

/** The seed's per-device presence payload. */
export interface PresenceSnapshot {
  userId: string;
  isOnline: boolean;
  /** Unix epoch ms. */
  lastSeen: number | null;
  sockets: Array<{ socketId: string; connectedAt: number | null; lastSeen: number | null; userAgent: string | null; ip: string | null }>;
}

/** The `/ws/app` rendering of a logged event: event name, payload and the rooms it goes to; undefined when not rendered. */
export function appEventOf(stored: StoredEvent): { event: string; payload: unknown; rooms: string[] } | undefined {
  const payload = stored.payload as Record<string, unknown> | null;
  if (typeof payload !== "object" || payload === null) return undefined;
  if (stored.eventType === APP_EVENT_TYPES.notification) {
    const rooms = roomsOf(stored.tenantId, stored.audience);
    return rooms.length === 0 ? undefined : { event: APP_OUT.notification, payload: { eventKey: payload.eventKey, notification: payload.notification }, rooms };
  }
  const event = MESSAGE_EVENTS[stored.eventType];
  if (event === undefined) return undefined;
  const rooms = roomsOf(stored.tenantId, stored.audience);
  if (rooms.length === 0) return undefined;
  return { event, payload: { conversationId: payload.conversationId, message: payload.message, senderId: payload.senderId, recipients: payload.recipients }, rooms };
}

/** `/ws/app` rooms of an audience: the same users that may read the event on replay and poll. */
function roomsOf(tenantId: string, audience: Audience | undefined): string[] {
  if (!audience) return [tenantChannel(tenantId)];
  if ("userId" in audience) return [userChannel(tenantId, audience.userId)];
  // PF-2 rooms have no `/ws/app` equivalent.
  if ("roomId" in audience) return [];
  const rooms = audience.userIds.map(userId => userChannel(tenantId, userId));
  // The conversation's room as well: sockets that joined it (members, checked at join).
  if (audience.conversationId !== undefined) rooms.push(conversationChannel(tenantId, audience.conversationId));
  return rooms;
}

/**
 * A presence notice as the seed's snapshot. `own` is the user's own devices' view; everyone
 * else in the tenant gets `ip: null` (no user learns another's address), and sees no devices and
 * `isOnline: false` while the user appears offline by choice (PF-2 `presence_update` "offline").
 */
export function presenceSnapshotOf(notice: PresenceNotice, own: boolean): PresenceSnapshot {
  const { presence } = notice;
  const devices = notice.devices ?? [];
  const visible = presence.status !== "offline";
  const lastActivity = presence.lastSeen === null ? null : Date.parse(presence.lastSeen);
  const shown = visible || own ? devices : [];
  let lastSeen = lastActivity;
  if (visible) for (const device of shown) lastSeen = Math.max(lastSeen ?? 0, device.lastSeen);
  return {
    userId: presence.userId,
    isOnline: visible,
    lastSeen,
    sockets: shown.map(device => ({
      socketId: device.connectionId,
      connectedAt: device.connectedAt,
      lastSeen: device.lastSeen,
      userAgent: device.userAgent ?? null,
      ip: own ? (device.ip ?? null) : null
    }))
  };
}

export function appSink(nsp: () => Namespace): PushSink {
  return {
    name: "app",

    push({ stored }: PushNotice) {
      const rendered = appEventOf(stored);
      if (rendered) nsp().to(rendered.rooms).emit(rendered.event, rendered.payload);
    },

    presence(notice: PresenceNotice) {
      const { tenantId, presence } = notice;
      const namespace = nsp();
      // Every `/ws/app` socket is in its tenant's room: none there, nobody to render a snapshot for.
      if (!namespace.adapter.rooms.has(tenantChannel(tenantId))) return;
      const own = userChannel(tenantId, presence.userId);
      // Each socket once: the user's own devices get their view, the rest of the tenant the other.
      namespace.to(own).emit(APP_OUT.presence, presenceSnapshotOf(notice, true));
      namespace.to(tenantChannel(tenantId)).except(own).emit(APP_OUT.presence, presenceSnapshotOf(notice, false));
    },

    membersRemoved({ tenantId, conversationId, userIds }: MembersRemovedNotice) {
      const namespace = nsp();
      const room = conversationChannel(tenantId, conversationId);
      for (const userId of userIds) {
        for (const socketId of namespace.adapter.rooms.get(userChannel(tenantId, userId)) ?? []) {
          const socket = namespace.sockets.get(socketId);
          if (!socket) continue;
          (socket.data as AppConnectionState).conversations?.delete(conversationId);
          socket.leave(room);
        }
      }
    },

    disconnect(notice: DisconnectNotice) {
      return disconnectSockets(nsp(), notice);
    }
  };
}
