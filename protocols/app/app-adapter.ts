import type { Socket } from "socket.io";
import { bearerToken, type Principal } from "../../lib/auth";
import { ErrorCode, RealtimeError, authzFailed, invalidRequest, rateLimited, tenantViolation, toClientError } from "../../lib/errors";
import { conversationChannel, tenantChannel, userChannel } from "../../lib/keys";
import { NO_ROOMS, deviceOf, stateOf, type ConnectionState, type GatewayHost, type HostedSocket } from "../connection";
import { APP_OUT } from "./app-sink";
import { scheduleTokenExpiry } from "../token-expiry";
import { parseConversation, payloadBytes } from "./app-schemas";

/**
 * Seed 003, the application namespace `/ws/app`: a thin adapter over the gateway's one internal
 * model (presence, conversations, the tenant log). Event names, payloads and error codes are the
 * seed's; every inbound event is size-checked (SOCKET_MAX_PAYLOAD_BYTES), rate limited and
 * validated before anything else happens, and nothing a client sends can throw past its handler.
 *
 * Server→client rendering of pushes and presence lives in app-sink.ts.
 */
export const APP_NAMESPACE = "/ws/app";

/** The seed's error codes; our own failures use lib/errors.ts codes (README "Seed 003"). */
export const APP_ERROR = {
  unauthorized: "socket_error:unauthorized",
  tokenExpired: "socket_error:token_expired"
} as const;

/** Client→server events of the seed. */
export const APP_IN = {
  heartbeat: "presence:heartbeat",
  join: "conversations:join",
  leave: "conversations:leave"
} as const;

const KNOWN_EVENTS = new Set<string>(Object.values(APP_IN));

/** What the gateway keeps per `/ws/app` connection. */
export interface AppConnectionState extends ConnectionState {
  /** Conversations this socket joined (their rooms are Socket.IO rooms of this node only). */
  conversations: Set<string>;
}

/** The seed's error payload; `details` is ours, for clients that want to know more. */
export interface AppError {
  code: string;
  message: string;
  details?: unknown;
}

type Ack = (response: unknown) => void;
type Handler = (socket: HostedSocket, state: AppConnectionState, data: unknown, ack: Ack | undefined) => Promise<void>;

/** A handshake refusal: the client's `connect_error` has `data: {code, message}`. */
function refusal(code: string, message: string): Error & { data: AppError } {
  const error = new Error(message) as Error & { data: AppError };
  error.data = { code, message };
  return error;
}

/**
 * The `/ws/app` handshake (moleculer-io `authorization: true`): `auth.token` (or an
 * `Authorization: Bearer` header) must be a valid token; an expired one is told apart.
 */
export async function authorizeAppSocket(host: GatewayHost, socket: Socket): Promise<Principal> {
  if (!host.accepting) throw refusal(ErrorCode.INTERNAL_ERROR, "Server is shutting down; reconnect to another node");
  if (host.connectionCount() >= host.config.wsMaxConnections) throw refusal(ErrorCode.RATE_LIMIT, "Connection limit of this node reached");
  let principal: Principal;
  try {
    principal = host.verifier.verifyConnection((socket.handshake.auth as { token?: unknown } | undefined)?.token ?? bearerToken(socket.handshake.headers.authorization));
  } catch (err) {
    const expired = ((err as RealtimeError).data as { reason?: unknown } | undefined)?.reason === "expired";
    host.logger.debug("/ws/app handshake refused", { address: socket.handshake.address, reason: (err as Error).message });
    throw expired ? refusal(APP_ERROR.tokenExpired, "Token expired") : refusal(APP_ERROR.unauthorized, toClientError(err).body.error);
  }
  const state: AppConnectionState = {
    tenantId: principal.tenantId,
    userId: principal.userId,
    principal,
    connectionId: socket.id,
    clientId: socket.id,
    rooms: NO_ROOMS,
    connectedAt: Date.now(),
    conversations: new Set(),
    ...deviceOf(socket)
  };
  socket.data = state;
  return principal;
}

/** Sets up an accepted `/ws/app` socket: personal and tenant rooms, `notifications:ready`, presence. */
export async function onAppConnection(host: GatewayHost, socket: Socket): Promise<void> {
  const state = stateOf(socket) as AppConnectionState;
  // The tenant room carries other users' presence snapshots; Socket.IO rooms are per namespace.
  socket.join([userChannel(state.tenantId, state.userId), tenantChannel(state.tenantId)]);
  socket.onAny((event: string, ...args: unknown[]) => {
    if (KNOWN_EVENTS.has(event)) return;
    const name = String(event).slice(0, 64);
    const ack = typeof args[args.length - 1] === "function" ? (args[args.length - 1] as Ack) : undefined;
    fail(socket, name, invalidRequest(`Unknown event '${name}'`, { event: name }), ack, true);
  });
  socket.on("disconnect", () => {
    host.releaseConnection(socket).catch((err: Error) => host.logger.warn("Disconnect cleanup failed", { connectionId: socket.id, error: err.message }));
  });
  scheduleTokenExpiry(state.principal.exp, socket, expireAppSocket);
  socket.emit(APP_OUT.ready, { message: "Connected to realtime notifications", userId: state.userId });
  await host.registerConnection(state);
}

