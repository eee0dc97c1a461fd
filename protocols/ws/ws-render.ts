import { APP_EVENT_TYPES, type ConversationMessagePayload, type NotificationPayload } from "../../lib/push";
import type { Presence } from "../../stores/presence/presence-store";
import type { StoredEvent } from "../../stores/event-log";
import { FEED_UPDATES, NOTIFICATIONS, conversationChannel } from "./ws-channels";
import { sequenceOf } from "./ws-cursor";
import { envelope, isPlainObject, type WsEnvelope } from "./ws-envelope";

/**
 * How the tenant's stream looks to seed 002 clients: the one renderer behind live WebSocket
 * frames, the replay after a reconnect, `/poll` and `/poll/missed`, so every path shows an event
 * the same way and with the same `sequence`.
 */

/** Events seed 002 clients write to the stream themselves (class B relays to the user's other devices / the conversation). */
export const WS_EVENT_TYPES = {
  notificationRead: "app.notification_read",
  notificationReadAll: "app.notification_read_all",
  readReceipt: "app.read_receipt"
} as const;

/** Every event type seed 002 renders; the rest of the stream (other protocols' events) is not its business. */
export const WS_RENDERED_TYPES: readonly string[] = [
  APP_EVENT_TYPES.notification,
  APP_EVENT_TYPES.messageNew,
  APP_EVENT_TYPES.feedUpdate,
  APP_EVENT_TYPES.countUpdate,
  WS_EVENT_TYPES.notificationRead,
  WS_EVENT_TYPES.notificationReadAll,
  WS_EVENT_TYPES.readReceipt
];

/** A logged event as seed 002 shows it. */
export interface RenderedEvent {
  type: string;
  channel: string;
  payload: unknown;
  timestamp: string;
  eventId: string;
  position: string;
  /** The stream number (`sequence`, `last_poll_id`); undefined only for positions no number expresses. */
  sequence?: number;
  /**
   * `subscribers`: connections that subscribed to `channel` (among those the audience allows);
   * `members`: every connection the audience allows (conversation traffic reaches members whether
   * or not they subscribed to the conversation).
   */
  reach: "subscribers" | "members";
  /** The connection that caused it (a relay): it does not get its own event back live. */
  origin?: string;
}

export function renderStored(stored: StoredEvent): RenderedEvent | undefined {
  const base = { timestamp: stored.timestamp, eventId: stored.eventId, position: stored.position, sequence: sequenceOf(stored.position) };
  const origin = typeof stored.metadata?.origin === "string" ? stored.metadata.origin : undefined;
  const personal = stored.audience !== undefined && "userId" in stored.audience;
  switch (stored.eventType) {
    case APP_EVENT_TYPES.notification: {
      const { notification } = (stored.payload ?? {}) as Partial<NotificationPayload>;
      return { ...base, type: "notification", channel: NOTIFICATIONS, payload: notification ?? stored.payload, reach: "subscribers" };
    }
    case APP_EVENT_TYPES.messageNew: {
      const { conversationId, message, senderId } = (stored.payload ?? {}) as Partial<ConversationMessagePayload>;
      if (typeof conversationId !== "string") return undefined;
      const body = isPlainObject(message) ? message : {};
      return { ...base, type: "message", channel: conversationChannel(conversationId), payload: { conversation_id: conversationId, ...(senderId !== undefined ? { sender_id: senderId } : {}), ...body }, reach: "members" };
    }
    case APP_EVENT_TYPES.feedUpdate:
      return { ...base, type: "feed_update", channel: FEED_UPDATES, payload: stored.payload, reach: "subscribers" };
    case APP_EVENT_TYPES.countUpdate:
      // A count for one user is theirs (their notifications channel); a tenant-wide one is the feed's.
      return { ...base, type: "count_update", channel: personal ? NOTIFICATIONS : FEED_UPDATES, payload: stored.payload, reach: "subscribers" };
    case WS_EVENT_TYPES.notificationRead:
      return { ...base, type: "notification_read", channel: NOTIFICATIONS, payload: stored.payload, reach: "subscribers", ...(origin ? { origin } : {}) };
    case WS_EVENT_TYPES.notificationReadAll:
      return { ...base, type: "notification_read_all", channel: NOTIFICATIONS, payload: stored.payload, reach: "subscribers", ...(origin ? { origin } : {}) };
    case WS_EVENT_TYPES.readReceipt: {
      const conversationId = (stored.payload as { conversation_id?: unknown } | null)?.conversation_id;
      if (typeof conversationId !== "string") return undefined;
      return { ...base, type: "read_receipt", channel: conversationChannel(conversationId), payload: stored.payload, reach: "members", ...(origin ? { origin } : {}) };
    }
    default:
      return undefined;
  }
}

/** The WebSocket frame of a logged event: `id` is the event's id, `sequence` its stream number. */
export function frameOf(rendered: RenderedEvent): WsEnvelope {
  return envelope(rendered.type, rendered.payload, { id: rendered.eventId, channel: rendered.channel, timestamp: rendered.timestamp, ...(rendered.sequence !== undefined ? { sequence: rendered.sequence } : {}) });
}

/** The `/poll` item of a logged event (seed shape: `id` is the stream number). */
export function pollItemOf(rendered: RenderedEvent) {
  return { id: rendered.sequence ?? null, type: rendered.type, channel: rendered.channel, payload: rendered.payload, timestamp: rendered.timestamp };
}

/** Seed 002 adds `busy` to the product's statuses; it is stored as `away` with `metadata.status: "busy"`. */
export function wsStatusOf(presence: Pick<Presence, "status" | "metadata">): "online" | "offline" | "away" | "busy" {
  if (presence.status === "away" && presence.metadata?.status === "busy") return "busy";
  return presence.status;
}

/** `presence {user_id, status, last_seen}`. */
export function presencePayloadOf(presence: Pick<Presence, "userId" | "status" | "metadata" | "lastSeen">) {
  return { user_id: presence.userId, status: wsStatusOf(presence), last_seen: presence.lastSeen };
}
