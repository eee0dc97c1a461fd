import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import { SocketIOMixin } from "../types/moleculer-io";
import type { Namespace, Server as IOServer, Socket } from "socket.io";
import type Redis from "ioredis";
import { bearerToken, createTokenVerifier, isIdentifier, type Principal, type TokenVerifier } from "../lib/auth";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import type { CallerMeta } from "../lib/context";
import { DELIVERY_EVENT, emitLocally, type Delivery, type DeliveryTarget } from "../lib/delivery";
import { ErrorCode, RealtimeError, invalidRequest, toClientError } from "../lib/errors";
import { tenantChannel, userChannel } from "../lib/keys";
import { TenantScopeMixin, reportTenantViolation } from "../mixins/tenant-scope.mixin";
import { NO_ROOMS, addRoom, deviceOf, listenToAny, metaFor, quotaKey, stateOf, type ConnectionState, type GatewayHost, type QuotaBucket } from "../protocols/connection";
import { jsonBody } from "../protocols/json-body";
import { PF2_EVENTS, connectedEvent, dispatchPf2, pf2Namespace } from "../protocols/pf2/pf2-adapter";
import { authenticateRequest, bindTenant, sendRestError } from "../protocols/rest-auth";
import { appliedLimit, countRefusedRequest, restRateLimitMiddlewares, setRateLimitHeaders } from "../protocols/rest-rate-limit";
import { acquireRedis, pingLatencyMs, releaseRedis, whenReady } from "../stores/redis-connection";
import { createRateLimitStore, type RateLimitResult, type RateLimitStore } from "../stores/rate-limit";
import { MemoryRateLimitStore } from "../stores/rate-limit/rate-limit-store.memory";
import { comparePositions, createEventLog, type AppendResult, type BusEvent, type EventLog, type ReadResult, type StoredEvent } from "../stores/event-log";
import { readVisible, type Viewer } from "../lib/visibility";
import { HoldingAdapter } from "../protocols/holding-adapter";
import { pf2EventOf } from "../protocols/pf2/pf2-adapter";
import { roomChannel } from "../lib/keys";
import { checkFeedTenant, feedSettings, listFeedEvents, onFeedConnection, postFeedEvent } from "../protocols/feed/feed-adapter";
import { authorizeRestRequest } from "../protocols/admin-access";
import { OPERATOR, auditFirst, auditReporterOf } from "../lib/audit-trail";
import { reportAuthFailure, reportClassDRefused, reportConnectionRefused, reportRateLimited } from "../lib/security-audit";
import { MEMBERS_REMOVED_EVENT, PRESENCE_INTEREST_EVENT, PRESENCE_NOTICE_EVENT, PUSH_EVENT, type PresenceInterest, type MembersRemovedNotice, type PresenceNotices, type PushNotice, type PushSink } from "../lib/push";
import { pf2Sink } from "../protocols/pf2/pf2-sink";
import { cancelTokenExpiry, scheduleTokenExpiry } from "../protocols/token-expiry";
import { AppendBatcher, type AppendOutcome } from "../lib/append-batcher";
import { PRESENCE_BATCH_MAX, type PresenceOp } from "../lib/presence-ops";
import type { Presence } from "../stores/presence/presence-store";
import { TurnBatcher, type BatchOutcome } from "../lib/turn-batcher";
import { broadcastToRemote } from "../lib/remote-broadcast";
// --- seed 003 `/ws/app` (protocols/app) and operator disconnects ---
import { APP_NAMESPACE, appNamespace, authorizeAppSocket, onAppConnection } from "../protocols/app/app-adapter";
import { appSink } from "../protocols/app/app-sink";
import { checkDisconnect, systemDisconnect, systemDisconnectParams, type SystemDisconnectParams } from "../protocols/system-disconnect";
import type { DisconnectNotice } from "../lib/push";
import { RawWsAdapter, WS_RELAY_EVENT, type WsRelay } from "../protocols/ws/ws-adapter";
import { Seed002Polling, seed002PollActions, seed002PollRoute } from "../protocols/ws/ws-poll";
import type { Server as HttpServer } from "node:http";
// Resilience (issue 6): graceful shutdown, slow consumers, dependency health.
import { InFlight, RESYNC, SLOW_CONSUMER, drainGateway, emitNotice, isLogged, shutdownDetails } from "../protocols/shutdown";
import { closeSlowConsumer, outboundBacklog, outboundGuard, whenBacklogBelow, type EngineConnection, type OutboundBacklog } from "../protocols/outbound-guard";
import { handshakeRequestRelease } from "../protocols/handshake-request";
import { flushTransporterSoon, onTransporterChange, transporterStatus, watchTransporter } from "../lib/transporter-status";

/**
 * The gateway node: one HTTP server carrying REST (moleculer-web) and Socket.IO (moleculer-io).
 * It authenticates, validates, applies per-connection limits, translates client protocols to the
 * internal model and emits to its own sockets. Traffic for sockets on other gateways crosses the
 * transporter as one `gateway.deliver` broadcast that every gateway turns into a local emit.
 */
interface GatewayThis extends Service, GatewayHost {
  config: Config;
  io: IOServer;
  verifier: TokenVerifier;
  rateLimits: RateLimitStore;
  /** Used while the shared rate-limit store is unreachable, so limits still hold per node. */
  fallbackRateLimits: MemoryRateLimitStore;
  redis?: Redis;
  /** The tenant logs, read and appended directly when they live in Redis (no hop per message). */
  eventLog?: EventLog;
  heartbeatTimer?: NodeJS.Timeout;
  /** Appends to a remote event bus, one request per event-loop turn (lib/append-batcher.ts). */
  deliverRemote(delivery: Delivery, options?: { confirm?: boolean }): Promise<void>;
  appendBatcher: AppendBatcher;
  /** Connects and disconnects of this node's connections, sent to presence in order, a batch per turn. */
  presenceOps: TurnBatcher<PresenceOp, unknown>;
  /** What this gateway last told the presence instances about rendering presence notices. */
  announcedInterest?: boolean;
  /** A push sink added at run time (addPushSink) renders presence notices. */
  addedPresenceSinks: boolean;
  wantsPresenceNotices(): boolean;
  announcePresenceInterest(): void;
  /** The event bus service of this process, if it runs one (null once looked up and absent). */
  /** Services of this process the gateway calls as functions (null: not on this node). */
  locals: Map<string, unknown>;
  localService<T>(name: string): T | undefined;
  applyPresence(ops: PresenceOp[]): Promise<Array<BatchOutcome<unknown>>>;
  /** The protocol adapters rendering logged events, presence and membership changes (lib/push.ts). */
  pushSinks: PushSink[];
  eachSink(call: (sink: PushSink) => void): void;
  resume(socket: Socket, state: ConnectionState): Promise<void>;
  accepting: boolean;
  /**
   * Set the moment the node starts stopping, when the other nodes stop relaying traffic to it: from
   * then on logged (B/C) traffic is no longer emitted to local clients, so no client's cursor moves
   * past something it did not get; they replay it from the log on their next node.
   */
  draining: boolean;
  /**
   * Set while this node is cut off from the cluster, until the others know it again and its
   * clients were asked to resume: logged traffic is neither accepted nor emitted locally, so no
   * client's live stream skips what other nodes published meanwhile.
   */
  suspended: boolean;
  /**
   * Clients are accepted from this time on (ms): one heartbeat after start, when every other node
   * has learnt that this gateway exists and relays its clients' traffic here. Before that a
   * client could miss what other gateways publish while its cursor moves on.
   */
  joinedAt: number;
  /** Client events being handled and disconnect clean-ups, awaited by the graceful shutdown. */
  inFlight: InFlight;
  /** The drain started when the broker began to stop. */
  drained?: Promise<unknown>;
  shedSlowConsumer(conn: EngineConnection, backlog: OutboundBacklog): void;
  /** Re-registers presence and rooms right after Redis returns (it may have lost them). */
  recoverAfterRedis(): Promise<void>;
  /** After the transporter came back: clients may have missed traffic from other nodes; make them resume. */
  resyncClients(): void;
  stopWatchingTransporter?: () => void;
  pf2(): Namespace;
  /** The seed 003 namespace `/ws/app`. */
  app(): Namespace;
  onPf2Connection(socket: Socket): Promise<void>;
  onPf2Disconnect(socket: Socket): Promise<void>;
  heartbeatConnections(): Promise<void>;
  registerConnection(state: ConnectionState): Promise<void>;
  unregisterConnection(state: Pick<ConnectionState, "tenantId" | "userId" | "connectionId">): Promise<void>;
  socketAuthorize(socket: Socket): Promise<Principal>;
  healthReport(): Promise<{ status: "healthy" | "degraded" | "unhealthy"; body: Record<string, unknown> }>;
  /** moleculer-web's HTTP server (REST, Socket.IO and the seed 002 raw WebSocket share it). */
  server: HttpServer;
  /** Seed 002: the raw WebSocket at WS_RAW_PATH and its HTTP polling fallback. */
  rawWs: RawWsAdapter;
  rawPolling: Seed002Polling;
  consumeRate(tenantId: string, key: string, limit: number, windowMs: number): Promise<RateLimitResult>;
  /** Reports a refused hit of a connection's bucket; returns the result. */
  quotaCounted(state: ConnectionState, bucket: QuotaBucket, result: RateLimitResult): RateLimitResult;
}