/** Closes the socket when its token expires, telling it `socket_error:token_expired` first. */
function expireAppSocket(socket: Socket) {
  socket.emit(APP_OUT.error, { code: APP_ERROR.tokenExpired, message: "Token expired" } satisfies AppError);
  socket.disconnect(true);
}

/**
 * Answers a failed request. A refusal goes to the acknowledgement when the client gave one, else
 * it is emitted as `error`; socket-level failures (oversized payload, rate limit, unknown event)
 * are always emitted as `error` and fail the acknowledgement too.
 */
function fail(socket: Socket, event: string, err: unknown, ack: Ack | undefined, socketLevel: boolean) {
  const { status, body } = toClientError(err);
  if (status >= 500) {
    (socket as HostedSocket).$service.logger.error("/ws/app handler failed", {
      event,
      tenantId: (socket.data as ConnectionState | undefined)?.tenantId,
      connectionId: socket.id,
      error: err instanceof Error ? err.message : String(err)
    });
  }
  const error: AppError = { code: body.code, message: body.error, ...(body.details !== undefined ? { details: body.details } : {}) };
  if (socketLevel || !ack) socket.emit(APP_OUT.error, error);
  ack?.({ success: false, message: body.error, code: body.code });
}

/** Wraps a handler for moleculer-io: size limit, rate limit, then the handler; every failure answered. */
function guarded(event: string, handler: Handler) {
  return function (this: Socket, ...args: unknown[]) {
    const ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : undefined;
    const socket = this as HostedSocket;
    const host = socket.$service;
    const state = stateOf(socket) as AppConnectionState;
    const limit = host.config.socketMaxPayloadBytes;
    const size = payloadBytes(args);
    if (size > limit) {
      fail(socket, event, invalidRequest(`'${event}' is larger than ${limit} bytes`, { event, size, limit }), ack, true);
      return;
    }
    (async () => {
      const quota = await host.consumeQuota(state, "control");
      if (!quota.allowed) {
        fail(socket, event, rateLimited({ event, retryAfterMs: quota.retryAfterMs, limit: host.config.wsMessageRateLimit, windowMs: 60_000 }), ack, true);
        return;
      }
      await handler(socket, state, args[0], ack);
    })().catch(err => fail(socket, event, err, ack, false));
  };
}

function assertOwnTenant(host: GatewayHost, state: ConnectionState, claimed: unknown, event: string) {
  if (claimed === undefined || claimed === state.tenantId) return;
  host.reportTenantViolation(state, claimed, event);
  throw tenantViolation({ event });
}

/** `presence:heartbeat`: refreshes this connection (a fresh snapshot follows); payload ignored. */
const onHeartbeat: Handler = async (socket, state, _data, ack) => {
  const host = socket.$service;
  const { known } = await host.callAs<{ known: boolean }>(state, "presence.touch", { tenantId: state.tenantId, userId: state.userId, connectionId: state.connectionId });
  // Lost by the store (expired, or a restarted in-memory store): register it again.
  if (!known && socket.connected) await host.registerConnection(state);
  ack?.({ success: true });
};

/** `conversations:join {conversationId}`: members only (as the application backend declared them). */
const onJoin: Handler = async (socket, state, data, ack) => {
  const host = socket.$service;
  const { conversationId, tenantId } = parseConversation(APP_IN.join, data);
  assertOwnTenant(host, state, tenantId, APP_IN.join);
  if (!state.conversations.has(conversationId) && state.conversations.size >= host.config.wsMaxRoomsPerConnection) {
    throw invalidRequest(`A connection may be in at most ${host.config.wsMaxRoomsPerConnection} conversations`, { event: APP_IN.join, conversationId });
  }
  const { member } = await host.callAs<{ member: boolean }>(state, "conversations.isMember", { tenantId: state.tenantId, conversationId, userId: state.userId });
  if (!member) throw authzFailed("Not a member of this conversation", { event: APP_IN.join, conversationId });
  if (!socket.connected) return;
  state.conversations.add(conversationId);
  await socket.join(conversationChannel(state.tenantId, conversationId));
  ack?.({ success: true });
};

/** `conversations:leave {conversationId}`: no more broadcasts through the conversation's room. */
const onLeave: Handler = async (socket, state, data, ack) => {
  const host = socket.$service;
  const { conversationId, tenantId } = parseConversation(APP_IN.leave, data);
  assertOwnTenant(host, state, tenantId, APP_IN.leave);
  state.conversations.delete(conversationId);
  await socket.leave(conversationChannel(state.tenantId, conversationId));
  ack?.({ success: true });
};

/** The moleculer-io namespace definition for `/ws/app`. */
export function appNamespace() {
  return {
    authorization: true,
    events: {
      [APP_IN.heartbeat]: guarded(APP_IN.heartbeat, onHeartbeat),
      [APP_IN.join]: guarded(APP_IN.join, onJoin),
      [APP_IN.leave]: guarded(APP_IN.leave, onLeave)
    }
  };
}
