import type { LoggerInstance } from "moleculer";
import type { Socket } from "socket.io";
import type { Principal, TokenVerifier } from "../lib/auth";
import type { Config } from "../lib/config";
import type { Delivery } from "../lib/delivery";
import type { RateLimitResult } from "../stores/rate-limit";
import type { CallerMeta } from "../lib/context";
import type { Viewer } from "../lib/visibility";
import type { PushSink } from "../lib/push";
import type { AppendResult, BusEvent, ReadResult, StoredEvent } from "../stores/event-log";
import type { InFlight } from "./shutdown";

/** What the gateway keeps per Socket.IO connection (in `socket.data`). */
export interface ConnectionState {
  tenantId: string;
  userId: string;
  principal: Principal;
  connectionId: string;
  clientId: string;
  /** Rooms this connection joined (its local view; the rooms store holds the cluster's); {@link NO_ROOMS} until the first. */
  rooms: Set<string>;
  connectedAt: number;
  /** Handshake `auth.lastEventId`: replay the log after this position before going live. */
  resumeFrom?: string;
  /** Handshake `auth.rooms`: rooms to rejoin before the replay, so their missed traffic is included. */
  resumeRooms?: string[];
  /** The client's `User-Agent` and address at the handshake, for per-device presence. */
  userAgent?: string;
  ip?: string;
  /** The rate-limit keys of the connection's buckets, built once (see {@link quotaKey}). */
  quotaKeys?: Record<QuotaBucket, string>;
}

/**
 * The rooms of a connection that has joined none, shared by all of them: most connections never
 * join a room, and an empty Set costs ~150 bytes of heap each. {@link addRoom} gives a connection
 * its own Set on its first join; adding to this one directly is a bug, so it throws.
 */
class NoRooms extends Set<string> {
  override add(): this {
    throw new Error("NO_ROOMS is shared by every connection: add rooms with addRoom()");
  }
}
export const NO_ROOMS: Set<string> = new NoRooms();

/** Records that the connection joined `roomId`. */
export function addRoom(state: { rooms: Set<string> }, roomId: string): void {
  if (state.rooms === NO_ROOMS) state.rooms = new Set();
  state.rooms.add(roomId);
}

/** Longest `User-Agent` kept for presence; longer ones are cut. */
const MAX_USER_AGENT = 512;

/**
 * The device fields of a connection from its handshake. The address is the TCP peer's: a
 * `X-Forwarded-For` header is not trusted, since any client can send one.
 */
export function deviceOf(socket: Socket): Pick<ConnectionState, "userAgent" | "ip"> {
  const device: Pick<ConnectionState, "userAgent" | "ip"> = {};
  const userAgent = socket.handshake.headers["user-agent"];
  if (typeof userAgent === "string" && userAgent.length > 0) device.userAgent = userAgent.slice(0, MAX_USER_AGENT);
  const ip = socket.handshake.address;
  if (typeof ip === "string" && ip.length > 0 && ip.length <= 64) device.ip = ip;
  return device;
}

/** Traffic buckets counted per connection and minute. */
export type QuotaBucket = "message" | "control";

/** The rate-limit key of a connection's bucket (memoised on the state: it is counted per message). */
export function quotaKey(state: ConnectionState, bucket: QuotaBucket): string {
  state.quotaKeys ??= { message: `conn:${state.connectionId}:message`, control: `conn:${state.connectionId}:control` };
  return state.quotaKeys[bucket];
}

/**
 * The gateway as protocol adapters see it: the one internal model every client protocol is
 * translated to. Adapters never talk to stores or the transporter directly.
 */
export interface GatewayHost {
  config: Config;
  nodeID: string;
  /** False once the node is shutting down: handshakes and client events are refused (`shutting_down`). */
  accepting: boolean;
  /** Work in progress that a graceful shutdown waits for; adapters track each client event in it. */
  inFlight: InFlight;
  /**
   * Sends an event to the target's sockets on every gateway node. With `confirm`, resolves only once
   * the transporter holds the broadcast (use it before acknowledging a logged event).
   */
  /** Emits to this node's sockets at once; the promise (only with other nodes) settles when the remote share is sent. */
  deliver(delivery: Delivery, options?: { confirm?: boolean }): Promise<void> | undefined;
  /** Counts one event of the connection against its per-minute limit (at once when the store is in this process). */
  consumeQuota(state: ConnectionState, bucket: QuotaBucket): RateLimitResult | Promise<RateLimitResult>;
  /** Calls a service action on behalf of the connection's user (tenant-checked by the callee). */
  callAs<T>(state: ConnectionState, action: string, params: Record<string, unknown>): Promise<T>;
  /** Appends to the tenant's log; resolves once durable, rejects when the log is unreachable. */
  appendEvent(event: BusEvent): Promise<StoredEvent>;
  /** Like appendEvent, and says whether the eventId was already in the log (nothing written then). */
  appendOnce(event: BusEvent): Promise<AppendResult>;
  /** The newest `count` events of the tenant's log, oldest first. */
  tailEvents(tenantId: string, count: number): Promise<StoredEvent[]>;
  /** Reads what `viewer` may see of the tenant's log after a position. */
  readEvents(tenantId: string, viewer: Viewer, after: string | undefined, limit: number): Promise<ReadResult>;
  /** Registers a protocol adapter's renderer for logged events, presence and membership changes. */
  addPushSink(sink: PushSink): void;
  /** Reports a refused cross-tenant attempt. */
  reportTenantViolation(state: ConnectionState, requestedTenantId: unknown, event: string): void;
  verifier: TokenVerifier;
  /** Socket.IO connections this node holds, every protocol counted (against WS_MAX_CONNECTIONS). */
  connectionCount(): number;
  /** Registers an accepted connection with presence (with its device info); never throws. */
  registerConnection(state: ConnectionState): Promise<void>;
  /** Tells presence a connection closed (after its registration, in order); never throws. */
  unregisterConnection(state: Pick<ConnectionState, "tenantId" | "userId" | "connectionId">): Promise<void>;
  /** Clean-up after a connection closed: presence, rooms, rate-limit counters, expiry timer. */
  releaseConnection(socket: Socket): Promise<void>;
  /** Audits a class D message refused on the realtime path (`target`: `user:<id>` / `room:<id>`). */
  reportClassD(state: ConnectionState, target: string, type: string): void;
  logger: LoggerInstance;
}

export type HostedSocket = Socket & { $service: GatewayHost };

export function stateOf(socket: Socket): ConnectionState {
  return socket.data as ConnectionState;
}

export function metaFor(state: ConnectionState): CallerMeta {
  return { auth: state.principal };
}

type AnyListener = (event: string, ...args: unknown[]) => void;

/**
 * `socket.onAny(listener)` for a socket's only catch-all listener, in a one-slot array. Socket.IO
 * 4's onAny pushes onto an empty array, which V8 grows to 17 slots: 152 bytes per socket for one
 * function. Socket.IO reads the listeners from `_anyListeners`, which onAny creates on first use;
 * when a socket has any already, onAny itself adds this one.
 */
export function listenToAny(socket: Socket, listener: AnyListener): void {
  // A private field of Socket.IO's typings, so reached through `unknown`.
  const listening = socket as unknown as { _anyListeners?: AnyListener[] };
  if (listening._anyListeners === undefined) listening._anyListeners = [listener];
  else socket.onAny(listener);
}