/** The part of a co-located event bus service the gateway calls directly. */
interface LocalEventBus {
  store(tenantId: string, event: BusEvent): Promise<{ event: StoredEvent; duplicate: boolean }>;
}

/** The part of a co-located presence service the gateway calls directly. */
interface LocalPresence {
  apply(ops: PresenceOp[]): Promise<Array<BatchOutcome<Presence>>>;
}

const MINUTE_MS = 60_000;
const HEARTBEAT_CHUNK = 5000;
/** How long the transporter may take to confirm a logged event's broadcast before the sender gets an error. */
const DELIVERY_CONFIRM_TIMEOUT_MS = 2000;
/** Names Socket.IO reserves; an internal push may not use them. */
const RESERVED_EVENTS = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/** A refusal during the Socket.IO handshake: the client sees `connect_error` with `data.code`. */
function handshakeError(err: unknown): Error & { data: unknown } {
  const { body } = toClientError(err);
  const error = new Error(body.error) as Error & { data: unknown };
  error.data = body;
  return error;
}

export function createGatewayService(config: Config): ServiceSchema {
  const feed = feedSettings();
  return asServiceSchema<Record<string, unknown>, GatewayThis>({
    name: "gateway",
    mixins: [ApiGateway, SocketIOMixin, TenantScopeMixin()],

    settings: {
      port: config.wsPort,
      ip: config.wsHost,
      log4XXResponses: false,
      logRouteRegistration: "debug",
      logRequest: "debug",
      logResponse: "debug",
      logRequestParams: null,
      logResponseData: null,
      ...(config.corsOrigin ? { cors: { origin: config.corsOrigin.split(","), methods: ["GET", "POST", "PATCH", "OPTIONS"] } } : {}),

      routes: [
        {
          name: "health",
          path: "/health",
          authentication: false,
          authorization: false,
          mappingPolicy: "restrict",
          aliases: { "GET /": "gateway.health", "GET /live": "gateway.live", "GET /ready": "gateway.ready" }
        },
        // Reconciliation (services/reconciliation.service.ts): a route of its own for a body limit
        // that fits RECONCILIATION_MAX_QUEUE_SIZE operations and a timeout after the processing one.
        {
          name: "reconciliation",
          path: "/api/reconciliation",
          authentication: true,
          authorization: true,
          mappingPolicy: "restrict",
          // Strict JSON within the limit (protocols/json-body.ts), then API_RATE_LIMIT like every
          // /api route; the headers show the tighter limit.
          bodyParsers: false,
          use: [jsonBody(config.reconciliationMaxRequestBytes), ...restRateLimitMiddlewares()],
          onAfterCall(this: GatewayThis, ctx: Context<unknown, CallerMeta>, _route: unknown, req: IncomingMessage, res: ServerResponse, data: unknown) {
            const applied = appliedLimit(req, ctx.meta.$rateLimit);
            if (applied) setRateLimitHeaders(res, applied);
            return data;
          },
          callOptions: { timeout: config.reconciliationProcessingTimeoutMs + 5000, retries: 0 },
          aliases: {
            "POST /reconcile": "reconciliation.reconcile",
            "GET /snapshot/:entityType/:entityId": "reconciliation.snapshot"
          }
        },
        {
          name: "api",
          path: "/api",
          authentication: true,
          authorization: true,
          mappingPolicy: "restrict",
          // Strict JSON up to 256 KiB (protocols/json-body.ts), then API_RATE_LIMIT per user and
          // X-RateLimit-* headers on every /api response (protocols/rest-rate-limit.ts).
          bodyParsers: false,
          use: [jsonBody(256 * 1024), ...restRateLimitMiddlewares()],
          onAfterCall(this: GatewayThis, ctx: Context<unknown, CallerMeta>, _route: unknown, req: IncomingMessage, res: ServerResponse, data: unknown) {
            const applied = appliedLimit(req, ctx.meta.$rateLimit);
            if (applied) setRateLimitHeaders(res, applied);
            return data;
          },
          // Long polls wait up to 30 s; everything else answers well within the broker's timeout.
          callOptions: { timeout: 35_000 },
          aliases: {
            "GET /presence/:userId": "presence.get",
            "POST /events/publish": "eventbus.publish",
            "GET /events/poll": "eventbus.poll",
            "POST /events": "gateway.feedPost",
            "GET /events": "gateway.feedList",
            "GET /rooms/:roomId/members": "rooms.members",
            // The server push API for application backends (role `service`).
            "POST /push/notifications": "push.notification",
            "POST /push/messages": "push.message",
            "POST /push/feed": "push.feedUpdate",
            "POST /push/counts": "push.countUpdate",
            "POST /conversations": "conversations.create",
            "GET /conversations/:conversationId": "conversations.get",
            "DELETE /conversations/:conversationId": "conversations.delete",
            "POST /conversations/:conversationId/members": "conversations.addMembers",
            "POST /conversations/:conversationId/members/remove": "conversations.removeMembers",
            // Private rooms (issue #5): settings by room admins, read by those admitted.
            "POST /rooms": "rooms.create",
            "GET /rooms/:roomId": "rooms.get",
            "PATCH /rooms/:roomId": "rooms.update",
            // Super-admins only (protocols/admin-access.ts).
            "GET /audit": "audit.query",
            "GET /audit/verify": "audit.verify"
          }
        },
        // Seed 002 HTTP polling fallback (protocols/ws/ws-poll.ts): JWT only, seed error shape.
        seed002PollRoute()
      ],

      async onError(this: GatewayThis, req: IncomingMessage, res: ServerResponse, err: unknown) {
        await countRefusedRequest(this, req, res);
        const status = sendRestError(res, err);
        if (status >= 500) this.logger.error("REST request failed", { url: req.url, error: (err as Error)?.message });
      },

      io: {
        options: {
          path: config.wsPath,
          pingInterval: config.wsPingIntervalMs,
          pingTimeout: config.wsPingTimeoutMs,
          // Oversized events must reach the handler to get INVALID_REQUEST; far larger frames are
          // cut by engine.io (the connection closes) so no client can make the node buffer megabytes.
          maxHttpBufferSize: Math.max(1024 * 1024, config.wsMaxPayloadBytes * 4),
          connectTimeout: 10_000,
          adapter: HoldingAdapter,
          // Upgrades for other paths (the seed 002 raw WebSocket) are not engine.io's to end.
          destroyUpgrade: false,
          ...(config.corsOrigin ? { cors: { origin: config.corsOrigin.split(",") } } : {})
        },
        namespaces: { "/": pf2Namespace(), [feed.namespace]: { authorization: true, events: {} }, [APP_NAMESPACE]: appNamespace() }
      }
    },

    actions: {
      // moleculer-io's generic actions take raw Socket.IO room names (no tenant) and, being
      // load-balanced, reach one gateway only; `send` replaces them.
      call: false,
      broadcast: false,
      getClients: false,
      // moleculer-web's route management and alias listing: nothing uses them, and a published
      // action without a tenant is one more surface (tenant-guard test allow-list).
      listAliases: false,
      addRoute: false,
      removeRoute: false,

      // Seed 002 polling: realtimePoll, realtimeMissed.
      ...seed002PollActions(),

      /**
       * Push an event to clients from inside the cluster (event bus, other services, operators):
       * `broker.call("gateway.send", {tenantId, userId | roomId | connectionId | all: true, event, payload})`.
       */
      send: {
        visibility: "public",
        params: {
          tenantId: { type: "string", min: 1, max: 128 },
          userId: { type: "string", min: 1, max: 128, optional: true },
          roomId: { type: "string", min: 1, max: 128, optional: true },
          connectionId: { type: "string", min: 1, max: 128, optional: true },
          all: { type: "equal", value: true, optional: true },
          event: { type: "string", min: 1, max: 64, pattern: /^[A-Za-z0-9_.:-]+$/ },
          payload: { type: "any", optional: true },
          volatile: { type: "boolean", optional: true }
        },
        async handler(this: GatewayThis, ctx: Context<{ tenantId: string; userId?: string; roomId?: string; connectionId?: string; all?: true; event: string; payload?: unknown; volatile?: boolean }>) {
          const { tenantId, userId, roomId, connectionId, all, event, payload, volatile } = ctx.params;
          const targets: DeliveryTarget[] = [];
          if (userId !== undefined) targets.push({ userId });
          if (roomId !== undefined) targets.push({ roomId });
          if (connectionId !== undefined) targets.push({ connectionId });
          if (all) targets.push({ tenant: true });
          if (targets.length !== 1) throw invalidRequest("Exactly one of userId, roomId, connectionId or all is required");
          if (RESERVED_EVENTS.includes(event)) throw invalidRequest(`'${event}' is reserved by Socket.IO`);
          await this.deliver({ tenantId, target: targets[0], event, payload: payload ?? null, volatile: volatile === true });
          return { event, target: targets[0] };
        }
      },

      /** Seed 004 `POST /api/events {message}` → 201-style `{event}` (the created feed event). */
      feedPost: {
        params: { tenantId: { type: "string", min: 1, max: 128 }, message: { type: "any", optional: true } },
        async handler(this: GatewayThis, ctx: Context<{ tenantId: string; message?: unknown }, CallerMeta & { $statusCode?: number }>) {
          const author = ctx.meta.auth?.userId ?? "system";
          const event = await postFeedEvent(this, feed, ctx.params.tenantId, author, ctx.params.message);
          ctx.meta.$statusCode = 201;
          return { event };
        }
      },

      /** Seed 004 `GET /api/events?sinceId=&limit=` → `{events}` (oldest first). */
      feedList: {
        params: {
          tenantId: { type: "string", min: 1, max: 128 },
          sinceId: { type: "string", max: 200, optional: true },
          limit: { type: "number", integer: true, min: 1, max: 1000, convert: true, optional: true }
        },
        async handler(this: GatewayThis, ctx: Context<{ tenantId: string; sinceId?: string; limit?: number }, CallerMeta>) {
          const result = await listFeedEvents(this, ctx.params.tenantId, ctx.meta.auth?.userId ?? "system", ctx.params.sinceId, ctx.params.limit ?? 100);
          return { events: result.events, ...(result.lost ? { historyLost: true } : {}) };
        }
      },

      /** Connections held by this node (operators: `call gateway.connections --$nodeID <node>`). */
      connections: {
        visibility: "public",
        params: { tenantId: { type: "string", optional: true } },
        handler(this: GatewayThis, ctx: Context<{ tenantId?: string }>) {
          const list = [];
          for (const socket of [...this.pf2().sockets.values(), ...this.app().sockets.values()]) {
            const state = stateOf(socket);
            if (ctx.params.tenantId !== undefined && state.tenantId !== ctx.params.tenantId) continue;
            list.push({
              namespace: socket.nsp.name,
              connectionId: state.connectionId,
              clientId: state.clientId,
              tenantId: state.tenantId,
              userId: state.userId,
              rooms: [...state.rooms],
              connectedAt: new Date(state.connectedAt).toISOString()
            });
          }
          // Seed 002 raw WebSocket connections, under their path.
          for (const state of this.rawWs.states()) {
            if (ctx.params.tenantId !== undefined && state.tenantId !== ctx.params.tenantId) continue;
            list.push({ namespace: this.config.wsRawPath, connectionId: state.connectionId, clientId: state.clientId, tenantId: state.tenantId, userId: state.userId, rooms: [], connectedAt: new Date(state.connectedAt).toISOString() });
          }
          return { nodeID: this.broker.nodeID, count: list.length, connections: list };
        }
      },

      /**
       * Operator disconnect (seed 003 `system:disconnect`): every socket of a user, or one
       * connection, on every gateway node gets `system:disconnect {reason}` and is closed; audited.
       * REPL: `call gateway.systemDisconnect --tenantId t1 --userId u1 --reason "maintenance"`.
       * The `admin.disconnect` audit record is durable before anyone is disconnected.
       */
      systemDisconnect: {
        visibility: "public",
        params: systemDisconnectParams,
        handler(this: GatewayThis, ctx: Context<SystemDisconnectParams, CallerMeta>) {
          return systemDisconnect(this.broker, this.logger, ctx);
        }
      },

      /** Operators' name for the same action: kick a connection (`connectionId`) or a user (`userId`). */
      kick: {
        visibility: "public",
        params: systemDisconnectParams,
        handler(this: GatewayThis, ctx: Context<SystemDisconnectParams, CallerMeta>) {
          return systemDisconnect(this.broker, this.logger, ctx);
        }
      },

      /** This node's share of `systemDisconnect` (called per node with `nodeID`). */
      disconnectLocal: {
        visibility: "public",
        params: systemDisconnectParams,
        handler(this: GatewayThis, ctx: Context<DisconnectNotice, CallerMeta>) {
          checkDisconnect(ctx);
          let disconnected = 0;
          this.eachSink(sink => {
            disconnected += sink.disconnect?.(ctx.params) ?? 0;
          });
          return { nodeID: this.broker.nodeID, disconnected };
        }
      },

      /** `GET /health`, seed 000 shape. 503 only when unhealthy, so load balancers keep degraded nodes. */
      health: {
        async handler(this: GatewayThis, ctx: Context<unknown, { $statusCode?: number }>) {
          const { status, body } = await this.healthReport();
          if (status === "unhealthy") ctx.meta.$statusCode = 503;
          return body;
        }
      },

      /** `GET /health/live`: the process answers. */
      live: {
        handler(this: GatewayThis) {
          return { status: "ok", nodeID: this.broker.nodeID, timestamp: new Date().toISOString() };
        }
      },

      /** `GET /health/ready`: accepting new connections (not shutting down, below WS_MAX_CONNECTIONS). */
      ready: {
        handler(this: GatewayThis, ctx: Context<unknown, { $statusCode?: number }>) {
          const active = this.connectionCount();
          const ready = this.accepting && Date.now() >= this.joinedAt && active < this.config.wsMaxConnections;
          if (!ready) ctx.meta.$statusCode = 503;
          return { status: ready ? "ready" : "not_ready", activeConnections: active, maxConnections: this.config.wsMaxConnections, timestamp: new Date().toISOString() };
        }
      }
    },

    events: {
      [DELIVERY_EVENT]: {
        handler(this: GatewayThis, ctx: Context<Delivery>) {
          if ((this.draining || this.suspended) && isLogged(ctx.params)) return;
          emitLocally(this.io.of(ctx.params.namespace ?? "/"), ctx.params);
        }
      },
      [PUSH_EVENT]: {
        handler(this: GatewayThis, ctx: Context<PushNotice>) {
          // Logged traffic stops with the drain, as for deliveries: clients resume elsewhere from their cursor.
          if (this.draining || this.suspended) return;
          this.eachSink(sink => sink.push(ctx.params));
        }
      },
      [PRESENCE_NOTICE_EVENT]: {
        handler(this: GatewayThis, ctx: Context<PresenceNotices>) {
          for (const notice of ctx.params.notices) this.eachSink(sink => sink.presence?.(notice));
        }
      },
      /** A node that joins may run presence: tell it whether this gateway renders notices. */
      "$node.connected"(this: GatewayThis) {
        this.announcedInterest = undefined;
        this.announcePresenceInterest();
      },
      [MEMBERS_REMOVED_EVENT]: {
        handler(this: GatewayThis, ctx: Context<MembersRemovedNotice>) {
          this.eachSink(sink => sink.membersRemoved?.(ctx.params));
        }
      },
      /** Seed 002 class A relays (typing) for this node's raw WebSocket connections. */
      [WS_RELAY_EVENT]: {
        handler(this: GatewayThis, ctx: Context<WsRelay>) {
          this.rawWs?.relayLocal(ctx.params);
        }
      }
    },

    methods: {
      pf2(this: GatewayThis) {
        return this.io.of("/");
      },

      app(this: GatewayThis) {
        return this.io.of(APP_NAMESPACE);
      },

      /**
       * moleculer-io keeps the authorised principal on `socket.client.user` for its action-calling
       * event handlers. No namespace has one (every handler is the gateway's own function, and the
       * generic `call` action is off); the principal lives in the connection state, so a second
       * copy would only cost every socket memory.
       */
      socketSaveUser() {
        return undefined;
      },

      connectionCount(this: GatewayThis) {
        return this.pf2().sockets.size + this.app().sockets.size + (this.rawWs?.size ?? 0);
      },

      releaseConnection(this: GatewayThis, socket: Socket) {
        return this.onPf2Disconnect(socket);
      },

      addPushSink(this: GatewayThis, sink: PushSink) {
        this.pushSinks.push(sink);
        // An adapter added at run time renders presence for sockets this node cannot count.
        if (sink.presence) {
          this.addedPresenceSinks = true;
          this.announcePresenceInterest();
        }
      },

      eachSink(this: GatewayThis, call: (sink: PushSink) => void) {
        if (!this.io) return;
        for (const sink of this.pushSinks) {
          try {
            call(sink);
          } catch (err) {
            this.logger.warn("A protocol adapter failed to render a push", { sink: sink.name, error: (err as Error).message });
          }
        }
      },

      /** REST: verified token + matching X-Tenant-ID (moleculer-web `authentication: true`). */
      authenticate(this: GatewayThis, ctx: Context<unknown, CallerMeta>, _route: unknown, req: IncomingMessage) {
        let principal: Principal;
        try {
          principal = authenticateRequest(this.verifier, req.headers, (p, requested) =>
            reportTenantViolation(this.broker, this.logger, { tenantId: p.tenantId, userId: p.userId, role: p.role, requestedTenantId: requested, via: "rest", ...(req.url ? { action: req.url.split("?")[0] } : {}) })
          );
        } catch (err) {
          reportAuthFailure(this.broker, err, "rest", req.socket?.remoteAddress, ((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? "").split("?")[0]);
          throw err;
        }
        ctx.meta.auth = principal;
        return principal;
      },

      /**
       * REST: the action's `tenantId` is the token's, whatever the request said; a super-admin's
       * justified read of another tenant is audited first and marked in ctx.meta (protocols/admin-access.ts).
       */
      async authorize(
        this: GatewayThis,
        ctx: Context<unknown, CallerMeta>,
        _route: unknown,
        req: IncomingMessage & { $params: Record<string, unknown> },
        _res: unknown,
        alias: { method?: string; fullPath?: string; action?: string | null }
      ) {
        const access = await authorizeRestRequest(this, {
          principal: ctx.meta.auth as Principal,
          method: req.method ?? "GET",
          path: ((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? "").split("?")[0],
          route: `${alias?.method ?? req.method} ${alias?.fullPath ?? ""}`,
          ...(alias?.action ? { action: alias.action } : {}),
          headers: req.headers,
          params: req.$params
        });
        if (access) ctx.meta.adminAccess = access;
      },

      /** Socket.IO handshake (moleculer-io `authorization: true`). */
      async socketAuthorize(this: GatewayThis, socket: Socket) {
        // Seed 003 has its own handshake errors (`{code: "socket_error:…", message}`).
        if (socket.nsp.name === APP_NAMESPACE) return authorizeAppSocket(this, socket);
        if (!this.accepting) {
          throw handshakeError(new RealtimeError(ErrorCode.INTERNAL_ERROR, "Server is shutting down; reconnect to another node", { reason: "shutting_down" }));
        }
        if (Date.now() < this.joinedAt) {
          throw handshakeError(new RealtimeError(ErrorCode.INTERNAL_ERROR, "Server is joining the cluster; retry shortly", { reason: "starting", retryable: true, retryAfterMs: this.joinedAt - Date.now() }));
        }
        if (this.connectionCount() >= this.config.wsMaxConnections) {
          reportConnectionRefused(this.broker, "max_connections", "socket.io", socket.handshake.address, { limit: this.config.wsMaxConnections });
          throw handshakeError(new RealtimeError(ErrorCode.RATE_LIMIT, "Connection limit of this node reached", { reason: "max_connections", limit: this.config.wsMaxConnections }));
        }
        let principal: Principal;
        try {
          principal = this.verifier.verifyConnection((socket.handshake.auth as { token?: unknown } | undefined)?.token ?? bearerToken(socket.handshake.headers.authorization));
        } catch (err) {
          this.logger.debug("Socket.IO handshake refused", { address: socket.handshake.address, reason: (err as Error).message });
          reportAuthFailure(this.broker, err, "socket.io", socket.handshake.address, socket.nsp.name);
          throw handshakeError(err);
        }
        if (socket.nsp.name === feed.namespace) {
          try {
            checkFeedTenant(socket, principal.tenantId);
          } catch (err) {
            const claimed = (socket.handshake.auth as { tenantId?: unknown } | undefined)?.tenantId;
            reportTenantViolation(this.broker, this.logger, { tenantId: principal.tenantId, userId: principal.userId, role: principal.role, requestedTenantId: String(claimed), via: "socket.io", action: feed.namespace });
            throw handshakeError(err);
          }
        }
        const handshake = (socket.handshake.auth ?? {}) as { lastEventId?: unknown; rooms?: unknown };
        const resumeRooms = handshake.rooms;
        if (resumeRooms !== undefined && (!Array.isArray(resumeRooms) || resumeRooms.length > this.config.wsMaxRoomsPerConnection || !resumeRooms.every(isIdentifier))) {
          throw handshakeError(invalidRequest("auth.rooms must be a list of room ids", { field: "auth.rooms" }));
        }
        const resumeFrom = handshake.lastEventId;
        if (resumeFrom !== undefined && (typeof resumeFrom !== "string" || resumeFrom.length > 200)) {
          throw handshakeError(invalidRequest("auth.lastEventId must be a position string", { field: "auth.lastEventId" }));
        }
        const requestedClientId = socket.handshake.query.clientId;
        const state: ConnectionState = {
          tenantId: principal.tenantId,
          userId: principal.userId,
          principal,
          connectionId: socket.id,
          clientId: isIdentifier(requestedClientId) ? requestedClientId : randomUUID(),
          rooms: NO_ROOMS,
          connectedAt: Date.now(),
          ...deviceOf(socket),
          ...(resumeFrom !== undefined ? { resumeFrom } : {}),
          ...(resumeRooms !== undefined ? { resumeRooms: [...new Set(resumeRooms as string[])] } : {})
        };
        socket.data = state;
        return principal;
      },

      async onPf2Connection(this: GatewayThis, socket: Socket) {
        const state = stateOf(socket);
        if (state.resumeFrom !== undefined) (this.pf2().adapter as unknown as HoldingAdapter).hold(socket.id);
        socket.join([userChannel(state.tenantId, state.userId), tenantChannel(state.tenantId)]);
        listenToAny(socket, onPf2Event);
        socket.on("disconnect", onPf2SocketDisconnect);
        scheduleTokenExpiry(state.principal.exp, socket, expirePf2Socket);
        await this.registerConnection(state);
        if (state.resumeFrom !== undefined || state.resumeRooms !== undefined) return this.resume(socket, state);
        if (socket.connected) socket.emit(PF2_EVENTS.connected, connectedEvent(state));
      },

      /**
       * Reconnect with `auth.lastEventId` (and `auth.rooms`): rejoin the rooms, replay what the user
       * missed from the log in order, then go live. Live traffic is held meanwhile and released
       * after the replay, minus what the replay already sent, so there is no gap and no duplicate.
       */
      async resume(this: GatewayThis, socket: Socket, state: ConnectionState) {
        const adapter = this.pf2().adapter as unknown as HoldingAdapter;
        let lastSent = state.resumeFrom;
        try {
          for (const roomId of state.resumeRooms ?? []) {
            try {
              await this.callAs(state, "rooms.join", { tenantId: state.tenantId, roomId, connectionId: state.connectionId, userId: state.userId, nodeId: this.broker.nodeID });
            } catch (err) {
              // A room the user may no longer join (made private since) is left out of `rooms`.
              if ((err as { type?: unknown }).type === ErrorCode.AUTHZ_FAILED) continue;
              throw err;
            }
            addRoom(state, roomId);
            socket.join(roomChannel(state.tenantId, roomId));
          }
          if (state.resumeFrom === undefined) {
            socket.emit(PF2_EVENTS.connected, { ...connectedEvent(state), rooms: [...state.rooms] });
            return;
          }
          // Rooms joined during the replay count for its later pages too.
          const viewer: Viewer = {
            userId: state.userId,
            get rooms() {
              return state.rooms;
            }
          };
          let page = await this.readEvents(state.tenantId, viewer, state.resumeFrom, 500);
          socket.emit(PF2_EVENTS.connected, { ...connectedEvent(state), rooms: [...state.rooms], recovered: !page.lost, ...(page.lost ? { lastEventId: page.next } : {}) });
          while (!page.lost && socket.connected) {
            for (const stored of page.events) {
              // Paced by the client's reading, so a long replay never trips the slow-consumer limit.
              if (!(await whenBacklogBelow(socket, Math.floor(this.config.wsMaxBufferedMessages / 2), this.config.wsPingTimeoutMs))) {
                const conn = socket.conn as unknown as EngineConnection;
                if (conn.readyState === "open") this.shedSlowConsumer(conn, outboundBacklog(conn));
                return;
              }
              const [name, payload] = pf2EventOf(stored);
              socket.emit(name, payload);
              lastSent = stored.position;
            }
            if (!page.hasMore || !page.next) break;
            page = await this.readEvents(state.tenantId, viewer, page.next, 500);
          }
        } catch (err) {
          this.logger.warn("Replay failed", { tenantId: state.tenantId, connectionId: state.connectionId, error: (err as Error).message });
          socket.emit(PF2_EVENTS.error, { ...toClientError(err).body, details: { event: "replay", retryable: true } });
          socket.disconnect(true);
        } finally {
          const held = adapter.release(socket.id);
          if (held === undefined) {
            socket.emit(PF2_EVENTS.error, { error: "Too much traffic arrived during the replay; reconnect from your last position", code: ErrorCode.INTERNAL_ERROR, details: { reason: "replay_overflow", retryable: true } });
            socket.disconnect(true);
          } else if (socket.connected) {
            for (const [name, payload] of held) {
              const position = (payload as { position?: unknown } | null)?.position;
              if (typeof position === "string" && lastSent !== undefined && (comparePositions(position, lastSent) ?? 1) <= 0) continue;
              socket.emit(name as string, payload);
            }
          }
        }
      },

      async appendEvent(this: GatewayThis, event: BusEvent): Promise<StoredEvent> {
        return (await this.appendOnce(event)).event;
      },

      async appendOnce(this: GatewayThis, event: BusEvent): Promise<AppendResult> {
        // Cut off from the other nodes, an acknowledged event could not reach their clients live.
        if (this.suspended || transporterStatus(this.broker)?.connected === false) {
          throw new RealtimeError(ErrorCode.INTERNAL_ERROR, "This node is cut off from the cluster; send it again to another node", { reason: "transporter_unavailable", retryable: true }, 503);
        }
        // No request per message on this path: the log in Redis is written directly; an event bus
        // of this process is called as a function; a remote one gets one request per batch.
        if (this.eventLog) return this.eventLog.append(event.tenantId, event, Date.now());
        const local = this.localService<LocalEventBus>("eventbus");
        if (local) return local.store(event.tenantId, event);
        return this.appendBatcher.append(event);
      },

      localService<T>(this: GatewayThis, name: string): T | undefined {
        // Looked up on first use, once every service of the node has started.
        if (!this.locals.has(name)) this.locals.set(name, this.broker.getLocalService(name) ?? null);
        return (this.locals.get(name) as T | null) ?? undefined;
      },

      /** Only `/ws/app` snapshots and raw `/ws` presence channels render presence notices; PF-2 does not. */
      wantsPresenceNotices(this: GatewayThis) {
        return this.addedPresenceSinks || this.app().sockets.size > 0 || (this.rawWs?.size ?? 0) > 0;
      },

      announcePresenceInterest(this: GatewayThis) {
        const wants = this.wantsPresenceNotices();
        if (wants === this.announcedInterest) return;
        this.announcedInterest = wants;
        // To every presence instance, ahead of this node's next presence request on the same link.
        this.broker
          .broadcast(PRESENCE_INTEREST_EVENT, { nodeId: this.broker.nodeID, wants } satisfies PresenceInterest, "presence")
          .catch((err: Error) => this.logger.warn("Presence interest not announced", { error: err.message }));
      },

      applyPresence(this: GatewayThis, ops: PresenceOp[]) {
        // Built by this gateway, so already valid: a presence service of this process is called as a function.
        const local = this.localService<LocalPresence>("presence");
        if (local) return local.apply(ops);
        return this.broker.call<Array<BatchOutcome<unknown>>, { ops: PresenceOp[] }>("presence.applyMany", { ops }, { timeout: 5000, retries: 0 });
      },

      async tailEvents(this: GatewayThis, tenantId: string, count: number): Promise<StoredEvent[]> {
        if (this.eventLog) return this.eventLog.tail(tenantId, count);
        return this.broker.call<StoredEvent[], object>("eventbus.tail", { tenantId, count }, { timeout: 10_000, retries: 0 });
      },

      async readEvents(this: GatewayThis, tenantId: string, viewer: Viewer, after: string | undefined, limit: number): Promise<ReadResult> {
        const log = this.eventLog;
        if (log) return readVisible((a, l) => log.read(tenantId, a, l), after, limit, viewer);
        return this.broker.call<ReadResult, object>(
          "eventbus.read",
          { tenantId, userId: viewer.userId, rooms: [...viewer.rooms], ...(after !== undefined ? { after } : {}), limit, ...(viewer.eventTypes ? { eventTypes: [...viewer.eventTypes] } : {}) },
          { timeout: 10_000, retries: 0 }
        );
      },

      async registerConnection(this: GatewayThis, state: ConnectionState) {
        // Before the op: a first `/ws/app` or raw socket starts the notices, its own included.
        this.announcePresenceInterest();
        const device = { connectedAt: state.connectedAt, ...(state.userAgent !== undefined ? { userAgent: state.userAgent } : {}), ...(state.ip !== undefined ? { ip: state.ip } : {}) };
        try {
          // Batched per event-loop turn with every other connect and disconnect of this node
          // (one request per batch, applied in order); `connected` still means registered.
          await this.presenceOps.submit({ op: "connect", tenantId: state.tenantId, userId: state.userId, connectionId: state.connectionId, nodeId: this.broker.nodeID, device });
        } catch (err) {
          // Class A: presence is optional; the connection works without it and is registered again
          // by the next heartbeat round.
          this.logger.warn("Presence registration failed", { tenantId: state.tenantId, connectionId: state.connectionId, error: (err as Error).message });
        }
      },

      async unregisterConnection(this: GatewayThis, state: Pick<ConnectionState, "tenantId" | "userId" | "connectionId">) {
        this.announcePresenceInterest();
        try {
          await this.presenceOps.submit({ op: "disconnect", tenantId: state.tenantId, userId: state.userId, connectionId: state.connectionId });
        } catch (err) {
          // The presence TTL sweep takes a connection whose disconnect was lost offline.
          this.logger.warn("Presence disconnect failed", { connectionId: state.connectionId, error: (err as Error).message });
        }
      },

      async onPf2Disconnect(this: GatewayThis, socket: Socket) {
        const state = stateOf(socket);
        cancelTokenExpiry(state.principal.exp, socket);
        const rooms = [...state.rooms];
        state.rooms = NO_ROOMS;
        await Promise.all([
          this.rateLimits.reset(state.tenantId, quotaKey(state, "message"), MINUTE_MS).catch(() => undefined),
          this.rateLimits.reset(state.tenantId, quotaKey(state, "control"), MINUTE_MS).catch(() => undefined)
        ]);
        // Presence first: the offline push goes to the rooms the user is still recorded in.
        await this.unregisterConnection(state);
        if (rooms.length > 0) {
          await this.broker
            .call("rooms.leaveAll", { tenantId: state.tenantId, connectionId: state.connectionId }, { timeout: 5000, retries: 0 })
            .catch((err: Error) => this.logger.warn("Room cleanup failed; the node cleanup will retry", { connectionId: state.connectionId, error: err.message }));
        }
      },

      /** Refreshes presence of every local connection; re-registers those the store lost. */
      async heartbeatConnections(this: GatewayThis) {
        const states = [...[...this.pf2().sockets.values(), ...this.app().sockets.values()].map(stateOf), ...this.rawWs.states()];
        for (let start = 0; start < states.length; start += HEARTBEAT_CHUNK) {
          const chunk = states.slice(start, start + HEARTBEAT_CHUNK);
          const refs = chunk.map(s => ({ tenantId: s.tenantId, userId: s.userId, connectionId: s.connectionId }));
          const { unknown } = await this.broker.call<{ unknown: typeof refs }, { connections: typeof refs; nodeId: string; wantsNotices: boolean }>(
            "presence.heartbeat",
            { connections: refs, nodeId: this.broker.nodeID, wantsNotices: this.wantsPresenceNotices() },
            { timeout: 10_000, retries: 0 }
          );
          const lost = new Set(unknown.map(ref => ref.connectionId));
          for (const state of chunk) {
            if (!lost.has(state.connectionId)) continue;
            await this.registerConnection(state);
            for (const roomId of state.rooms) {
              await this.broker.call("rooms.join", { tenantId: state.tenantId, roomId, connectionId: state.connectionId, userId: state.userId, nodeId: this.broker.nodeID });
            }
          }
        }
      },

      deliver(this: GatewayThis, delivery: Delivery, options?: { confirm?: boolean }) {
        // This node's sockets directly; other gateways through one event packet each. A Moleculer
        // broadcast would also route the local share through a context and dispatch per message.
        if (!((this.draining || this.suspended) && isLogged(delivery))) emitLocally(this.io.of(delivery.namespace ?? "/"), delivery);
        // One node: done, without a promise per message.
        if (!this.broker.transit) return undefined;
        return this.deliverRemote(delivery, options);
      },

      async deliverRemote(this: GatewayThis, delivery: Delivery, options?: { confirm?: boolean }) {
        const remoteGateways = await broadcastToRemote(this.broker, DELIVERY_EVENT, delivery, "gateway");
        if (options?.confirm && remoteGateways > 0) {
          // A logged event is acknowledged only once the transporter holds its broadcast: a node
          // dying right after the ack must not take the only live copy with it (its recipients on
          // other nodes stay connected and would never replay it). One flush per event-loop turn
          // covers every message of that turn.
          try {
            await flushTransporterSoon(this.broker, DELIVERY_CONFIRM_TIMEOUT_MS);
          } catch (err) {
            const eventId = (delivery.payload as { messageId?: string; eventId?: string } | null);
            throw new RealtimeError(ErrorCode.INTERNAL_ERROR, "Stored, but its live delivery could not be confirmed; send it again with the same messageId", {
              reason: "delivery_unconfirmed",
              retryable: true,
              messageId: eventId?.messageId ?? eventId?.eventId,
              cause: (err as Error).message
            }, 503);
          }
        }
      },

      consumeQuota(this: GatewayThis, state: ConnectionState, bucket: QuotaBucket): RateLimitResult | Promise<RateLimitResult> {
        const limit = this.config.wsMessageRateLimit;
        const key = quotaKey(state, bucket);
        // The memory store answers at once: no promise per socket message on the embedded default.
        if (this.rateLimits.consumeNow) return this.quotaCounted(state, bucket, this.rateLimits.consumeNow(state.tenantId, key, limit, MINUTE_MS, Date.now()));
        return this.consumeRate(state.tenantId, key, limit, MINUTE_MS).then(result => this.quotaCounted(state, bucket, result));
      },

      quotaCounted(this: GatewayThis, state: ConnectionState, bucket: QuotaBucket, result: RateLimitResult): RateLimitResult {
        if (!result.allowed) reportRateLimited(this.broker, state.principal, bucket, { via: "socket.io", max: this.config.wsMessageRateLimit, windowMs: MINUTE_MS, connectionId: state.connectionId });
        return result;
      },

      async consumeRate(this: GatewayThis, tenantId: string, key: string, limit: number, windowMs: number): Promise<RateLimitResult> {
        const now = Date.now();
        try {
          return await this.rateLimits.consume(tenantId, key, limit, windowMs, now);
        } catch (err) {
          this.logger.warn("Rate-limit store unreachable; counting on this node", { error: (err as Error).message });
          return this.fallbackRateLimits.consume(tenantId, key, limit, windowMs, now);
        }
      },

      reportClassD(this: GatewayThis, state: ConnectionState, target: string, type: string) {
        reportClassDRefused(this.broker, state.principal, "socket.io", target, { event: "message", type: type.slice(0, 128), connectionId: state.connectionId });
      },

      async callAs<T>(this: GatewayThis, state: ConnectionState, action: string, params: Record<string, unknown>): Promise<T> {
        return this.broker.call<T, Record<string, unknown>>(action, params, { meta: metaFor(state), timeout: 5000, retries: 0 });
      },

      reportTenantViolation(this: GatewayThis, state: ConnectionState, requestedTenantId: unknown, event: string) {
        reportTenantViolation(this.broker, this.logger, {
          tenantId: state.tenantId,
          userId: state.userId,
          role: state.principal.role,
          requestedTenantId: String(requestedTenantId),
          via: "socket.io",
          action: event,
          connectionId: state.connectionId
        });
      },

      // --- Resilience (issue 6) ---------------------------------------------------------------

      /** A connection whose client stopped reading: tell it (queued behind its backlog) and close it. */
      shedSlowConsumer(this: GatewayThis, conn: EngineConnection, backlog: OutboundBacklog) {
        const limits = { maxMessages: this.config.wsMaxBufferedMessages, maxBytes: this.config.wsMaxBufferedBytes };
        const sockets = [this.pf2(), this.io.of(feed.namespace)].flatMap(nsp => [...nsp.sockets.values()].filter(socket => (socket.conn as unknown) === conn));
        closeSlowConsumer(conn, () => {
          for (const socket of sockets) {
            const state = socket.data as Partial<ConnectionState>;
            this.logger.warn("Slow consumer disconnected", { tenantId: state.tenantId, connectionId: socket.id, ...backlog });
            emitNotice(socket, "Too many messages were waiting for this connection; reconnect and resume from your last position", {
              reason: SLOW_CONSUMER,
              retryable: true,
              reconnect: true,
              buffered: backlog,
              limits
            });
          }
        });
      },

      resyncClients(this: GatewayThis) {
        let count = 0;
        for (const nsp of [this.pf2(), this.io.of(feed.namespace)]) {
          for (const socket of nsp.sockets.values()) {
            count += 1;
            emitNotice(socket, "This node lost the cluster for a while and may have missed traffic; reconnect and resume from your last position", {
              ...shutdownDetails(socket),
              reason: RESYNC
            });
            (socket.conn as unknown as EngineConnection).close();
          }
        }
        this.logger.warn("Transporter reconnected: asked local clients to resume", { clients: count });
      },

      async recoverAfterRedis(this: GatewayThis) {
        // The services' own Redis clients reconnect within about a second too: retry briefly.
        for (const waitMs of [0, 500, 1000, 1500]) {
          await new Promise(resolve => setTimeout(resolve, waitMs));
          try {
            await this.heartbeatConnections();
            return;
          } catch (err) {
            this.logger.debug("Presence re-registration after Redis returned failed; retrying", { error: (err as Error).message });
          }
        }
      },

      async healthReport(this: GatewayThis) {
        const now = new Date().toISOString();
        const active = this.io ? this.connectionCount() : 0;
        const services: Record<string, Record<string, unknown>> = {
          websocket: {
            status: this.accepting ? "healthy" : "unhealthy",
            activeConnections: active,
            maxConnections: this.config.wsMaxConnections,
            nodeID: this.broker.nodeID,
            lastCheck: now
          }
        };
        // Every dependency that is down is named in `degradedBy` (issue 6: say which).
        const degradedBy: string[] = [];
        const transporter = transporterStatus(this.broker);
        if (transporter) {
          services.transporter = {
            status: transporter.connected ? "healthy" : "unhealthy",
            connected: transporter.connected,
            nodes: this.broker.registry.getNodeList({ onlyAvailable: true, withServices: false }).length,
            reconnects: transporter.reconnects,
            lastCheck: now
          };
          if (!transporter.connected) degradedBy.push("transporter");
        }
        const [redis, eventbus] = await Promise.all([
          this.redis ? pingLatencyMs(this.redis).then(latency => ({ latency }), (err: Error) => ({ error: err.message })) : undefined,
          this.broker.call<Record<string, unknown>, object>("eventbus.stats", {}, { timeout: 1000, retries: 0 }).catch(() => undefined)
        ]);
        if (redis) {
          if ("latency" in redis) services.redis = { status: "healthy", latency: Math.round(redis.latency * 100) / 100, lastCheck: now };
          else {
            services.redis = { status: "unhealthy", error: redis.error, lastCheck: now };
            degradedBy.push("redis");
          }
        }
        services.eventbus = eventbus ? { ...eventbus, lastCheck: now } : { status: "unhealthy", lastCheck: now };
        if (eventbus?.status !== "healthy") degradedBy.push("eventbus");
        // Reported when the cluster runs the reconciliation service (seed 000 `services.reconciliation`).
        if (this.broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }).some((s: { name: string }) => s.name === "reconciliation")) {
          const stats = await this.broker.call<Record<string, unknown>, object>("reconciliation.stats", {}, { timeout: 1000, retries: 0 }).catch(() => undefined);
          services.reconciliation = stats ? { ...stats, lastCheck: now } : { status: "unhealthy", lastCheck: now };
          if (stats?.status !== "healthy") degradedBy.push("reconciliation");
        }
        // The audit trail, when the cluster runs it: down, admin actions and super-admin reads are refused.
        if (this.broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }).some((s: { name: string }) => s.name === "audit")) {
          const stats = await this.broker.call<Record<string, unknown>, object>("audit.stats", {}, { timeout: 1000, retries: 0 }).catch(() => undefined);
          services.audit = stats ? { ...stats, lastCheck: now } : { status: "unhealthy", lastCheck: now };
          if (stats?.status !== "healthy") degradedBy.push("audit");
        }
        for (const name of ["presence", "rooms"]) {
          const available = this.broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }).some((s: { name: string }) => s.name === name);
          services[name] = { status: available ? "healthy" : "unhealthy", lastCheck: now };
          if (!available) degradedBy.push(name);
        }
        const status = !this.accepting ? "unhealthy" : degradedBy.length > 0 ? "degraded" : "healthy";
        return { status, body: { status, ...(degradedBy.length > 0 ? { degradedBy } : {}), services, timestamp: now } };
      }
    },

    created(this: GatewayThis) {
      this.config = config;
      this.nodeID = this.broker.nodeID;
      this.verifier = createTokenVerifier(config);
      this.rateLimits = createRateLimitStore(config);
      this.fallbackRateLimits = new MemoryRateLimitStore();
      if (config.redisUrl) {
        this.redis = acquireRedis(config.redisUrl);
        this.eventLog = createEventLog(config);
      }
      this.accepting = true;
      this.rawWs = new RawWsAdapter(this);
      this.rawPolling = new Seed002Polling(this);
      this.pushSinks = [pf2Sink(() => this.pf2()), appSink(() => this.app()), this.rawWs.sink()];
      this.locals = new Map();
      this.addedPresenceSinks = false;
      this.presenceOps = new TurnBatcher<PresenceOp, unknown>(
        ops => this.applyPresence(ops),
        { maxBatch: PRESENCE_BATCH_MAX, maxInFlight: 1 }
      );
      this.appendBatcher = new AppendBatcher(events =>
        this.broker.call<AppendOutcome[], { events: BusEvent[] }>("eventbus.appendMany", { events }, { timeout: 5000, retries: 0 })
      );
      this.draining = false;
      this.suspended = false;
      this.joinedAt = Number.POSITIVE_INFINITY;
      this.inFlight = new InFlight();
      // broker.stop first tells the cluster this node is gone (the other gateways stop relaying to
      // it) and only later stops the services: begin the drain at that first moment.
      // The drain runs alongside the rest of the stop (Moleculer first waits for tracked calls).
      const stop = this.broker.stop.bind(this.broker);
      this.broker.stop = () => {
        this.accepting = false;
        this.draining = true;
        if (this.io && !this.drained) {
          this.drained = drainGateway(this.io, this.inFlight, config.shutdownTimeoutMs, this.logger).catch((err: Error) => {
            this.logger.warn("Drain failed", { error: err.message });
          });
        }
        return stop();
      };
    },

    async started(this: GatewayThis) {
      // Health is truthful from the first request; a Redis that is down only delays start by 2 s.
      if (this.redis) await whenReady(this.redis, 2000);
      this.io.of(feed.namespace).on("connection", (socket: Socket) => {
        onFeedConnection(this, feed, socket).catch((err: Error) => this.logger.error("Feed connection set-up failed", { connectionId: socket.id, error: err.message }));
      });
      this.app().on("connection", (socket: Socket) => {
        onAppConnection(this, socket).catch((err: Error) => this.logger.error("/ws/app connection set-up failed", { connectionId: socket.id, error: err.message }));
      });
      this.pf2().on("connection", (socket: Socket) => {
        this.onPf2Connection(socket).catch((err: Error) => this.logger.error("Connection set-up failed", { connectionId: socket.id, error: err.message }));
      });
      // Three heartbeats per TTL, so one lost round never expires a live connection.
      const everyMs = Math.max(250, Math.floor((config.presenceTtlSeconds * 1000) / 3));
      this.heartbeatTimer = setInterval(() => {
        this.heartbeatConnections().catch((err: Error) => this.logger.warn("Presence heartbeat failed", { error: err.message }));
      }, everyMs);
      this.heartbeatTimer.unref();
      // No socket yet that renders presence notices: tell the presence instances not to send them.
      this.announcePresenceInterest();
      this.rawWs.attach(this.server);
      // --- Resilience (issue 6) ---
      const joinGraceMs = this.broker.transit ? clusterJoinGraceMs(this.broker) : 0;
      this.joinedAt = Date.now() + joinGraceMs;
      watchTransporter(this.broker);
      // Cut off from the cluster, the node stops taking and emitting logged traffic. After a
      // reconnect the other nodes learn again that it exists; once they have, the local clients
      // resume (what they missed meanwhile is replayed from their cursors) and traffic flows again.
      let rejoin: NodeJS.Timeout | undefined;
      this.stopWatchingTransporter = onTransporterChange(this.broker, {
        disconnect: () => {
          clearTimeout(rejoin);
          this.suspended = true;
        },
        reconnect: () => {
          clearTimeout(rejoin);
          rejoin = setTimeout(() => {
            this.resyncClients();
            this.suspended = false;
          }, joinGraceMs);
          rejoin.unref();
        }
      });
      const limits = { maxMessages: config.wsMaxBufferedMessages, maxBytes: config.wsMaxBufferedBytes };
      this.io.engine.on("connection", outboundGuard(limits, (conn, backlog) => this.shedSlowConsumer(conn, backlog)));
      this.io.engine.use(handshakeRequestRelease.middleware);
      this.io.engine.on("connection", handshakeRequestRelease.onConnection);
      let redisDown = false;
      const down = () => (redisDown = true);
      this.redis?.on("error", down);
      this.redis?.on("close", down);
      this.redis?.on("ready", () => {
        if (!redisDown) return;
        redisDown = false;
        this.logger.info("Redis is back; re-registering presence and rooms of local connections");
        this.recoverAfterRedis().catch(() => undefined);
      });
    },

    async stopped(this: GatewayThis) {
      this.accepting = false;
      this.stopWatchingTransporter?.();
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      // Graceful shutdown (protocols/shutdown.ts): tell clients, finish in-flight events, close.
      if (this.io) await (this.drained ?? drainGateway(this.io, this.inFlight, config.shutdownTimeoutMs, this.logger));
      await this.rawWs.close();
      await this.rateLimits.close();
      await this.fallbackRateLimits.close();
      await this.eventLog?.close();
      if (config.redisUrl) await releaseRedis(config.redisUrl);
    }
  });
}

