import { isIdentifier } from "../../lib/auth";

/**
 * Seed 002 channels. Names are the seed's; each is scoped to the connection's tenant (the tenant
 * comes from the token), so `presence:bob` names bob of the caller's tenant only.
 *
 * | channel             | who may subscribe                 | what arrives                                   |
 * |---------------------|-----------------------------------|------------------------------------------------|
 * | `notifications`     | everyone (subscribed on connect)  | the user's notifications, reads, own counts    |
 * | `presence`          | everyone                          | presence changes of every user of the tenant   |
 * | `presence:{userId}` | everyone                          | presence changes of one user (current on join) |
 * | `conversation:{id}` | members (conversations.isMember)  | typing indicators (messages and read receipts  |
 * |                     |                                   | reach every member's connections regardless)   |
 * | `feed:updates`      | everyone                          | tenant-wide feed and count updates             |
 */
export const NOTIFICATIONS = "notifications";
export const PRESENCE = "presence";
export const FEED_UPDATES = "feed:updates";

export type WsChannel =
  | { kind: "notifications"; name: string }
  | { kind: "presence"; name: string }
  | { kind: "presence_user"; name: string; userId: string }
  | { kind: "conversation"; name: string; conversationId: string }
  | { kind: "feed"; name: string };

export const conversationChannel = (conversationId: string) => `conversation:${conversationId}`;
export const presenceChannel = (userId: string) => `presence:${userId}`;

/** The channel a name denotes, or undefined for a name no channel has (`CHANNEL_NOT_FOUND`). */
export function parseChannel(name: unknown): WsChannel | undefined {
  if (typeof name !== "string") return undefined;
  if (name === NOTIFICATIONS) return { kind: "notifications", name };
  if (name === PRESENCE) return { kind: "presence", name };
  if (name === FEED_UPDATES) return { kind: "feed", name };
  const colon = name.indexOf(":");
  if (colon <= 0) return undefined;
  const prefix = name.slice(0, colon);
  const id = name.slice(colon + 1);
  if (!isIdentifier(id)) return undefined;
  if (prefix === "presence") return { kind: "presence_user", name, userId: id };
  if (prefix === "conversation") return { kind: "conversation", name, conversationId: id };
  return undefined;
}
