import type { Context, Service, ServiceSchema } from "moleculer";
import { loadConfig, type Config } from "../lib/config";
import type { CallerMeta } from "../lib/context";
import { resultOf, type AppendOutcome } from "../lib/append-batcher";
import { invalidRequest, notFound, rateLimited, tenantViolation } from "../lib/errors";
import { InteractionClass } from "../lib/interaction-classes";
import { PUSH_EVENT, type PushNotice } from "../lib/push";
import { reconcile, snapshotOf } from "../lib/reconciliation/reconcile";
import { deltaOf } from "../lib/reconciliation/snapshots";
import { ALL_STRATEGIES, type Change, type ReconcileResponse, type StateSnapshot, type Strategy } from "../lib/reconciliation/types";
import { ENTITY_TYPE, foreignTenantOperation, timestampOf, validateOperations } from "../lib/reconciliation/validate";
import { formatVersion } from "../lib/reconciliation/versions";
import { TenantScopeMixin, reportTenantViolation } from "../mixins/tenant-scope.mixin";
import type { BusEvent } from "../stores/event-log";
import { createRateLimitStore, type RateLimitResult, type RateLimitStore } from "../stores/rate-limit";
import { appliedRateLimit } from "../stores/rate-limit/rate-limit-store";
import { MemoryRateLimitStore } from "../stores/rate-limit/rate-limit-store.memory";
import { createReconciliationStore, type ReconciliationStore } from "../stores/reconciliation";
import { asServiceSchema } from "../types/service-schema";

/**
 * Offline reconciliation (seed 000 `POST /api/reconciliation/reconcile`, `GET .../snapshot/...`;
 * seed 001 class C fallback "delayed reconciliation + snapshot refresh"). Clients that worked
 * offline send their operations; the pure logic in lib/reconciliation merges them into the
 * authoritative state kept by the reconciliation store, and every applied change is appended to
 * the tenant's stream as a class C event, so online clients update live.
 */
interface ReconciliationThis extends Service {
  store: ReconciliationStore;
  rateLimits: RateLimitStore;
  /** Counts per node while the shared rate-limit store is unreachable, so the limit still holds. */
  fallbackRateLimits: MemoryRateLimitStore;
  consumeQuota(tenantId: string, clientId: string): Promise<RateLimitResult>;
  strategyFor(entityType: string): Strategy;
  publish(tenantId: string, epoch: string, changes: Change[], requestId: string, clientId: string): Promise<number>;
}

/** The event type of applied operations on the tenant's stream. */
export const RECONCILIATION_APPLIED_EVENT = "reconciliation.applied";

const identifier = { type: "string", min: 1, max: 128 } as const;
const MINUTE_MS = 60_000;
/** Appends to the stream are awaited, but a stream that stops answering must not hold the response long. */
const STREAM_TIMEOUT_MS = 5000;
/** Events per `eventbus.appendMany` request (its own maximum is 1000). */
const STREAM_BATCH = 500;

interface ReconcileParams {
  requestId: string;
  clientId: string;
  tenantId: string;
  lastKnownVersion?: string;
  operations: unknown[];
  requestedAt?: unknown;
  strategy?: Strategy;
}

