import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io";
import { ErrorCode, RealtimeError, invalidRequest, toClientError } from "../../lib/errors";
import { tenantChannel } from "../../lib/keys";
import type { BusEvent, StoredEvent } from "../../stores/event-log";
import type { GatewayHost } from "../connection";
import { isoNow } from "../../lib/iso-now";

/**
 * Seed 004, the multi-tenant event feed: REST `/api/events` and the Socket.IO namespace
 * `NB_BACKEND_SIO_NAMESPACE` (default `/events`). Feed events live in the tenant's log like every
 * other event, so their `id` is their log position and `sinceId` is the same cursor every other
 * transport resumes from.
 */

export const FEED_EVENT_TYPE = "feed.event";
export const FEED_MAX_MESSAGE_LENGTH = 2048;

/** The seed 004 event shape. */
export interface FeedEvent {
  id: string;
  tenant_id: string;
  message: string;
  timestamp: string;
  author?: string;
}

export interface FeedSettings {
  namespace: string;
  bufferSize: number;
}

export function feedSettings(env: Record<string, string | undefined> = process.env): FeedSettings {
  const size = Number(env.NB_BACKEND_EVENTS_BUFFER_SIZE ?? 500);
  if (!Number.isInteger(size) || size < 1) throw new Error(`NB_BACKEND_EVENTS_BUFFER_SIZE must be a positive integer, got "${env.NB_BACKEND_EVENTS_BUFFER_SIZE}"`);
  const namespace = env.NB_BACKEND_SIO_NAMESPACE?.trim() || "/events";
  return { namespace: namespace.startsWith("/") ? namespace : `/${namespace}`, bufferSize: size };
}

export function feedEventOf(stored: StoredEvent): FeedEvent {
  const author = (stored.metadata as { author?: unknown }).author;
  return {
    id: stored.position,
    tenant_id: stored.tenantId,
    message: String((stored.payload as { message?: unknown } | null)?.message ?? ""),
    timestamp: stored.timestamp,
    ...(typeof author === "string" ? { author } : {})
  };
}

/** Validates a posted message: 422 when empty, 413 when longer than 2048 characters (seed 004). */
export function checkFeedMessage(message: unknown): string {
  if (typeof message !== "string" || message.trim().length === 0) {
    throw new RealtimeError(ErrorCode.INVALID_REQUEST, "message must be a non-empty string", { field: "message" }, 422);
  }
  if (message.length > FEED_MAX_MESSAGE_LENGTH) {
    throw new RealtimeError(ErrorCode.INVALID_REQUEST, `message is longer than ${FEED_MAX_MESSAGE_LENGTH} characters`, { field: "message", limit: FEED_MAX_MESSAGE_LENGTH }, 413);
  }
  return message;
}

/** Appends a feed event and broadcasts `event_created` to the tenant's feed sockets on every gateway. */
export async function postFeedEvent(host: GatewayHost, settings: FeedSettings, tenantId: string, author: string, message: unknown): Promise<FeedEvent> {
  const text = checkFeedMessage(message);
  const event: BusEvent = {
    eventId: randomUUID(),
    eventType: FEED_EVENT_TYPE,
    tenantId,
    timestamp: isoNow(),
    payload: { message: text },
    metadata: { author },
    schemaVersion: "1.0"
  };
  const feedEvent = feedEventOf(await host.appendEvent(event));
  await host.deliver({ tenantId, target: { tenant: true }, event: "event_created", payload: feedEvent, namespace: settings.namespace }, { confirm: true });
  return feedEvent;
}

/** Feed events after `sinceId` (or the newest `limit` without it), oldest first. */
export async function listFeedEvents(host: GatewayHost, tenantId: string, userId: string, sinceId: string | undefined, limit: number): Promise<{ events: FeedEvent[]; lost: boolean }> {
  if (sinceId === undefined) {
    // The newest `limit` feed events; other event types share the log, so look a little further back.
    const recent = await host.tailEvents(tenantId, Math.min(10_000, limit * 4));
    return { events: recent.filter(e => e.eventType === FEED_EVENT_TYPE && !e.audience).slice(-limit).map(feedEventOf), lost: false };
  }
  const viewer = { userId, rooms: new Set<string>() };
  const events: FeedEvent[] = [];
  let cursor: string | undefined = sinceId;
  for (let pages = 0; pages < 20 && events.length < limit; pages++) {
    const page = await host.readEvents(tenantId, viewer, cursor, 1000);
    if (page.lost) return { events: [], lost: true };
    for (const e of page.events) if (e.eventType === FEED_EVENT_TYPE && events.length < limit) events.push(feedEventOf(e));
    if (!page.hasMore || !page.next) break;
    cursor = page.next;
  }
  return { events, lost: false };
}

type Ack = (response: unknown) => void;

function parseLimit(value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw invalidRequest("limit must be an integer between 1 and 1000", { field: "limit" });
  return n;
}

/** Wires one feed socket: tenant room, `snapshot`, `replay`, `post_event`. */
export async function onFeedConnection(host: GatewayHost, settings: FeedSettings, socket: Socket): Promise<void> {
  const { tenantId, userId } = socket.data as { tenantId: string; userId: string };
  socket.join(tenantChannel(tenantId));
  const fail = (event: string, err: unknown, ack?: Ack) => {
    const { body } = toClientError(err);
    const error = { code: body.code, message: body.error, ...(body.details !== undefined ? { details: body.details } : {}) };
    socket.emit("error", { ...error, event });
    ack?.({ error });
  };
  socket.on("replay", (data: unknown, ack?: Ack) => {
    const request = (data ?? {}) as { sinceId?: unknown; limit?: unknown };
    (async () => {
      if (request.sinceId !== undefined && typeof request.sinceId !== "string") throw invalidRequest("sinceId must be a string", { field: "sinceId" });
      const result = await listFeedEvents(host, tenantId, userId, request.sinceId, parseLimit(request.limit, 100));
      const response = { events: result.events, ...(result.lost ? { historyLost: true } : {}) };
      socket.emit("replay_result", response);
      if (typeof ack === "function") ack(response);
    })().catch(err => fail("replay", err, typeof ack === "function" ? ack : undefined));
  });
  socket.on("post_event", (data: unknown, ack?: Ack) => {
    (async () => {
      const event = await postFeedEvent(host, settings, tenantId, userId, (data as { message?: unknown } | null)?.message);
      if (typeof ack === "function") ack({ event });
    })().catch(err => fail("post_event", err, typeof ack === "function" ? ack : undefined));
  });
  try {
    const snapshot = await listFeedEvents(host, tenantId, userId, undefined, settings.bufferSize);
    socket.emit("snapshot", snapshot.events);
  } catch (err) {
    fail("snapshot", err);
  }
}

/** The handshake's claimed tenant (`auth.tenantId`) must be the token's. */
export function checkFeedTenant(socket: Socket, tokenTenantId: string): void {
  const claimed = (socket.handshake.auth as { tenantId?: unknown } | undefined)?.tenantId;
  if (claimed !== undefined && claimed !== tokenTenantId) throw new RealtimeError(ErrorCode.TENANT_VIOLATION, "Cross-tenant access is not allowed", { field: "auth.tenantId" });
}
