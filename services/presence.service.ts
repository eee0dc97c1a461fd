import type { Context, Service, ServiceSchema } from "moleculer";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { DELIVERY_EVENT, type Delivery } from "../lib/delivery";
import type { CallerMeta } from "../lib/context";
import { ErrorCode, RealtimeError, invalidRequest, toClientError } from "../lib/errors";
import { PRESENCE_INTEREST_EVENT, PRESENCE_NOTICE_EVENT, type PresenceInterest, type PresenceNotice, type PresenceNotices } from "../lib/push";
import { broadcastToNodes, nodesListening } from "../lib/remote-broadcast";
import { PRESENCE_BATCH_MAX, type PresenceOp } from "../lib/presence-ops";
import type { BatchOutcome } from "../lib/turn-batcher";
import { assertOwnTenantItems, TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createPresenceStore, type PresenceStore } from "../stores/presence";
import type { LocalRooms } from "./rooms.service";
import type { ConnectionRef, DeviceInfo, Presence, PresenceChange, PresenceStatus } from "../stores/presence/presence-store";

/**
 * Who is online (seed 000 `presence_update`, class A). Gateways report connections and
 * heartbeats; this service keeps them in the presence store, expires silent ones, cleans up after
 * nodes that left, and pushes each visible change as a `presence` event to the rooms the user is in.
 */
interface PresenceThis extends Service {
  store: PresenceStore;
  /** Gateways that said whether they render presence notices; the others get them all. */
  noticeInterest: Map<string, boolean>;
  sweeper?: NodeJS.Timeout;
  apply(ops: PresenceOp[]): Promise<Array<BatchOutcome<Presence>>>;
  publishChanges(changes: PresenceChange[]): Promise<void>;
  changedBy(changes: PresenceChange[], reason: "expired" | "node_left"): Promise<void>;
  notify(events: NoticeOf[]): void;
  sendNotices(events: NoticeOf[]): Promise<void>;
  roomsOfUsers(tenantId: string, userIds: string[]): Promise<Map<string, string[]>>;
}

/** A presence change to tell the gateways about (the notice is completed with the user's devices). */
type NoticeOf = Omit<PresenceNotice, "devices">;

const deviceSchema = {
  type: "object",
  optional: true,
  strict: "remove",
  props: {
    connectedAt: { type: "number", integer: true, min: 0, optional: true },
    userAgent: { type: "string", max: 512, optional: true },
    ip: { type: "string", max: 64, optional: true }
  }
} as const;

const identifier = { type: "string", min: 1, max: 128 } as const;

export const PRESENCE_EVENT = "presence";

/** The answer of a single op: its presence, or its error. */
function settled([outcome]: Array<BatchOutcome<Presence>>): Presence {
  if (outcome && "ok" in outcome) return outcome.ok;
  throw new RealtimeError((outcome?.error.code as ErrorCode | undefined) ?? ErrorCode.INTERNAL_ERROR, outcome?.error.message ?? "Presence not updated");
}

function groupByTenant(changes: PresenceChange[]): Map<string, Presence[]> {
  const byTenant = new Map<string, Presence[]>();
  for (const { tenantId, presence } of changes) {
    const list = byTenant.get(tenantId);
    if (list) list.push(presence);
    else byTenant.set(tenantId, [presence]);
  }
  return byTenant;
}

/** The payload of the client-facing `presence` event. */
export function presenceEventOf(presence: Presence) {
  const { userId, status, metadata, lastSeen } = presence;
  return metadata === undefined ? { userId, status, lastSeen } : { userId, status, metadata, lastSeen };
}

