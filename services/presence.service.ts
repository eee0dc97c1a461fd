import type { Context, Service, ServiceSchema } from "moleculer";
import { asServiceSchema } from "../types/service-schema";
import { loadConfig, type Config } from "../lib/config";
import { DELIVERY_EVENT, type Delivery } from "../lib/delivery";
import { PRESENCE_NOTICE_EVENT, type PresenceNotice } from "../lib/push";
import { TenantScopeMixin } from "../mixins/tenant-scope.mixin";
import { createPresenceStore, type PresenceStore } from "../stores/presence";
import type { ConnectionRef, DeviceInfo, Presence, PresenceChange, PresenceStatus } from "../stores/presence/presence-store";

/**
 * Who is online (seed 000 `presence_update`, class A). Gateways report connections and
 * heartbeats; this service keeps them in the presence store, expires silent ones, cleans up after
 * nodes that left, and pushes each visible change as a `presence` event to the rooms the user is in.
 */
interface PresenceThis extends Service {
  store: PresenceStore;
  sweeper?: NodeJS.Timeout;
  publishChanges(changes: PresenceChange[], reason: PresenceNotice["reason"]): Promise<void>;
  notify(tenantId: string, presence: Presence, reason: PresenceNotice["reason"], changed: boolean): void;
  sendNotice(tenantId: string, presence: Presence, reason: PresenceNotice["reason"], changed: boolean): Promise<void>;
}

const identifier = { type: "string", min: 1, max: 128 } as const;

export const PRESENCE_EVENT = "presence";

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
        params: {
          tenantId: identifier,
          userId: identifier,
          connectionId: identifier,
          nodeId: identifier,
          device: {
            type: "object",
            optional: true,
            strict: "remove",
            props: {
              connectedAt: { type: "number", integer: true, min: 0, optional: true },
              userAgent: { type: "string", max: 512, optional: true },
              ip: { type: "string", max: 64, optional: true }
            }
          }
        },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; connectionId: string; nodeId: string; device?: DeviceInfo }>) {
          const { tenantId, userId, connectionId, nodeId, device } = ctx.params;
          const { changed, presence } = await this.store.connect(tenantId, userId, connectionId, nodeId, Date.now(), device);
          this.notify(tenantId, presence, "connect", changed);
          if (changed) await this.publishChanges([{ tenantId, presence }], "connect");
          return presence;
        }
      },

      /** A connection closed. */
      disconnect: {
        visibility: "public",
        params: { tenantId: identifier, userId: identifier, connectionId: identifier },
        async handler(this: PresenceThis, ctx: Context<{ tenantId: string; userId: string; connectionId: string }>) {
          const { tenantId, userId, connectionId } = ctx.params;
          const { changed, presence } = await this.store.disconnect(tenantId, userId, connectionId, Date.now());
          this.notify(tenantId, presence, "disconnect", changed);
          if (changed) await this.publishChanges([{ tenantId, presence }], "disconnect");
          return presence;
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
          this.notify(tenantId, presence, "status", changed);
          if (changed) await this.publishChanges([{ tenantId, presence }], "status");
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
          }
        },
        async handler(this: PresenceThis, ctx: Context<{ connections: ConnectionRef[] }>) {
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
          this.notify(tenantId, presence, "heartbeat", false);
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
      /** A node left (crash, partition or shutdown): its connections are gone with it. */
      async "$node.disconnected"(this: PresenceThis, ctx: Context<{ node: { id: string } }>) {
        const nodeId = ctx.params.node.id;
        const changes = await this.store.removeNode(nodeId, Date.now());
        await this.publishChanges(changes, "node_left");
        // Presence pushes go to the user's rooms, so memberships are dropped only afterwards.
        await this.broker.call("rooms.removeNode", { nodeId }).catch((err: Error) => {
          this.logger.warn("Could not clean up room memberships of a departed node", { nodeId, error: err.message });
        });
        if (changes.length > 0) this.logger.info("Removed connections of a departed node", { nodeId, usersOffline: changes.length });
      }
    },

    methods: {
      /** Tells every gateway (each protocol renders it its own way); best effort, like all of class A. */
      notify(this: PresenceThis, tenantId: string, presence: Presence, reason: PresenceNotice["reason"], changed: boolean) {
        this.sendNotice(tenantId, presence, reason, changed).catch((err: Error) => this.logger.warn("Presence notice not sent", { tenantId, error: err.message }));
      },

      /** The notice carries the user's live devices on every node, for per-device snapshots. */
      async sendNotice(this: PresenceThis, tenantId: string, presence: Presence, reason: PresenceNotice["reason"], changed: boolean) {
        const notice: PresenceNotice = { tenantId, presence, reason, changed };
        if (presence.connections > 0) {
          try {
            notice.devices = await this.store.connections(tenantId, presence.userId);
          } catch (err) {
            this.logger.warn("Presence devices not read; the notice goes without them", { tenantId, error: (err as Error).message });
          }
        } else {
          notice.devices = [];
        }
        await this.broker.broadcast(PRESENCE_NOTICE_EVENT, notice, "gateway");
      },

      async publishChanges(this: PresenceThis, changes: PresenceChange[], reason: PresenceNotice["reason"]) {
        for (const { tenantId, presence } of changes) {
          if (reason === "expired" || reason === "node_left") this.notify(tenantId, presence, reason, true);
          try {
            const roomIds = await this.broker.call<string[], { tenantId: string; userId: string }>("rooms.ofUser", { tenantId, userId: presence.userId });
            if (roomIds.length === 0) continue;
            const delivery: Delivery = { tenantId, target: { roomIds }, event: PRESENCE_EVENT, payload: presenceEventOf(presence), volatile: true };
            await this.broker.broadcast(DELIVERY_EVENT, delivery, "gateway");
          } catch (err) {
            // Class A: a lost presence push degrades the experience, never correctness.
            this.logger.warn("Presence change not pushed", { tenantId, userId: presence.userId, error: (err as Error).message });
          }
        }
      }
    },

    created(this: PresenceThis) {
      this.store = createPresenceStore(config);
    },

    started(this: PresenceThis) {
      const ttlMs = config.presenceTtlSeconds * 1000;
      this.sweeper = setInterval(() => {
        const now = Date.now();
        this.store
          .expire(now - ttlMs, now)
          .then(changes => this.publishChanges(changes, "expired"))
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