/** One heartbeat and a margin: by then every node has this one's INFO (a heartbeat from an unknown node triggers discovery). */
function clusterJoinGraceMs(broker: Service["broker"]): number {
  const interval = Number((broker.options as { heartbeatInterval?: number }).heartbeatInterval ?? 5);
  return Math.max(0, interval) * 1000 + 500;
}

/** Every client event of a PF-2 socket; Socket.IO calls it with the socket as `this` (one function for all sockets). */
function onPf2Event(this: Socket, event: string, ...args: unknown[]) {
  if (dispatchPf2(this, event, args)) return;
  const body = { error: `Unknown event '${String(event).slice(0, 64)}'`, code: ErrorCode.INVALID_REQUEST, details: { event: String(event).slice(0, 64) } };
  this.emit(PF2_EVENTS.error, body);
  const ack = args[args.length - 1];
  if (typeof ack === "function") (ack as (b: unknown) => void)(body);
}

/** A PF-2 socket's clean-up; Socket.IO calls it with the socket as `this` (one function for all sockets, no closure each). */
function onPf2SocketDisconnect(this: Socket & { $service: GatewayThis }) {
  const gateway = this.$service;
  gateway.inFlight.track(gateway.onPf2Disconnect(this)).catch((err: Error) => gateway.logger.warn("Disconnect cleanup failed", { connectionId: this.id, error: err.message }));
}

/** Closes the connection when its token expires: a socket is never more trusted than its token. */
function expirePf2Socket(socket: Socket) {
  socket.emit(PF2_EVENTS.error, { error: "Token expired", code: ErrorCode.AUTH_FAILED, details: { reason: "expired" } });
  socket.disconnect(true);
}

export default () => createGatewayService(loadConfig());
