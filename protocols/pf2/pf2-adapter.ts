import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io";
import { ErrorCode, RealtimeError, authzFailed, invalidRequest, rateLimited, tenantViolation, toClientError } from "../../lib/errors";
import { DEFAULT_MESSAGE_CLASS, REALTIME_CLASSES, classPolicy, type InteractionClass } from "../../lib/interaction-classes";
import { roomChannel } from "../../lib/keys";
import type { DeliveryTarget } from "../../lib/delivery";
import type { Audience, BusEvent, StoredEvent } from "../../stores/event-log";
import type { RateLimitResult } from "../../stores/rate-limit";
import { addRoom, stateOf, type ConnectionState, type GatewayHost, type HostedSocket, type QuotaBucket } from "../connection";
import {
  checkMessage,
  checkPresence,
  checkRoom,
  isPlainObject,
  validate,
  type Pf2MessageInput,
  type Pf2PresenceInput,
  type Pf2RoomInput
} from "./pf2-schemas";
import { isoNow } from "../../lib/iso-now";
import { jsonSizeBound } from "../../lib/json-size";

/**
 * PF-2 over Socket.IO, default namespace (seed 000 "WebSocket API"): client events in, the
 * one internal model out. Every handler is guarded: whatever a client sends, it gets a response
 * or an `error {error, code, details}`, and nothing it sends can throw past the handler.
 */

export const PF2_EVENTS = {
  connected: "connected",
  message: "message",
  messageAck: "message_ack",
  roomJoined: "room_joined",
  roomLeft: "room_left",
  pong: "pong",
  error: "error"
} as const;

type Ack = (response: unknown) => void;
type Handler = (socket: HostedSocket, data: unknown, ack: Ack | undefined) => Promise<void> | void;

/** The server→client `message` event. */
export interface Pf2Message {
  messageId: string;
  type: string;
  interactionClass: InteractionClass;
  tenantId: string;
  senderId: string;
  recipientId?: string;
  roomId?: string;
  payload: unknown;
  timestamp: string;
  metadata?: Record<string, unknown>;
  /** Position in the tenant's log (class B and C), the cursor to resume from. */
  position?: string;
}

/** The Socket.IO event a logged event reaches PF-2 clients as: chat messages as `message`, bus events as `event`. */
export function pf2EventOf(stored: StoredEvent): [string, unknown] {
  if (!stored.message) return ["event", stored];
  const audience = stored.audience;
  // Built field by field (no conditional spreads): this runs for every logged chat message.
  const message: Pf2Message = {
    messageId: stored.eventId,
    type: stored.eventType,
    interactionClass: stored.message.interactionClass as InteractionClass,
    tenantId: stored.tenantId,
    senderId: stored.message.senderId,
    payload: stored.payload,
    timestamp: stored.timestamp,
    position: stored.position
  };
  if (audience && "userId" in audience) message.recipientId = audience.userId;
  else if (audience && "roomId" in audience) message.roomId = audience.roomId;
  if (hasOwnKeys(stored.metadata)) message.metadata = stored.metadata;
  return ["message", message];
}

/** Whether an object has any own enumerable key, without building the list of them. */
function hasOwnKeys(value: object): boolean {
  for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) return true;
  return false;
}

/** The `connected` event, sent once the connection is registered. */
export function connectedEvent(state: ConnectionState) {
  return {
    connectionId: state.connectionId,
    clientId: state.clientId,
    serverTime: new Date().toISOString(),
    interactionClasses: [...REALTIME_CLASSES]
  };
}

/** Parses an inbound event body: a plain object, within the size limit, matching its schema. */
function parse<T>(host: GatewayHost, event: string, data: unknown, check: Parameters<typeof validate>[0]): T {
  if (!isPlainObject(data)) throw invalidRequest(`'${event}' expects an object`, { event });
  const limit = host.config.wsMaxPayloadBytes;
  // Serialised only when a cheap upper bound cannot tell that it fits.
  if (jsonSizeBound(data, limit) > limit) checkExactSize(event, data, limit);
  const issues = validate(check, data);
  if (issues) throw invalidRequest(`Invalid '${event}'`, { event, issues });
  return data as T;
}

function checkExactSize(event: string, data: object, limit: number) {
  let json: string;
  try {
    json = JSON.stringify(data);
  } catch {
    throw invalidRequest(`'${event}' is not serialisable`, { event });
  }
  // A UTF-16 code unit is 1 to 3 UTF-8 bytes: count the bytes only when that decides it.
  const size = json.length * 3 <= limit ? json.length : Buffer.byteLength(json);
  if (size > limit) throw invalidRequest(`'${event}' is larger than ${limit} bytes`, { event, size, limit });
}

function assertOwnTenant(host: GatewayHost, state: ConnectionState, claimed: unknown, event: string) {
  if (claimed === undefined || claimed === state.tenantId) return;
  host.reportTenantViolation(state, claimed, event);
  throw tenantViolation({ event });
}

