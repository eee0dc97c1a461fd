import { createHash, randomUUID } from "node:crypto";
import { STATUS_CODES, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { ServiceBroker } from "moleculer";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { bearerToken, isIdentifier, type Principal } from "../../lib/auth";
import { tenantKey, userChannel } from "../../lib/keys";
import type { DisconnectNotice, MembersRemovedNotice, PresenceNotice, PushNotice, PushSink } from "../../lib/push";
import { broadcastToRemote } from "../../lib/remote-broadcast";
import { visibleTo, type Viewer } from "../../lib/visibility";
import { createConnectionSlotStore, type ConnectionSlotStore, type SlotRef } from "../../stores/connection-slots";
import { MemoryConnectionSlotStore } from "../../stores/connection-slots/connection-slot-store.memory";
import { comparePositions, type Audience, type StoredEvent } from "../../stores/event-log";
import type { RateLimitResult } from "../../stores/rate-limit";
import type { ConnectionState, GatewayHost } from "../connection";
import { NOTIFICATIONS, PRESENCE, conversationChannel, parseChannel, presenceChannel, type WsChannel } from "./ws-channels";
import { FROM_NOW, FROM_START, cursorOf, sequenceOf } from "./ws-cursor";
import { WsError, WsErrorCode, ackFrame, envelope, errorFrame, invalidMessage, parseFrame, toWsError, type InboundFrame, type WsEnvelope } from "./ws-envelope";
import { WS_EVENT_TYPES, WS_RENDERED_TYPES, frameOf, presencePayloadOf, renderStored, type RenderedEvent } from "./ws-render";
import { cancelTokenExpiry, scheduleTokenExpiry } from "../token-expiry";

/**
 * Seed 002, the raw WebSocket protocol: `ws://host:WS_PORT/ws?token=<JWT>` on the gateway's HTTP
 * server, beside Socket.IO. One more adapter over the same core: connections register with
 * presence like every other protocol, logged events reach them through the gateway's push sinks
 * (lib/push.ts), client events become the same actions (push.message, eventbus.publish,
 * presence.update), and the stream's positions are their cursor (ws-cursor.ts).
 *
 * Per node the adapter keeps two indexes, user → connections and channel → connections (keys from
 * lib/keys.ts, so the tenant is part of every key); every gateway renders each notice for its own
 * connections, so each connection gets each event once.
 */

/** Cross-gateway class A relays (typing indicators): one broadcast, rendered locally by every gateway. */
export const WS_RELAY_EVENT = "gateway.wsRelay";

export interface WsRelay {
  tenantId: string;
  /** The channel whose subscribers get it (`conversation:{id}`). */
  channel: string;
  frame: WsEnvelope;
  exceptConnectionId?: string;
}

/** What the adapter needs from the gateway beyond the protocol-neutral host. */
export interface RawWsHost extends GatewayHost {
  broker: ServiceBroker;
  /** Counts a hit against a limit in the shared store (per node while it is unreachable). */
  consumeRate(tenantId: string, key: string, limit: number, windowMs: number): Promise<RateLimitResult>;
}

/** Live frames held for one connection while it is replayed; beyond this it must reconnect. */
const MAX_HELD_FRAMES = 10_000;
/** Class A frames are dropped for a connection with more than this unsent. */
const VOLATILE_BUFFER_BYTES = 1024 * 1024;
/** A connection this far behind is closed; it resumes from its last `sequence`. */
const MAX_BUFFER_BYTES = 16 * 1024 * 1024;
/** Client frames waiting for their turn; the rate limit keeps this far lower in practice. */
const MAX_QUEUED_FRAMES = 1000;
const REPLAY_PAGE = 500;
const CALL = { timeout: 5000, retries: 0 } as const;
/** Close codes: 1001 going away (shutdown), 1008 policy (token expired), 1013 try again later (too slow). */
const CLOSE = { normal: 1000, goingAway: 1001, policy: 1008, tryAgain: 1013 } as const;
const RENDERED_TYPES = new Set(WS_RENDERED_TYPES);

/** One raw WebSocket connection. */
class WsConnection {
  readonly channels = new Set<string>();
  /** Live frames held until the connect frame (and the replay) went out; undefined once live. */
  held: Array<{ data: string; position?: string }> | undefined = [];
  overflowed = false;
  lastSeen = Date.now();
  closed = false;
  /** Client frames are handled one at a time, in order. */
  queue: Promise<void> = Promise.resolve();
  queued = 0;
  /** Arrival times of the last `limit` accepted frames (a ring): the sliding one-second window. */
  readonly frameTimes: number[] = [];
  frameIndex = 0;
  rateNotifiedAt = 0;

  constructor(
    readonly socket: WebSocket,
    readonly state: ConnectionState
  ) {}

  get id() {
    return this.state.connectionId;
  }

  /** What this connection's user may see of the stream (no PF-2 rooms: seed 002 has none). */
  viewer(): Viewer {
    return { userId: this.state.userId, rooms: new Set(), eventTypes: RENDERED_TYPES };
  }
}

export class RawWsAdapter {
  private readonly wss: WebSocketServer;
  private readonly connections = new Map<string, WsConnection>();
  private readonly byUser = new Map<string, Set<WsConnection>>();
  private readonly byChannel = new Map<string, Set<WsConnection>>();
  private readonly slots: ConnectionSlotStore;
  /** Counts slots on this node while the shared store is unreachable. */
  private readonly fallbackSlots = new MemoryConnectionSlotStore();
  private keepAliveTimer?: NodeJS.Timeout;
  private slotTimer?: NodeJS.Timeout;
  private accepting = true;
  private readonly slotTtlMs: number;

  constructor(private readonly host: RawWsHost) {
    const config = host.config;
    this.slots = createConnectionSlotStore(config);
    this.slotTtlMs = config.presenceTtlSeconds * 1000;
    // Frames up to 4× the limit reach the handler and get INVALID_MESSAGE; larger ones close the
    // connection at the transport (1009), so no client can make the node buffer megabytes.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(1024 * 1024, config.wsMaxPayloadBytes * 4), perMessageDeflate: false, clientTracking: false });
  }

  /** Number of raw WebSocket connections on this node. */
  get size(): number {
    return this.connections.size;
  }

  /** Connection states of this node (presence heartbeats). */
  states(): ConnectionState[] {
    return [...this.connections.values()].map(c => c.state);
  }

  /** Takes the upgrades for WS_RAW_PATH on the gateway's HTTP server; starts keep-alive and slot refresh. */
  attach(server: Server): void {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    const { wsPingIntervalMs } = this.host.config;
    this.keepAliveTimer = setInterval(() => this.keepAlive(), wsPingIntervalMs);
    this.keepAliveTimer.unref();
    this.slotTimer = setInterval(() => this.refreshSlots(), Math.max(250, Math.floor(this.slotTtlMs / 3)));
    this.slotTimer.unref();
  }

  /** Refuses new connections and closes every open one with `disconnect {reason: server_shutdown}`. */
  async close(): Promise<void> {
    this.accepting = false;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    if (this.slotTimer) clearInterval(this.slotTimer);
    const open = [...this.connections.values()];
    for (const conn of open) this.disconnect(conn, CLOSE.goingAway, "server_shutdown");
    await Promise.all(open.map(conn => this.cleanup(conn)));
    this.wss.close();
    await this.slots.close();
    await this.fallbackSlots.close();
  }

  // ---------------------------------------------------------------- push sink

  /** Renders the core's notices (lib/push.ts) for this node's seed 002 connections. */
  sink(): PushSink {
    return {
      name: "seed002-ws",
      push: (notice: PushNotice) => this.pushStored(notice.stored),
      presence: (notice: PresenceNotice) => this.pushPresence(notice),
      membersRemoved: (notice: MembersRemovedNotice) => this.dropMembers(notice),
      disconnect: (notice: DisconnectNotice) => this.disconnectMatching(notice)
    };
  }

  /** An operator's `gateway.systemDisconnect`: `disconnect {reason}`, then close (1008). */
  private disconnectMatching(notice: DisconnectNotice): number {
    const matching =
      notice.connectionId !== undefined
        ? [this.connections.get(notice.connectionId)].filter((c): c is WsConnection => c !== undefined && c.state.tenantId === notice.tenantId)
        : [...this.connections.values()].filter(c => c.state.tenantId === notice.tenantId && c.state.userId === notice.userId);
    for (const conn of matching) this.disconnect(conn, CLOSE.policy, notice.reason);
    return matching.length;
  }

  private pushStored(stored: StoredEvent) {
    const rendered = renderStored(stored);
    if (!rendered) return;
    const targets = this.candidates(stored.tenantId, stored.audience, rendered.channel);
    if (targets.length === 0) return;
    const data = JSON.stringify(frameOf(rendered));
    for (const conn of targets) {
      if (this.reaches(conn, stored, rendered)) this.deliver(conn, data, { position: stored.position });
    }
  }

  /** Connections that may get an event: its audience's, or a tenant-wide channel's subscribers. */
  private candidates(tenantId: string, audience: Audience | undefined, channel: string): WsConnection[] {
    if (!audience) return [...(this.byChannel.get(channelKey(tenantId, channel)) ?? [])];
    if ("roomId" in audience) return [];
    const userIds = "userId" in audience ? [audience.userId] : audience.userIds;
    const found: WsConnection[] = [];
    for (const userId of userIds) for (const conn of this.byUser.get(userChannel(tenantId, userId)) ?? []) found.push(conn);
    return found;
  }

  /** The one delivery rule, for live events and replays alike. */
  private reaches(conn: WsConnection, stored: StoredEvent, rendered: RenderedEvent): boolean {
    if (conn.state.tenantId !== stored.tenantId || rendered.origin === conn.id) return false;
    if (rendered.reach === "subscribers" && !conn.channels.has(rendered.channel)) return false;
    return visibleTo(stored, conn.viewer());
  }

  private pushPresence(notice: PresenceNotice) {
    if (!notice.changed) return;
    const { tenantId, presence } = notice;
    const specific = presenceChannel(presence.userId);
    const sent = new Set<WsConnection>();
    let payload: ReturnType<typeof presencePayloadOf> | undefined;
    for (const channel of [specific, PRESENCE]) {
      const subscribers = this.byChannel.get(channelKey(tenantId, channel));
      if (!subscribers || subscribers.size === 0) continue;
      payload ??= presencePayloadOf(presence);
      const data = JSON.stringify(envelope("presence", payload, { channel }));
      for (const conn of subscribers) {
        if (sent.has(conn)) continue;
        sent.add(conn);
        this.deliver(conn, data, { volatile: true });
      }
    }
  }

  /** Users removed from a conversation stop receiving its typing indicators at once. */
  private dropMembers(notice: MembersRemovedNotice) {
    const channel = conversationChannel(notice.conversationId);
    for (const userId of notice.userIds) {
      for (const conn of [...(this.byUser.get(userChannel(notice.tenantId, userId)) ?? [])]) {
        if (!conn.channels.has(channel)) continue;
        this.unindexChannel(conn, channel);
        this.deliver(conn, JSON.stringify(envelope("unsubscribe", { channel, reason: "removed_from_conversation" }, { channel })), {});
      }
    }
  }

  /** A relay broadcast by any gateway (`gateway.wsRelay`), delivered to this node's subscribers. */
  relayLocal(relay: WsRelay): void {
    const subscribers = this.byChannel.get(channelKey(relay.tenantId, relay.channel));
    if (!subscribers || subscribers.size === 0) return;
    const data = JSON.stringify(relay.frame);
    for (const conn of subscribers) if (conn.id !== relay.exceptConnectionId) this.deliver(conn, data, { volatile: true });
  }

  private async relay(relay: WsRelay): Promise<void> {
    // This node's share directly, the other gateways' through one broadcast to them.
    this.relayLocal(relay);
    await broadcastToRemote(this.host.broker, WS_RELAY_EVENT, relay, "gateway");
  }

  // ---------------------------------------------------------------- connection set-up

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    // Every Socket.IO upgrade passes here too: tell the paths apart without parsing a URL.
    const raw = req.url ?? "/";
    const query = raw.indexOf("?");
    if ((query < 0 ? raw : raw.slice(0, query)) !== this.host.config.wsRawPath) {
      // Socket.IO (engine.io) takes its own path; with its `destroyUpgrade` off, anything else ends here.
      if (!(req.url ?? "").startsWith(`${this.host.config.wsPath.replace(/\/$/, "")}/`)) {
        socket.on("error", () => undefined);
        refuse(socket, 404, { code: WsErrorCode.NOT_FOUND, message: "No WebSocket endpoint at this path" });
      }
      return;
    }
    socket.on("error", () => undefined);
    this.accept(req, socket, head, new URL(raw, "http://localhost")).catch(err => {
      this.host.logger.warn("Raw WebSocket upgrade failed", { error: (err as Error).message });
      refuse(socket, 500, { code: WsErrorCode.INTERNAL_ERROR, message: "Internal server error" });
    });
  }

  /** Authenticates and admits an upgrade request, or answers it with an HTTP error and closes it. */
  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) {
    const config = this.host.config;
    if (!this.accepting || !this.host.accepting) return refuse(socket, 503, { code: WsErrorCode.INTERNAL_ERROR, message: "Server is shutting down; reconnect to another node", details: { retryable: true } });
    let principal: Principal;
    try {
      const token = url.searchParams.get("token") || bearerToken(req.headers.authorization);
      if (!token) throw new WsError(WsErrorCode.MISSING_TOKEN, "Missing token: pass ?token=<JWT> or Authorization: Bearer <JWT>");
      principal = this.host.verifier.verifyConnection(token);
    } catch (err) {
      const { status, body } = toWsError(err);
      this.host.logger.debug("Raw WebSocket refused", { reason: body.code });
      return refuse(socket, status, { code: body.code, message: body.message });
    }
    let resumeFrom: number;
    let requested: string[];
    try {
      resumeFrom = sequenceParam(url.searchParams.get("last_poll_id") ?? url.searchParams.get("last_sequence"));
      requested = channelsParam(url.searchParams.get("channels"), config.wsMaxRoomsPerConnection);
    } catch (err) {
      const { status, body } = toWsError(err);
      return refuse(socket, status, body);
    }
    if (this.host.connectionCount() >= config.wsMaxConnections) {
      return refuse(socket, 503, { code: WsErrorCode.INTERNAL_ERROR, message: "Connection limit of this node reached; reconnect to another node", details: { retryable: true, limit: config.wsMaxConnections } });
    }
    const slot: SlotRef = { tenantId: principal.tenantId, userId: principal.userId, connectionId: randomUUID() };
    const granted = await this.acquireSlot(slot);
    if (!granted.allowed) {
      return refuse(socket, 429, { code: WsErrorCode.MAX_CONNECTIONS, message: `At most ${config.maxConnectionsPerUser} connections per user`, details: { limit: config.maxConnectionsPerUser } });
    }
    let opened = false;
    // The handshake may still fail (client gone, bad WebSocket headers): the slot goes with it.
    socket.once("close", () => {
      if (!opened) this.releaseSlot(slot);
    });
    if (socket.destroyed || !this.accepting) {
      this.releaseSlot(slot);
      return socket.destroy();
    }
    this.wss.handleUpgrade(req, socket, head, ws => {
      opened = true;
      this.onOpen(ws, principal, slot.connectionId, deviceOfRequest(req), resumeFrom, requested).catch(err =>
        this.host.logger.error("Raw WebSocket set-up failed", { tenantId: principal.tenantId, connectionId: slot.connectionId, error: (err as Error).message })
      );
    });
  }

  private async onOpen(ws: WebSocket, principal: Principal, connectionId: string, device: Pick<ConnectionState, "userAgent" | "ip">, resumeFrom: number, requested: string[]) {
    const state: ConnectionState = {
      tenantId: principal.tenantId,
      userId: principal.userId,
      principal,
      connectionId,
      clientId: connectionId,
      rooms: new Set(),
      connectedAt: Date.now(),
      ...device
    };
    const conn = new WsConnection(ws, state);
    this.connections.set(connectionId, conn);
    addTo(this.byUser, userChannel(state.tenantId, state.userId), conn);
    this.indexChannel(conn, NOTIFICATIONS);
    ws.on("message", (data: RawData, isBinary: boolean) => this.onFrame(conn, data, isBinary));
    ws.on("pong", () => {
      conn.lastSeen = Date.now();
    });
    ws.on("error", (err: Error) => this.host.logger.debug("Raw WebSocket error", { connectionId, error: err.message }));
    ws.on("close", () => {
      this.cleanup(conn).catch((err: Error) => this.host.logger.warn("Raw WebSocket cleanup failed", { connectionId, error: err.message }));
    });
    scheduleTokenExpiry(conn.state.principal.exp, conn, this.expire);
    await this.host.registerConnection(state);

    // Channels asked for in the URL are joined before the replay, so their missed traffic is in it.
    const refused: WsEnvelope[] = [];
    for (const name of requested) {
      try {
        await this.subscribe(conn, name);
      } catch (err) {
        refused.push(errorFrame({ ...toWsError(err).body, details: { channel: name } }));
      }
    }
    if (conn.closed) return;
    let lastScanned: string | undefined;
    try {
      const head = (await this.host.tailEvents(state.tenantId, 1))[0]?.position ?? null;
      const cursor = cursorOf(resumeFrom, head);
      const connected = { user_id: state.userId, timestamp: new Date().toISOString(), connection_id: connectionId };
      if (cursor.kind === "now") {
        this.sendNow(conn, envelope("connect", { ...connected, last_poll_id: (head && sequenceOf(head)) || FROM_START }));
        for (const frame of refused) this.sendNow(conn, frame);
      } else {
        const after = cursor.kind === "after" ? cursor.position : undefined;
        let page = await this.host.readEvents(state.tenantId, conn.viewer(), after, REPLAY_PAGE);
        const lost = cursor.kind === "lost" || page.lost;
        if (page.lost) page = await this.host.readEvents(state.tenantId, conn.viewer(), undefined, REPLAY_PAGE);
        this.sendNow(conn, envelope("connect", { ...connected, last_poll_id: resumeFrom, recovered: !lost, ...(lost ? { history_lost: true } : {}) }));
        for (const frame of refused) this.sendNow(conn, frame);
        for (;;) {
          if (conn.closed || page.lost) break;
          for (const stored of page.events) {
            const rendered = renderStored(stored);
            if (rendered && this.reaches(conn, stored, rendered)) this.sendNow(conn, frameOf(rendered));
          }
          lastScanned = page.next ?? lastScanned;
          if (!page.hasMore || !page.next) break;
          page = await this.host.readEvents(state.tenantId, conn.viewer(), page.next, REPLAY_PAGE);
        }
      }
    } catch (err) {
      this.host.logger.warn("Raw WebSocket replay failed", { tenantId: state.tenantId, connectionId, error: (err as Error).message });
      this.sendNow(conn, errorFrame({ code: WsErrorCode.INTERNAL_ERROR, message: "Could not replay the stream; reconnect with your last sequence", details: { retryable: true } }));
      return this.disconnect(conn, CLOSE.tryAgain, "replay_failed");
    }
    this.goLive(conn, lastScanned);
  }

  /** Sends what arrived during set-up, minus what the replay already covered, and goes live. */
  private goLive(conn: WsConnection, lastScanned: string | undefined) {
    const held = conn.held ?? [];
    conn.held = undefined;
    if (conn.overflowed) {
      this.sendNow(conn, errorFrame({ code: WsErrorCode.INTERNAL_ERROR, message: "Too much traffic arrived during the replay; reconnect with your last sequence", details: { reason: "replay_overflow", retryable: true } }));
      return this.disconnect(conn, CLOSE.tryAgain, "replay_overflow");
    }
    for (const { data, position } of held) {
      if (position !== undefined && lastScanned !== undefined && !isAfter(position, lastScanned)) continue;
      this.write(conn, data, false);
    }
  }

  /** Closes a connection whose token expired; one handler for all of this adapter's connections. */
  private readonly expire = (conn: WsConnection) => {
    this.sendNow(conn, errorFrame({ code: WsErrorCode.TOKEN_EXPIRED, message: "Token expired; reconnect with a fresh token" }));
    this.disconnect(conn, CLOSE.policy, "token_expired");
  };

  /** `disconnect {reason}` then a close frame; cleanup runs on the socket's close event. */
  private disconnect(conn: WsConnection, code: number, reason: string) {
    if (conn.closed) return;
    this.sendNow(conn, envelope("disconnect", { reason }));
    // A close reason is at most 123 bytes; the frame above carries the full one.
    conn.socket.close(code, Buffer.byteLength(reason) <= 123 ? reason : undefined);
    // A peer that never answers the close handshake is cut after a while.
    setTimeout(() => conn.socket.terminate(), 5000).unref();
  }

  private async cleanup(conn: WsConnection) {
    if (conn.closed) return;
    conn.closed = true;
    const { state } = conn;
    cancelTokenExpiry(state.principal.exp, conn);
    this.connections.delete(conn.id);
    removeFrom(this.byUser, userChannel(state.tenantId, state.userId), conn);
    for (const channel of [...conn.channels]) this.unindexChannel(conn, channel);
    this.releaseSlot({ tenantId: state.tenantId, userId: state.userId, connectionId: state.connectionId });
    await this.host.unregisterConnection(state);
  }

  private async acquireSlot(slot: SlotRef) {
    const { maxConnectionsPerUser } = this.host.config;
    try {
      return await this.slots.acquire(slot, maxConnectionsPerUser, this.slotTtlMs, Date.now());
    } catch (err) {
      this.host.logger.warn("Connection-slot store unreachable; counting on this node", { error: (err as Error).message });
      return this.fallbackSlots.acquire(slot, maxConnectionsPerUser, this.slotTtlMs, Date.now());
    }
  }

  private releaseSlot(slot: SlotRef) {
    this.fallbackSlots.release(slot).catch(() => undefined);
    this.slots.release(slot).catch((err: Error) => this.host.logger.debug("Slot release failed; it expires on its own", { error: err.message }));
  }

  private refreshSlots() {
    const refs = [...this.connections.values()].map(c => ({ tenantId: c.state.tenantId, userId: c.state.userId, connectionId: c.id }));
    if (refs.length === 0) return;
    const now = Date.now();
    this.fallbackSlots.refresh(refs, this.slotTtlMs, now).catch(() => undefined);
    this.slots.refresh(refs, this.slotTtlMs, now).catch((err: Error) => this.host.logger.warn("Connection-slot refresh failed", { error: err.message }));
  }

  /** Pings every connection and sends `heartbeat`; closes those silent for longer than WS_PING_TIMEOUT. */
  private keepAlive() {
    const { wsPingIntervalMs, wsPingTimeoutMs } = this.host.config;
    const now = Date.now();
    const beat = JSON.stringify(envelope("heartbeat", { timestamp: new Date(now).toISOString() }));
    for (const conn of this.connections.values()) {
      if (now - conn.lastSeen > wsPingIntervalMs + wsPingTimeoutMs) {
        conn.socket.terminate();
        continue;
      }
      try {
        conn.socket.ping();
      } catch {
        // closing already
      }
      this.deliver(conn, beat, { volatile: true });
    }
  }

  // ---------------------------------------------------------------- sending

  /** Live traffic: held while the connection is set up, dropped when class A meets a congested client. */
  private deliver(conn: WsConnection, data: string, options: { position?: string; volatile?: boolean }) {
    if (conn.closed) return;
    if (conn.held) {
      if (conn.held.length >= MAX_HELD_FRAMES) conn.overflowed = true;
      else conn.held.push({ data, ...(options.position !== undefined ? { position: options.position } : {}) });
      return;
    }
    this.write(conn, data, options.volatile === true);
  }

  /** Set-up traffic (connect, replay) and answers to the client's own frames: never held. */
  private sendNow(conn: WsConnection, frame: WsEnvelope) {
    if (!conn.closed) this.write(conn, JSON.stringify(frame), false);
  }

  private write(conn: WsConnection, data: string, volatile: boolean) {
    const ws = conn.socket;
    if (ws.readyState !== ws.OPEN) return;
    if (volatile && ws.bufferedAmount > VOLATILE_BUFFER_BYTES) return;
    if (ws.bufferedAmount > MAX_BUFFER_BYTES) {
      this.host.logger.warn("Raw WebSocket too slow; closing it", { tenantId: conn.state.tenantId, connectionId: conn.id });
      ws.close(CLOSE.tryAgain, "slow_consumer");
      return;
    }
    ws.send(data);
  }

  private answer(conn: WsConnection, frame: InboundFrame, data: unknown) {
    if (frame.ack_id !== undefined) this.sendNow(conn, ackFrame(frame.ack_id, "success", data));
  }

  /** An error goes back as `ack {status: error}` when the frame asked for an ack, else as `error`. */
  private fail(conn: WsConnection, err: unknown, ackId: string | undefined, type?: string) {
    const { status, body } = toWsError(err);
    if (status >= 500) {
      this.host.logger.error("Raw WebSocket handler failed", { tenantId: conn.state.tenantId, connectionId: conn.id, type, error: err instanceof Error ? err.message : String(err) });
      if (body.code === WsErrorCode.INTERNAL_ERROR && !(err instanceof WsError)) body.details = { ...(type ? { type } : {}), retryable: true };
    }
    this.sendNow(conn, ackId !== undefined ? ackFrame(ackId, "error", body) : errorFrame(body));
  }

  // ---------------------------------------------------------------- client frames

  private onFrame(conn: WsConnection, data: RawData, isBinary: boolean) {
    if (conn.closed) return;
    const now = Date.now();
    conn.lastSeen = now;
    const parsed = parseFrame(data, isBinary, this.host.config.wsMaxPayloadBytes);
    if (!this.allowFrame(conn, now)) {
      const ackId = "frame" in parsed ? parsed.frame.ack_id : parsed.ackId;
      const limited = new WsError(WsErrorCode.RATE_LIMITED, `More than ${this.host.config.wsRawRateLimit} messages per second`, { limit: this.host.config.wsRawRateLimit, windowMs: 1000 });
      if (ackId !== undefined) this.fail(conn, limited, ackId);
      else if (now - conn.rateNotifiedAt >= 1000) {
        conn.rateNotifiedAt = now;
        this.fail(conn, limited, undefined);
      }
      return;
    }
    if ("error" in parsed) return this.fail(conn, parsed.error, parsed.ackId);
    const frame = parsed.frame;
    if (conn.queued >= MAX_QUEUED_FRAMES) return this.fail(conn, new WsError(WsErrorCode.RATE_LIMITED, "Too many messages waiting; slow down"), frame.ack_id, frame.type);
    conn.queued += 1;
    conn.queue = conn.queue
      .then(() => (conn.closed ? undefined : this.handle(conn, frame)))
      .then(
        result => {
          if (result !== NO_ACK) this.answer(conn, frame, result);
        },
        err => this.fail(conn, err, frame.ack_id, frame.type)
      )
      .finally(() => {
        conn.queued -= 1;
      });
  }

  /** At most WS_RAW_RATE_LIMIT frames in any one-second window; refused frames are not counted. */
  private allowFrame(conn: WsConnection, now: number): boolean {
    const limit = this.host.config.wsRawRateLimit;
    const times = conn.frameTimes;
    if (times.length < limit) {
      times.push(now);
      return true;
    }
    if (now - times[conn.frameIndex] < 1000) return false;
    times[conn.frameIndex] = now;
    conn.frameIndex = (conn.frameIndex + 1) % limit;
    return true;
  }

  /** Handles one client frame; the result is the ack's `data`. */
  private async handle(conn: WsConnection, frame: InboundFrame): Promise<unknown> {
    switch (frame.type) {
      case "subscribe":
        return this.subscribe(conn, channelNameOf(frame));
      case "unsubscribe":
        return this.unsubscribe(conn, channelNameOf(frame));
      case "message":
        return this.onMessage(conn, frame);
      case "typing_start":
      case "typing_stop":
        return this.onTyping(conn, frame);
      case "read_receipt":
        return this.onReadReceipt(conn, frame);
      case "notification_read":
      case "notification_read_all":
        return this.onNotificationRead(conn, frame);
      case "presence":
        return this.onPresence(conn, frame);
      case "heartbeat": {
        const timestamp = new Date().toISOString();
        this.sendNow(conn, envelope("heartbeat", { timestamp }));
        return { timestamp };
      }
      case "ack":
        // Clients may acknowledge server frames; nothing to do.
        return NO_ACK;
      case "disconnect":
        this.disconnect(conn, CLOSE.normal, "client_initiated");
        return NO_ACK;
      default:
        throw invalidMessage(`Unknown message type '${frame.type}'`, { type: frame.type });
    }
  }

  /** `subscribe {channel}`: CHANNEL_NOT_FOUND for a name no channel has, AUTHZ_FAILED for a forbidden one. */
  private async subscribe(conn: WsConnection, name: string): Promise<{ channel: string }> {
    const channel = parseChannel(name);
    if (!channel) throw new WsError(WsErrorCode.CHANNEL_NOT_FOUND, `Unknown channel '${name.slice(0, 300)}'`, { channel: name.slice(0, 300) });
    if (conn.channels.has(channel.name)) return { channel: channel.name };
    if (conn.channels.size >= this.host.config.wsMaxRoomsPerConnection) {
      throw invalidMessage(`A connection may subscribe to at most ${this.host.config.wsMaxRoomsPerConnection} channels`, { channel: channel.name });
    }
    await this.authorize(conn, channel);
    if (conn.closed) return { channel: channel.name };
    this.indexChannel(conn, channel.name);
    if (channel.kind === "presence_user") {
      // The current presence, so the subscriber does not wait for the next change.
      const presence = await this.host.callAs<{ userId: string; status: "online" | "away" | "offline"; metadata?: Record<string, unknown>; lastSeen: string | null }>(conn.state, "presence.get", {
        tenantId: conn.state.tenantId,
        userId: channel.userId
      });
      this.deliver(conn, JSON.stringify(envelope("presence", presencePayloadOf(presence), { channel: channel.name })), { volatile: true });
    }
    return { channel: channel.name };
  }

  private async authorize(conn: WsConnection, channel: WsChannel) {
    if (channel.kind === "conversation") await this.requireMember(conn, channel.conversationId);
  }

  private async unsubscribe(conn: WsConnection, name: string): Promise<{ channel: string }> {
    const channel = parseChannel(name);
    if (!channel) throw new WsError(WsErrorCode.CHANNEL_NOT_FOUND, `Unknown channel '${name.slice(0, 300)}'`, { channel: name.slice(0, 300) });
    this.unindexChannel(conn, channel.name);
    return { channel: channel.name };
  }

  /** A subscribed conversation was checked on subscribe (and removals drop it); otherwise ask. */
  private async requireMember(conn: WsConnection, conversationId: string) {
    if (conn.channels.has(conversationChannel(conversationId))) return;
    const { member } = await this.host.callAs<{ member: boolean }>(conn.state, "conversations.isMember", {
      tenantId: conn.state.tenantId,
      conversationId,
      userId: conn.state.userId
    });
    if (!member) throw new WsError(WsErrorCode.AUTHZ_FAILED, "Not a member of this conversation", { channel: conversationChannel(conversationId) });
  }

  private async membersOf(conn: WsConnection, conversationId: string): Promise<string[]> {
    // An internal call: users may not list members, but the gateway addresses the members' devices.
    const { members } = await this.host.broker.call<{ members: string[] }, object>("conversations.get", { tenantId: conn.state.tenantId, conversationId }, CALL);
    return members;
  }

  /** `message` to `conversation:{id}`: persisted through the server push API, so every protocol's members get it. */
  private async onMessage(conn: WsConnection, frame: InboundFrame) {
    const conversationId = conversationOf(frame);
    const { sender: _untrusted, conversation_id: _c, sender_id: _s, id: _i, created_at: _t, is_read: _r, ...body } = frame.payload;
    if (typeof body.content !== "string" || body.content.length === 0) throw invalidMessage("payload.content must be a non-empty string", { field: "payload.content" });
    await this.requireMember(conn, conversationId);
    const members = await this.membersOf(conn, conversationId);
    const eventId = eventIdOf(conn, frame);
    const message = { ...body, id: eventId, conversation_id: conversationId, sender_id: conn.state.userId, created_at: new Date().toISOString(), is_read: false };
    const result = await this.host.broker.call<{ eventId: string; position: string; duplicate: boolean }, object>(
      "push.message",
      { tenantId: conn.state.tenantId, eventId, conversationId, kind: "new", message, senderId: conn.state.userId, recipients: members },
      CALL
    );
    return { id: result.eventId, conversation_id: conversationId, sequence: sequenceOf(result.position) ?? null, duplicate: result.duplicate };
  }

  /** `typing_start` / `typing_stop`: class A, relayed to the conversation's subscribers on every gateway, never stored. */
  private async onTyping(conn: WsConnection, frame: InboundFrame) {
    const conversationId = conversationOf(frame);
    const username = frame.payload.username;
    if (username !== undefined && (typeof username !== "string" || username.length > 128)) throw invalidMessage("payload.username must be a string of at most 128 characters", { field: "payload.username" });
    await this.requireMember(conn, conversationId);
    const channel = conversationChannel(conversationId);
    const payload = { conversation_id: conversationId, user_id: conn.state.userId, ...(username !== undefined ? { username } : {}), is_typing: frame.type === "typing_start" };
    await this.relay({ tenantId: conn.state.tenantId, channel, frame: envelope(frame.type, payload, { channel }), exceptConnectionId: conn.id });
    return { conversation_id: conversationId };
  }

  /** `read_receipt`: class B, logged for the conversation's members (their other devices and pollers included). */
  private async onReadReceipt(conn: WsConnection, frame: InboundFrame) {
    const conversationId = conversationOf(frame);
    const ids = frame.payload.message_ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 1000 || !ids.every(isIdentifier)) {
      throw invalidMessage("payload.message_ids must be a list of 1-1000 message ids", { field: "payload.message_ids" });
    }
    await this.requireMember(conn, conversationId);
    const members = await this.membersOf(conn, conversationId);
    const payload = { conversation_id: conversationId, user_id: conn.state.userId, message_ids: [...new Set(ids as string[])], read_at: readAtOf(frame.payload.read_at) };
    return this.publish(conn, frame, WS_EVENT_TYPES.readReceipt, payload, { userIds: members, conversationId });
  }

  /** `notification_read` / `notification_read_all`: class B, logged for the user, relayed to their other devices. */
  private async onNotificationRead(conn: WsConnection, frame: InboundFrame) {
    const readAt = readAtOf(frame.payload.read_at);
    if (frame.type === "notification_read_all") return this.publish(conn, frame, WS_EVENT_TYPES.notificationReadAll, { read_at: readAt }, { userId: conn.state.userId });
    const notificationId = frame.payload.notification_id;
    if (!isIdentifier(notificationId)) throw invalidMessage("payload.notification_id is required", { field: "payload.notification_id" });
    return this.publish(conn, frame, WS_EVENT_TYPES.notificationRead, { notification_id: notificationId, read_at: readAt }, { userId: conn.state.userId });
  }

  private async publish(conn: WsConnection, frame: InboundFrame, eventType: string, payload: Record<string, unknown>, audience: { userId: string } | { userIds: string[]; conversationId: string }) {
    // An internal publish (no user role check): the adapter has already decided who may see it.
    const result = await this.host.broker.call<{ eventId: string; position: string; duplicate: boolean }, object>(
      "eventbus.publish",
      { tenantId: conn.state.tenantId, eventId: eventIdOf(conn, frame), eventType, payload, metadata: { source: "ws", origin: conn.id, senderId: conn.state.userId }, audience },
      CALL
    );
    return { id: result.eventId, sequence: sequenceOf(result.position) ?? null, duplicate: result.duplicate };
  }

  /** `presence {status}`: online, away, busy (stored as away + metadata.status busy) or offline (invisible). */
  private async onPresence(conn: WsConnection, frame: InboundFrame) {
    const status = frame.payload.status;
    if (status !== "online" && status !== "away" && status !== "busy" && status !== "offline") {
      throw invalidMessage("payload.status must be online, away, busy or offline", { field: "payload.status" });
    }
    await this.host.callAs(conn.state, "presence.update", {
      tenantId: conn.state.tenantId,
      userId: conn.state.userId,
      status: status === "busy" ? "away" : status,
      ...(status === "busy" ? { metadata: { status: "busy" } } : {})
    });
    return { status };
  }

  // ---------------------------------------------------------------- indexes

  private indexChannel(conn: WsConnection, channel: string) {
    conn.channels.add(channel);
    addTo(this.byChannel, channelKey(conn.state.tenantId, channel), conn);
  }

  private unindexChannel(conn: WsConnection, channel: string) {
    conn.channels.delete(channel);
    removeFrom(this.byChannel, channelKey(conn.state.tenantId, channel), conn);
  }
}