export function createPresenceService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, PresenceThis>({
    name: "presence",
    mixins: [TenantScopeMixin()],

    actions: {
      /** A gateway accepted a connection; `device` is listed in per-device snapshots (seed 003). */
      connect: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier, connectionId: identifier, nodeId: identifier, device: deviceSchema },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; connectionId: string; nodeId: string; device?: DeviceInfo }>) {
          return settled(await this.apply([{ op: "connect", ...ctx.params }]));
        }
      },

      /** A connection closed. */
      disconnect: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier, connectionId: identifier },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; connectionId: string }>) {
          return settled(await this.apply([{ op: "disconnect", ...ctx.params }]));
        }
      },

      /**
       * A gateway's connects and disconnects of one event-loop turn (lib/presence-ops.ts), applied
       * in order, answered per op; their notices go to the gateways as one broadcast.
       */
      applyMany: {
        visibility: "public",
        params: {
          ops: {
            type: "array",
            min: 1,
            max: PRESENCE_BATCH_MAX,
            items: {
              type: "object",
              strict: "remove",
              props: {
                op: { type: "enum", values: ["connect", "disconnect"] },
                tenantId: identifier,
                userId: identifier,
                connectionId: identifier,
                nodeId: { ...identifier, optional: true },
                device: deviceSchema
              }
            }
          }
        },
        async handler(this: PresenceThis, ctx: Context<{ ops: PresenceOp[] }, CallerMeta>) {
          assertOwnTenantItems(this.broker, this.logger, ctx.meta.auth, ctx.params.ops, "presence.applyMany");
          const missingNode = ctx.params.ops.findIndex(op => op.op === "connect" && op.nodeId === undefined);
          if (missingNode >= 0) throw invalidRequest("A connect op needs the gateway's nodeId", { index: missingNode });
          // The gateway needs to know only that each op was applied, not the presence it led to.
          return (await this.apply(ctx.params.ops)).map(outcome => ("ok" in outcome ? { ok: true } : outcome));
        }
      },

      /** A user chose a status (`presence_update`). */
      update: {
        params: {
          tenantId: identifier,
          userId: identifier,
          status: { type: "enum", values: ["online", "away", "offline"] },
          metadata: { type: "object", optional: true }
        },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; status: PresenceStatus; metadata?: Record<string, unknown> }>) {
          const { tenantId, userId, status, metadata } = ctx.params;
          const { changed, presence } = await this.store.setStatus(tenantId, userId, status, metadata, Date.now());
          this.notify([{ tenantId, presence, reason: "status", changed }]);
          if (changed) await this.publishChanges([{ tenantId, presence }]);
          return presence;
        }
      },

      /** Gateways refresh their live connections; the answer lists the ones to register again. */
      heartbeat: {
        visibility: "public",
        params: {
          connections: {
            type: "array",
            max: 10000,
            items: { type: "object", strict: "remove", props: { tenantId: identifier, userId: identifier, connectionId: identifier } }
          },
          nodeId: { ...identifier, optional: true },
          wantsNotices: { type: "boolean", optional: true }
        },
        async handler(this: PresenceThis, ctx: Context<{ connections: ConnectionRef[]; nodeId?: string; wantsNotices?: boolean }>) {
          const { nodeId, wantsNotices } = ctx.params;
          if (nodeId !== undefined && wantsNotices !== undefined) this.noticeInterest.set(nodeId, wantsNotices);
          return { unknown: await this.store.heartbeat(ctx.params.connections, Date.now()) };
        }
      },

      /**
       * A client's own heartbeat (e.g. seed 003 `presence:heartbeat`): refreshes one connection and
       * tells the gateways, so protocols that show per-device presence can push a fresh snapshot.
       */
      touch: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier, connectionId: identifier },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; connectionId: string }>) {
          const { tenantId, userId, connectionId } = ctx.params;
          const unknown = await this.store.heartbeat([{ tenantId, userId, connectionId }], Date.now());
          const presence = await this.store.get(tenantId, userId);
          this.notify([{ tenantId, presence, reason: "heartbeat", changed: false }]);
          return { known: unknown.length === 0, presence: presenceEventOf(presence) };
        }
      },

      /** Presence of one user (`GET /api/presence/:userId`). */
      get: {
        params: { tenantId: identifier, userId: identifier },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string }>) {
          return presenceEventOf(await this.store.get(ctx.params.tenantId, ctx.params.userId));
        }
      },

      /** Presence of up to 500 users of one tenant. */
      getMany: {
        params: { tenantId: identifier, userIds: { type: "array", items: identifier, max: 500 } },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userIds: string[] }>) {
          return (await this.store.getMany(ctx.params.tenantId, ctx.params.userIds)).map(presenceEventOf);
        }
      }
    },

    events: {
      [PRESENCE_INTEREST_EVENT]: {
        params: { nodeId: identifier, wants: "boolean" },
        handler(this: PresenceThis, ctx: Context<PresenceInterest>) {
          this.noticeInterest.set(ctx.params.nodeId, ctx.params.wants);
        }
      },

      /** A node left (crash, partition or shutdown): its connections are gone with it. */
      async "$node.disconnected"(this: PresenceThis, ctx: Context<{ node: { id: string } }>) {
        const nodeId = ctx.params.node.id;
        this.noticeInterest.delete(nodeId);
        const changes = await this.store.removeNode(nodeId, Date.now());
        await this.changedBy(changes, "node_left");
        // Presence pushes go to the user's rooms, so memberships are dropped only afterwards.
        await this.broker.call("rooms.removeNode", { nodeId }).catch((err: Error) => {
          this.logger.warn("Could not clean up room memberships of a departed node", { nodeId, error: err.message });
        });
        if (changes.length > 0) this.logger.info("Removed connections of a departed node", { nodeId, usersOffline: changes.length });
      }
    },

    methods: {
      /** Applies connects and disconnects in order; tells the gateways, then the users' rooms. */
      async apply(this: PresenceThis, ops: PresenceOp[]) {
        const outcomes: Array<BatchOutcome<Presence>> = [];
        const notices: NoticeOf[] = [];
        const changes: PresenceChange[] = [];
        for (const op of ops) {
          try {
            const now = Date.now();
            const { changed, presence } =
              op.op === "connect"
                ? await this.store.connect(op.tenantId, op.userId, op.connectionId, op.nodeId as string, now, op.device)
                : await this.store.disconnect(op.tenantId, op.userId, op.connectionId, now);
            notices.push({ tenantId: op.tenantId, presence, reason: op.op, changed });
            if (changed) changes.push({ tenantId: op.tenantId, presence });
            outcomes.push({ ok: presence });
          } catch (err) {
            const { body } = toClientError(err);
            outcomes.push({ error: { message: body.error, code: body.code } });
          }
        }
        this.notify(notices);
        await this.publishChanges(changes);
        return outcomes;
      },

      /** Tells every gateway (each protocol renders it its own way); best effort, like all of class A. */
      notify(this: PresenceThis, events: NoticeOf[]) {
        if (events.length === 0) return;
        this.sendNotices(events).catch((err: Error) => this.logger.warn("Presence notices not sent", { count: events.length, error: err.message }));
      },

      /** Each notice carries the user's live devices on every node, for per-device snapshots. */
      async sendNotices(this: PresenceThis, events: NoticeOf[]) {
        // Nobody renders them (PF-2-only gateways): no devices to read, nothing to send.
        const interest = this.noticeInterest;
        const targets = new Set(nodesListening(this.broker, PRESENCE_NOTICE_EVENT, "gateway").filter(nodeID => interest.get(nodeID) !== false));
        if (targets.size === 0) return;
        const notices: PresenceNotice[] = [];
        for (const event of events) {
          const notice: PresenceNotice = { ...event, devices: [] };
          if (event.presence.connections > 0) {
            try {
              notice.devices = await this.store.connections(event.tenantId, event.presence.userId);
            } catch (err) {
              delete notice.devices;
              this.logger.warn("Presence devices not read; the notice goes without them", { tenantId: event.tenantId, error: (err as Error).message });
            }
          }
          notices.push(notice);
        }
        await broadcastToNodes(this.broker, PRESENCE_NOTICE_EVENT, { notices } satisfies PresenceNotices, "gateway", nodeID => targets.has(nodeID));
      },

      /** Pushes each change as a `presence` event to the rooms of the user (one rooms request per tenant). */
      /** Changes the gateways did not report (expiry, a node gone): they are told, then the rooms. */
      async changedBy(this: PresenceThis, changes: PresenceChange[], reason: "expired" | "node_left") {
        this.notify(changes.map(({ tenantId, presence }) => ({ tenantId, presence, reason, changed: true })));
        await this.publishChanges(changes);
      },

      /**
       * A rooms service of this process is called as a function (the userIds come from ops this
       * service already validated); another node's through `rooms.ofUsers`. Looked up per call, so
       * it is found whatever order the services of the node started in.
       */
      roomsOfUsers(this: PresenceThis, tenantId: string, userIds: string[]) {
        const local = this.broker.getLocalService("rooms") as unknown as LocalRooms | undefined;
        if (local) return local.roomsOfUsers(tenantId, userIds);
        return this.broker
          .call<Record<string, string[]>, { tenantId: string; userIds: string[] }>("rooms.ofUsers", { tenantId, userIds })
          .then(rooms => new Map(Object.entries(rooms)));
      },

      async publishChanges(this: PresenceThis, changes: PresenceChange[]) {
        for (const [tenantId, presences] of groupByTenant(changes)) {
          try {
            for (let start = 0; start < presences.length; start += PRESENCE_BATCH_MAX) {
              const chunk = presences.slice(start, start + PRESENCE_BATCH_MAX);
              const rooms = await this.roomsOfUsers(tenantId, chunk.map(p => p.userId));
              for (const presence of chunk) {
                const roomIds = rooms.get(presence.userId) ?? [];
                if (roomIds.length === 0) continue;
                const delivery: Delivery = { tenantId, target: { roomIds }, event: PRESENCE_EVENT, payload: presenceEventOf(presence), volatile: true };
                await this.broker.broadcast(DELIVERY_EVENT, delivery, "gateway");
              }
            }
          } catch (err) {
            // Class A: a lost presence push degrades the experience, never correctness.
            this.logger.warn("Presence changes not pushed", { tenantId, users: presences.length, error: (err as Error).message });
          }
        }
      }
    },

    created(this: PresenceThis) {
      this.noticeInterest = new Map();
      this.store = createPresenceStore(config);
    },

    started(this: PresenceThis) {
      const ttlMs = config.presenceTtlSeconds * 1000;
      this.sweeper = setInterval(() => {
        const now = Date.now();
        this.store
          .expire(now - ttlMs, now)
          .then(changes => this.changedBy(changes, "expired"))
          .catch((err: Error) => this.logger.warn("Presence sweep failed", { error: err.message }));
      }, Math.max(500, ttlMs / 2));
      this.sweeper.unref();
    },

    async stopped(this: PresenceThis) {
      if (this.sweeper) clearInterval(this.sweeper);
      await this.store.close();
    }
  });
}

export default () => createPresenceService(loadConfig());