/** Counts the event against the connection's bucket; throws RATE_LIMIT. Synchronous when the store is in this process. */
function spend(host: GatewayHost, state: ConnectionState, bucket: QuotaBucket, event: string): Promise<void> | undefined {
  const quota = host.consumeQuota(state, bucket);
  if (quota instanceof Promise) return quota.then(result => refuseOverLimit(host, result, event));
  refuseOverLimit(host, quota, event);
  return undefined;
}

function refuseOverLimit(host: GatewayHost, quota: RateLimitResult, event: string) {
  if (!quota.allowed) throw rateLimited({ event, retryAfterMs: quota.retryAfterMs, limit: host.config.wsMessageRateLimit, windowMs: 60_000 });
}

const onMessage: Handler = async (socket, data, ack) => {
  const host = socket.$service;
  const state = stateOf(socket);
  const counting = spend(host, state, "message", "message");
  if (counting) await counting;
  const input = parse<Pf2MessageInput>(host, "message", data, checkMessage);
  assertOwnTenant(host, state, input.tenantId, "message");
  if ((input.recipientId === undefined) === (input.roomId === undefined)) {
    throw invalidRequest("Exactly one of recipientId or roomId is required", { event: "message" });
  }
  const interactionClass = (input.interactionClass ?? DEFAULT_MESSAGE_CLASS) as InteractionClass;
  if (!classPolicy[interactionClass].realtime) {
    host.reportClassD(state, input.recipientId !== undefined ? `user:${input.recipientId}` : `room:${input.roomId}`, input.type);
    throw invalidRequest("CLASS_D (critical transactions) is not allowed on the realtime path; use the REST API", {
      event: "message",
      interactionClass
    });
  }
  if (input.roomId !== undefined && !state.rooms.has(input.roomId)) {
    throw authzFailed("Join the room before sending to it", { event: "message", roomId: input.roomId });
  }
  const audience: Audience = input.recipientId !== undefined ? { userId: input.recipientId } : { roomId: input.roomId as string };
  const target: DeliveryTarget = audience;
  const policy = classPolicy[interactionClass];
  if (policy.persisted) {
    // Classes B and C are appended to the tenant's log first: acknowledged means durable, and
    // every recipient can replay it from its position after a disconnect.
    const event: BusEvent = {
      // A client-chosen messageId makes a retry idempotent (the log dedupes by eventId).
      eventId: input.messageId ?? randomUUID(),
      eventType: input.type,
      tenantId: state.tenantId,
      timestamp: isoNow(),
      payload: input.payload,
      metadata: input.metadata ?? {},
      schemaVersion: "1.0",
      audience,
      message: { senderId: state.userId, interactionClass }
    };
    const appended = await host.appendOnce(event);
    const stored = appended.event;
    if (appended.duplicate && !sameMessage(stored, event)) {
      throw invalidRequest("messageId was already used for another message", { event: "message", messageId: event.eventId });
    }
    // A retried message is delivered again: the first attempt may have failed between the append
    // and the delivery. Recipients drop what they already have by messageId.
    const [name, payload] = pf2EventOf(stored);
    const remote = host.deliver({ tenantId: state.tenantId, target, event: name, payload }, { confirm: true });
    if (remote) await remote;
    const answer = { messageId: stored.eventId, position: stored.position };
    socket.emit(PF2_EVENTS.messageAck, answer);
    ack?.(answer);
    return;
  }
  const message: Pf2Message = {
    messageId: input.messageId ?? randomUUID(),
    type: input.type,
    interactionClass,
    tenantId: state.tenantId,
    senderId: state.userId,
    ...(input.recipientId !== undefined ? { recipientId: input.recipientId } : { roomId: input.roomId }),
    payload: input.payload,
    timestamp: isoNow(),
    ...(input.metadata !== undefined ? { metadata: input.metadata } : {})
  };
  const remote = host.deliver({ tenantId: state.tenantId, target, event: PF2_EVENTS.message, payload: message, volatile: policy.volatile });
  if (remote) await remote;
  const answer = { messageId: message.messageId };
  socket.emit(PF2_EVENTS.messageAck, answer);
  ack?.(answer);
};

const onJoinRoom: Handler = async (socket, data, ack) => {
  const host = socket.$service;
  const state = stateOf(socket);
  await spend(host, state, "control", "join_room");
  const { roomId, tenantId } = parse<Pf2RoomInput>(host, "join_room", data, checkRoom);
  assertOwnTenant(host, state, tenantId, "join_room");
  if (!state.rooms.has(roomId) && state.rooms.size >= host.config.wsMaxRoomsPerConnection) {
    throw invalidRequest(`A connection may be in at most ${host.config.wsMaxRoomsPerConnection} rooms`, { event: "join_room", roomId });
  }
  await host.callAs(state, "rooms.join", {
    tenantId: state.tenantId,
    roomId,
    connectionId: state.connectionId,
    userId: state.userId,
    nodeId: host.nodeID
  });
  // The socket may have closed while the store answered; its disconnect cleanup has already run.
  if (!socket.connected) {
    await host.callAs(state, "rooms.leave", { tenantId: state.tenantId, roomId, connectionId: state.connectionId }).catch(() => undefined);
    return;
  }
  addRoom(state, roomId);
  await socket.join(roomChannel(state.tenantId, roomId));
  socket.emit(PF2_EVENTS.roomJoined, { roomId });
  ack?.({ roomId });
};