export function createReconciliationService(config: Config): ServiceSchema {
  return asServiceSchema<Record<string, never>, ReconciliationThis>({
    name: "reconciliation",
    mixins: [TenantScopeMixin()],

    actions: {
      /**
       * `broker.call("reconciliation.reconcile", request)`, `POST /api/reconciliation/reconcile`:
       * applies a client's offline operations and answers `{requestId, conflicts, resolvedOperations,
       * currentVersion, deltaUpdates | snapshot, duplicates, completedAt}`.
       */
      reconcile: {
        params: {
          requestId: identifier,
          clientId: identifier,
          tenantId: identifier,
          lastKnownVersion: { type: "string", max: 200, optional: true },
          operations: { type: "array", items: "any" },
          requestedAt: { type: "any", optional: true },
          strategy: { type: "enum", values: [...ALL_STRATEGIES], optional: true }
        },
        async handler(this: ReconciliationThis, ctx: Context<ReconcileParams, CallerMeta>): Promise<ReconcileResponse> {
          const started = Date.now();
          const { requestId, clientId, tenantId, lastKnownVersion, operations } = ctx.params;
          const quota = await this.consumeQuota(tenantId, clientId);
          ctx.meta.$rateLimit = appliedRateLimit(quota, config.reconciliationRateLimit, MINUTE_MS, Date.now());
          if (!quota.allowed) throw rateLimited({ retryAfterMs: quota.retryAfterMs, limit: config.reconciliationRateLimit, windowMs: MINUTE_MS });
          if (operations.length > config.reconciliationMaxQueueSize) {
            throw invalidRequest(`A request carries at most ${config.reconciliationMaxQueueSize} operations (RECONCILIATION_MAX_QUEUE_SIZE); send them in several requests`, {
              field: "operations",
              reason: "too_many_operations",
              limit: config.reconciliationMaxQueueSize,
              count: operations.length
            });
          }
          const foreign = foreignTenantOperation(operations, tenantId);
          if (foreign) {
            const caller = ctx.meta.auth;
            reportTenantViolation(this.broker, this.logger, { tenantId, userId: caller?.userId ?? "internal", requestedTenantId: foreign.tenantId, action: ctx.action?.name });
            throw tenantViolation({ field: `operations[${foreign.operationIndex}].tenantId`, operationIndex: foreign.operationIndex, ...(foreign.operationId ? { operationId: foreign.operationId } : {}) });
          }
          if (ctx.params.requestedAt !== undefined && ctx.params.requestedAt !== null && timestampOf(ctx.params.requestedAt) === undefined) {
            throw invalidRequest("requestedAt must be an ISO 8601 date", { field: "requestedAt" });
          }
          const validated = validateOperations(operations, { tenantId, clientId });

          const result = await reconcile(
            this.store,
            { requestId, clientId, tenantId, lastKnownVersion, operations: validated, ...(ctx.params.strategy ? { strategy: ctx.params.strategy } : {}) },
            {
              strategyFor: type => this.strategyFor(type),
              maxDeltas: config.reconciliationMaxDeltas,
              snapshotLimit: config.reconciliationSnapshotLimit,
              deadline: started + config.reconciliationProcessingTimeoutMs
            }
          );
          const published = await this.publish(tenantId, result.epoch, result.applied, requestId, clientId);
          const { response } = result;
          this.logger.info("Reconciled", {
            tenantId,
            clientId,
            requestId,
            operations: operations.length,
            applied: result.applied.length,
            conflicts: response.conflicts.length,
            duplicates: response.duplicates.length,
            published,
            catchUp: response.snapshot ? "snapshot" : "deltas",
            ms: Date.now() - started
          });
          return response;
        }
      },

      /** `GET /api/reconciliation/snapshot/:entityType/:entityId`: the entity as it stands, or 404 NOT_FOUND. */
      snapshot: {
        params: {
          tenantId: identifier,
          entityType: { type: "string", min: 1, max: 64, pattern: ENTITY_TYPE },
          entityId: identifier
        },
        async handler(this: ReconciliationThis, ctx: Context<{ tenantId: string; entityType: string; entityId: string }>): Promise<StateSnapshot> {
          const { tenantId, entityType, entityId } = ctx.params;
          const snapshot = await snapshotOf(this.store, tenantId, entityType, entityId);
          if (!snapshot) throw notFound(`No ${entityType} '${entityId}'`, { entityType, entityId });
          if (snapshot.deleted) throw notFound(`${entityType} '${entityId}' was deleted`, { entityType, entityId, deleted: true, version: snapshot.version });
          return snapshot;
        }
      },

      /** For /health: whether the store answers, and which one it is. */
      stats: {
        visibility: "public",
        async handler(this: ReconciliationThis) {
          const backend = config.databaseUrl ? "postgres" : "memory";
          try {
            const latency = await this.store.ping();
            return { status: "healthy", backend, latency: Math.round(latency * 100) / 100 };
          } catch (err) {
            return { status: "unhealthy", backend, error: (err as Error).message };
          }
        }
      }
    },

    methods: {
      async consumeQuota(this: ReconciliationThis, tenantId: string, clientId: string) {
        const key = `reconcile:${clientId}`;
        const now = Date.now();
        try {
          return await this.rateLimits.consume(tenantId, key, config.reconciliationRateLimit, MINUTE_MS, now);
        } catch (err) {
          this.logger.warn("Rate-limit store unreachable; counting on this node", { tenantId, error: (err as Error).message });
          return this.fallbackRateLimits.consume(tenantId, key, config.reconciliationRateLimit, MINUTE_MS, now);
        }
      },

      /** The strategy of an entity type: RECONCILIATION_ENTITY_STRATEGIES, else RECONCILIATION_DEFAULT_STRATEGY. */
      strategyFor(this: ReconciliationThis, entityType: string): Strategy {
        const own = Object.prototype.hasOwnProperty.call(config.reconciliationEntityStrategies, entityType);
        return own ? config.reconciliationEntityStrategies[entityType] : config.reconciliationDefaultStrategy;
      },

      /**
       * Appends each applied change to the tenant's stream (class C, `reconciliation.applied`) and
       * hands it to every gateway, which renders it for its sockets (PF-2: `event`). The state is
       * already durable: a stream that is down costs online clients their live update, not
       * correctness (they catch up by reconcile or snapshot), so it is logged, never failed.
       * Returns how many were appended.
       */
      async publish(this: ReconciliationThis, tenantId: string, epoch: string, changes: Change[], requestId: string, clientId: string): Promise<number> {
        let published = 0;
        for (let start = 0; start < changes.length; start += STREAM_BATCH) {
          const events: BusEvent[] = changes.slice(start, start + STREAM_BATCH).map(change => ({
            eventId: `reconciliation:${formatVersion(epoch, change.version)}`,
            eventType: RECONCILIATION_APPLIED_EVENT,
            tenantId,
            timestamp: change.appliedAt,
            payload: deltaOf(epoch, change),
            metadata: { source: "reconciliation", interactionClass: InteractionClass.C, requestId, clientId },
            schemaVersion: "1.0"
          }));
          let outcomes: AppendOutcome[];
          try {
            outcomes = await this.broker.call<AppendOutcome[], { events: BusEvent[] }>("eventbus.appendMany", { events }, { timeout: STREAM_TIMEOUT_MS, retries: 0 });
          } catch (err) {
            outcomes = [{ error: { message: (err as Error).message } }];
          }
          for (const [i, outcome] of outcomes.entries()) {
            if ("error" in outcome) {
              this.logger.warn("Applied operations not published to the stream; clients catch up by reconcile", {
                tenantId,
                requestId,
                unpublished: changes.length - published,
                error: outcome.error.message
              });
              return published;
            }
            published += 1;
            const appended = resultOf(events[i], outcome.ok);
            if (appended.duplicate) continue;
            await this.broker.broadcast(PUSH_EVENT, { stored: appended.event } satisfies PushNotice, "gateway").catch((err: Error) => this.logger.warn("Realtime push failed", { tenantId, error: err.message }));
          }
        }
        return published;
      }
    },

    created(this: ReconciliationThis) {
      this.store = createReconciliationStore(config);
      this.rateLimits = createRateLimitStore(config);
      this.fallbackRateLimits = new MemoryRateLimitStore();
    },

    async stopped(this: ReconciliationThis) {
      await this.store.close();
      await this.rateLimits.close();
      await this.fallbackRateLimits.close();
    }
  });
}

export default () => createReconciliationService(loadConfig());