/** Marks a handled frame that gets no ack. */
const NO_ACK = Symbol("no-ack");

/** Key of a channel's local subscriber set: the tenant is part of it. */
function channelKey(tenantId: string, channel: string): string {
  return tenantKey(tenantId, "wsch", channel);
}

function addTo<K, V>(index: Map<K, Set<V>>, key: K, value: V) {
  let set = index.get(key);
  if (!set) {
    set = new Set();
    index.set(key, set);
  }
  set.add(value);
}

function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, value: V) {
  const set = index.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}

function channelNameOf(frame: InboundFrame): string {
  const name = frame.payload.channel ?? frame.channel;
  if (typeof name !== "string" || name.length === 0) throw invalidMessage("payload.channel is required", { field: "payload.channel" });
  return name;
}

/** The conversation a frame addresses: `channel: conversation:{id}` and/or `payload.conversation_id`. */
function conversationOf(frame: InboundFrame): string {
  let fromChannel: string | undefined;
  if (frame.channel !== undefined) {
    const channel = parseChannel(frame.channel);
    if (!channel) throw new WsError(WsErrorCode.CHANNEL_NOT_FOUND, `Unknown channel '${frame.channel}'`, { channel: frame.channel });
    if (channel.kind !== "conversation") throw invalidMessage(`'${frame.type}' goes to a conversation:{id} channel`, { channel: frame.channel });
    fromChannel = channel.conversationId;
  }
  const fromPayload = frame.payload.conversation_id;
  if (fromPayload !== undefined && !isIdentifier(fromPayload)) throw invalidMessage("payload.conversation_id must be a conversation id", { field: "payload.conversation_id" });
  if (fromChannel !== undefined && fromPayload !== undefined && fromChannel !== fromPayload) {
    throw invalidMessage("channel and payload.conversation_id name different conversations", { channel: frame.channel });
  }
  const conversationId = fromChannel ?? fromPayload;
  if (conversationId === undefined) throw invalidMessage(`'${frame.type}' needs channel conversation:{id} or payload.conversation_id`, { field: "channel" });
  return conversationId;
}