const onLeaveRoom: Handler = async (socket, data, ack) => {
  const host = socket.$service;
  const state = stateOf(socket);
  await spend(host, state, "control", "leave_room");
  const { roomId, tenantId } = parse<Pf2RoomInput>(host, "leave_room", data, checkRoom);
  assertOwnTenant(host, state, tenantId, "leave_room");
  // Stop local delivery first: after `room_left` the client must not receive the room's traffic.
  state.rooms.delete(roomId);
  await socket.leave(roomChannel(state.tenantId, roomId));
  await host.callAs(state, "rooms.leave", { tenantId: state.tenantId, roomId, connectionId: state.connectionId });
  socket.emit(PF2_EVENTS.roomLeft, { roomId });
  ack?.({ roomId });
};

const onPresenceUpdate: Handler = async (socket, data, ack) => {
  const host = socket.$service;
  const state = stateOf(socket);
  await spend(host, state, "control", "presence_update");
  const { status, metadata, tenantId } = parse<Pf2PresenceInput>(host, "presence_update", data, checkPresence);
  assertOwnTenant(host, state, tenantId, "presence_update");
  await host.callAs(state, "presence.update", { tenantId: state.tenantId, userId: state.userId, status, ...(metadata ? { metadata } : {}) });
  // Class A is fire-and-forget; a client that asked for an ack still gets one.
  ack?.({ status });
};

const onPing: Handler = (socket, _data, ack) => {
  socket.emit(PF2_EVENTS.pong);
  ack?.({ serverTime: new Date().toISOString() });
};

/** moleculer-io's generic `call` event would expose every published action; PF-2 has no such event. */
const onCall: Handler = () => {
  throw invalidRequest("Unknown event 'call'", { event: "call" });
};

function emitError(socket: Socket, event: string, err: unknown, ack: Ack | undefined) {
  const { status, body } = toClientError(err);
  if (status >= 500) {
    (socket as HostedSocket).$service.logger.error("PF-2 handler failed", {
      event,
      tenantId: stateOf(socket).tenantId,
      connectionId: socket.id,
      error: err instanceof Error ? err.message : String(err)
    });
  }
  if (body.code === ErrorCode.INTERNAL_ERROR && !(err instanceof RealtimeError)) body.details = { event, retryable: true };
  socket.emit(PF2_EVENTS.error, body);
  ack?.(body);
}

/** A retry of the same message: same sender, type, audience and payload. */
function sameMessage(stored: StoredEvent, attempt: BusEvent): boolean {
  return (
    stored.message?.senderId === attempt.message?.senderId &&
    stored.eventType === attempt.eventType &&
    JSON.stringify(stored.audience) === JSON.stringify(attempt.audience) &&
    JSON.stringify(stored.payload) === JSON.stringify(attempt.payload)
  );
}

/**
 * Wraps a handler for moleculer-io: `this` is the socket, the last argument may be an ack callback.
 * While the node shuts down new events are refused (`shutting_down`, retry on another node); the
 * ones already running are tracked so the shutdown waits for them.
 */
function guarded(event: string, handler: Handler) {
  return function (this: Socket, ...args: unknown[]) {
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : undefined;
    const socket = this as HostedSocket;
    const host = socket.$service;
    if (!host.accepting) {
      const refusal = new RealtimeError(ErrorCode.INTERNAL_ERROR, "Server is shutting down; send this again to another node", { event, reason: "shutting_down", retryable: true });
      emitError(socket, event, refusal, ack);
      return;
    }
    try {
      const done = handler(socket, args[0], ack);
      if (done instanceof Promise) host.inFlight.track(done).catch(err => emitError(socket, event, err, ack));
    } catch (err) {
      emitError(socket, event, err, ack);
    }
  };
}

/** PF-2 client events and their handlers (`call` is moleculer-io's generic one, refused). */
const PF2_HANDLERS = new Map<string, (this: Socket, ...args: unknown[]) => void>([
  ["message", guarded("message", onMessage)],
  ["join_room", guarded("join_room", onJoinRoom)],
  ["leave_room", guarded("leave_room", onLeaveRoom)],
  ["presence_update", guarded("presence_update", onPresenceUpdate)],
  ["ping", guarded("ping", onPing)],
  ["call", guarded("call", onCall)]
]);

/** Runs the handler of a client event; false when PF-2 defines no such event. */
export function dispatchPf2(socket: Socket, event: string, args: unknown[]): boolean {
  const handler = PF2_HANDLERS.get(event);
  if (!handler) return false;
  handler.apply(socket, args);
  return true;
}

/**
 * The moleculer-io namespace definition for PF-2. No listener per event: moleculer-io would add
 * one per event to every socket (~0.3 KiB each socket); the gateway's one catch-all listener
 * calls {@link dispatchPf2} instead.
 */
export function pf2Namespace() {
  return { authorization: true, events: {} };
}
