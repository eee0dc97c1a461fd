import type { ConnectionInfo, Presence } from "../stores/presence/presence-store";
import type { StoredEvent } from "../stores/event-log";

/**
 * Server→client traffic that every client protocol serves, each in its own wire format.
 *
 * The core hands a gateway three kinds of notices; the gateway passes each to every protocol
 * adapter it runs (a `PushSink`), and each adapter renders it for its own sockets:
 * - `PushNotice`: an event just appended to the tenant's log (bus events, application pushes
 *   such as notifications and conversation messages). Its `audience` says who may see it, exactly
 *   as on replay and polling, so live and recovered traffic never disagree.
 * - `PresenceNotice`: a user's presence after a connect, disconnect, heartbeat or status change.
 * - `MembersRemovedNotice`: users removed from a conversation; adapters drop their sockets from it.
 *
 * A notice crosses the transporter once (a Moleculer broadcast to the `gateway` group) and is
 * rendered locally by every gateway node, so each socket gets each event once.
 */
export const PUSH_EVENT = "gateway.push";
export const PRESENCE_NOTICE_EVENT = "gateway.presence";
export const MEMBERS_REMOVED_EVENT = "conversations.membersRemoved";
/** Gateway → every presence instance: whether this gateway renders presence notices at all. */
export const PRESENCE_INTEREST_EVENT = "presence.noticeInterest";

/**
 * Presence notices matter only to a gateway holding sockets of a protocol that renders them
 * (`/ws/app` snapshots, raw `/ws` presence channels). Each gateway says when that changes, and
 * with every heartbeat; presence sends notices to the gateways that did not say no, so a
 * PF-2-only cluster does not carry every connect to every gateway.
 */
export interface PresenceInterest {
  nodeId: string;
  wants: boolean;
}

export interface PushNotice {
  stored: StoredEvent;
}

export interface PresenceNotice {
  tenantId: string;
  presence: Presence;
  /** What happened: the user's visible presence may or may not have changed (`changed`). */
  reason: "connect" | "disconnect" | "heartbeat" | "status" | "expired" | "node_left";
  changed: boolean;
  /**
   * The user's live connections on every node and protocol when the notice was sent (empty when
   * offline); absent only when the presence store could not be read.
   */
  devices?: ConnectionInfo[];
}

/** The `gateway.presence` broadcast: the notices of one batch of changes, in order. */
export interface PresenceNotices {
  notices: PresenceNotice[];
}

export interface MembersRemovedNotice {
  tenantId: string;
  conversationId: string;
  userIds: string[];
}

/**
 * An operator's disconnect (`gateway.systemDisconnect`): every socket of the user, or one
 * connection, is told why and closed. Exactly one of `userId` and `connectionId` is set.
 */
export interface DisconnectNotice {
  tenantId: string;
  userId?: string;
  connectionId?: string;
  reason: string;
}

/** One protocol adapter's view of server→client traffic. Methods must not throw. */
export interface PushSink {
  readonly name: string;
  push(notice: PushNotice): void;
  presence?(notice: PresenceNotice): void;
  membersRemoved?(notice: MembersRemovedNotice): void;
  /** Tells the matching local connections why and closes them; returns how many it closed. */
  disconnect?(notice: DisconnectNotice): number;
}

/**
 * Event types of application pushes (the server push API, services/push.service.ts). They live in
 * the tenant's log like every other event; adapters recognise them by type.
 */
export const APP_EVENT_TYPES = {
  notification: "app.notification",
  messageNew: "app.message.new",
  messageUpdated: "app.message.updated",
  messageDeleted: "app.message.deleted",
  feedUpdate: "app.feed_update",
  countUpdate: "app.count_update"
} as const;

export type AppEventType = (typeof APP_EVENT_TYPES)[keyof typeof APP_EVENT_TYPES];

/** Payload of `app.notification`: seed 003 `notifications:new`, seed 002 `notification`. */
export interface NotificationPayload {
  eventKey: string;
  notification: Record<string, unknown>;
}

/** Payload of `app.message.*`: seed 003 `messages:*`, seed 002 `message`. */
export interface ConversationMessagePayload {
  conversationId: string;
  message: Record<string, unknown>;
  senderId: string;
  recipients: string[];
}