/**
 * The stream's event id of a client frame: derived from the frame (sender, `id`, type, channel and
 * payload) when it has an `id`, so a client re-sending a queued frame after a reconnect does not
 * store it twice, while a client that reuses ids for different messages does not lose them.
 */
function eventIdOf(conn: WsConnection, frame: InboundFrame): string {
  if (!frame.id) return randomUUID();
  const digest = createHash("sha256")
    .update(JSON.stringify([conn.state.tenantId, conn.state.userId, frame.id, frame.type, frame.channel ?? null, frame.payload]))
    .digest("hex");
  return `ws-${digest.slice(0, 32)}`;
}

function readAtOf(value: unknown): string {
  if (typeof value === "string" && value.length <= 64 && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString();
  return new Date().toISOString();
}

/** `last_poll_id` / `last_sequence` of the upgrade URL: absent = 0 (start live, nothing replayed). */
function sequenceParam(raw: string | null): number {
  if (raw === null || raw === "") return FROM_NOW;
  const value = Number(raw);
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(value)) throw invalidMessage("last_poll_id must be a non-negative integer", { field: "last_poll_id" });
  return value;
}

/** `channels=a,b` of the upgrade URL: subscribed before the replay. */
function channelsParam(raw: string | null, max: number): string[] {
  if (raw === null || raw === "") return [];
  const names = [...new Set(raw.split(",").map(s => s.trim()).filter(s => s.length > 0))];
  if (names.length > max) throw invalidMessage(`At most ${max} channels`, { field: "channels" });
  return names;
}

/** Position order within one epoch; positions that cannot be compared count as newer (never dropped). */
function isAfter(position: string, than: string): boolean {
  return (comparePositions(position, than) ?? 1) > 0;
}

/** The device fields of a connection (per-device presence): User-Agent and the TCP peer's address. */
function deviceOfRequest(req: IncomingMessage): Pick<ConnectionState, "userAgent" | "ip"> {
  const device: Pick<ConnectionState, "userAgent" | "ip"> = {};
  const userAgent = req.headers["user-agent"];
  if (typeof userAgent === "string" && userAgent.length > 0) device.userAgent = userAgent.slice(0, 512);
  const ip = req.socket.remoteAddress;
  if (typeof ip === "string" && ip.length > 0 && ip.length <= 64) device.ip = ip;
  return device;
}

/** Answers an upgrade request with an HTTP error and closes the connection (nothing is upgraded). */
function refuse(socket: Duplex, status: number, body: { code: string; message: string; details?: unknown }) {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  socket.once("finish", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
  );
}
