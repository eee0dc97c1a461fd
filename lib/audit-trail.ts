import { randomUUID } from "node:crypto";
import path from "node:path";
import type { LoggerInstance, Middleware, ServiceBroker } from "moleculer";
import type { AuditOutcome } from "./audit-chain";
import { AuditAggregator, type Aggregation } from "./audit-aggregator";
import { AuditSpool, type SpooledRecord } from "./audit-spool";
import type { Config } from "./config";
import { ErrorCode, RealtimeError } from "./errors";

/**
 * What a service hands to the audit trail (the `audit` service turns it into a chained record
 * `{id, seq, at, tenantId, actor, action, target, outcome, justification?, details, prevHash, hash}`).
 * Never put a token or a message body in `details`.
 */
export interface AuditInput {
  /** Chosen by the writer so a retried append is stored once; a UUID is generated when absent. */
  id?: string;
  /** The tenant whose chain gets the record: the tenant acted upon, or the actor's for refusals. */
  tenantId: string;
  actor: { userId: string; role: string; nodeID?: string };
  /** Dotted verb, e.g. `security.tenant_violation`, `admin.kick`, `eventbus.redrive`. */
  action: string;
  /** What was acted upon, e.g. `connection:<id>`, `tenant:<id>`, `room:<id>`. */
  target: string;
  /** `requested` = an administrative action about to be executed (its result follows as another record). */
  outcome: AuditOutcome;
  justification?: string;
  details?: Record<string, unknown>;
}

/** What `audit.append` answers: where the record sits in its chain. */
export interface AuditReceipt {
  id: string;
  seq: number;
  at: string;
  hash: string;
  duplicate: boolean;
}

/** The action the audit service exposes for appends. */
export const AUDIT_APPEND_ACTION = "audit.append";

/**
 * The chain of events that belong to no tenant that can be trusted: tokens that do not verify,
 * connections refused before authentication, platform-wide operator actions, overflow. Tokens
 * naming this tenant are refused (lib/auth.ts), so no tenant can write into or read it as its own.
 */
export const SYSTEM_TENANT = "_system";

/** The actor of refusals before anyone is authenticated. */
export const ANONYMOUS = { userId: "anonymous", role: "anonymous" } as const;
/** The actor of calls made inside the cluster without a principal (operators at the REPL, services). */
export const OPERATOR = { userId: "operator", role: "operator" } as const;

/**
 * Appends a record through the audit service. Resolves once the record is durable; rejects when
 * it cannot be made durable, so callers that must not act unaudited (admin actions, super-admin
 * reads) refuse. Security refusals use `auditReporterOf(broker).record(...)` instead, which never
 * rejects: it aggregates floods and spools what the audit service cannot take.
 */
export async function audit(broker: ServiceBroker, input: AuditInput): Promise<AuditReceipt> {
  return broker.call<AuditReceipt, AuditInput>(AUDIT_APPEND_ACTION, { ...input, actor: { nodeID: broker.nodeID, ...input.actor } }, { timeout: 5000, retries: 0 });
}

/**
 * `audit()` for actions that must not happen unaudited: any failure becomes INTERNAL_ERROR
 * (retryable, `details.reason: "audit_unavailable"`), so the caller refuses and does nothing.
 */
export async function auditFirst(broker: ServiceBroker, input: AuditInput): Promise<AuditReceipt> {
  try {
    return await audit(broker, input);
  } catch (err) {
    broker.getLogger("audit-reporter").error("Action refused: the audit trail did not take its record", { tenantId: input.tenantId, action: input.action, error: (err as Error).message });
    throw new RealtimeError(ErrorCode.INTERNAL_ERROR, "The action could not be audited, so it was not done; retry later", { retryable: true, reason: "audit_unavailable" }, 503);
  }
}

export interface AuditReporterOptions {
  /** AUDIT_AGGREGATION_WINDOW_MS; 0 = no aggregation (every record sent). */
  windowMs: number;
  /** Where undeliverable records wait (`<DATA_DIR>/audit-spool`); none = they are logged as lost. */
  spoolDir?: string;
  /** How often the spool is retried. */
  retryMs?: number;
}

/**
 * A node's fire-and-forget path to the audit trail, for records of things that already happened
 * (refusals): it aggregates floods (lib/audit-aggregator.ts), sends each record with an id, and
 * when the audit service does not take it, writes it to the node's durable spool
 * (lib/audit-spool.ts) and retries until it does. Nothing is dropped silently: a record that can
 * be neither sent nor spooled is logged at error level.
 */
export class AuditReporter {
  private readonly logger: LoggerInstance;
  private readonly aggregator?: AuditAggregator;
  private readonly spool?: AuditSpool;
  private readonly inflight = new Set<Promise<void>>();
  private sweepTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly broker: ServiceBroker,
    private readonly options: AuditReporterOptions
  ) {
    this.logger = broker.getLogger("audit-reporter");
    if (options.windowMs > 0) this.aggregator = new AuditAggregator(options.windowMs, input => this.send(input), SYSTEM_TENANT);
    if (options.spoolDir) this.spool = new AuditSpool(options.spoolDir, broker.nodeID);
  }

  /** Records something that happened; with `aggregation`, repeats within a window share a record. */
  record(input: AuditInput, aggregation?: Aggregation): void {
    const stamped = { ...input, actor: { nodeID: this.broker.nodeID, ...input.actor } };
    if (aggregation && this.aggregator && !this.stopped) this.aggregator.hit(stamped, aggregation);
    else this.send(stamped);
  }

  start(): void {
    if (this.aggregator && !this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.aggregator?.sweep(), Math.max(10, Math.min(this.options.windowMs, 1000)));
      this.sweepTimer.unref();
    }
    if (this.spool && !this.retryTimer) {
      this.retryTimer = setInterval(() => void this.drain(), this.options.retryMs ?? 1000);
      this.retryTimer.unref();
      void this.drain();
    }
  }

  /** Records pending repeats, waits for records in flight; later records are sent one by one. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.sweepTimer = this.retryTimer = undefined;
    this.aggregator?.flush();
    await this.idle();
  }

  /** Resolves when no record is on its way (sent or spooled). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Sends spooled records; true when the spool is empty afterwards. */
  async drain(): Promise<boolean> {
    if (!this.spool) return true;
    try {
      if (!(await this.spool.hasWork())) return true;
      const { sent, left } = await this.spool.drain(async record => {
        await audit(this.broker, record as unknown as AuditInput);
      });
      if (sent > 0) this.logger.info("Sent spooled audit records", { sent, left });
      return !left;
    } catch (err) {
      this.logger.error("Audit spool could not be drained", { error: (err as Error).message });
      return false;
    }
  }

  private send(input: AuditInput): void {
    const record = { ...input, id: input.id ?? randomUUID() };
    const done: Promise<void> = audit(this.broker, record)
      .then(() => undefined)
      .catch(async (err: Error) => {
        if (!this.spool) {
          this.logger.error("Audit record lost: the audit service did not take it and this node has no spool", { ...summary(record), error: err.message });
          return;
        }
        try {
          await this.spool.write([record as unknown as SpooledRecord]);
          this.logger.warn("Audit service unreachable; record spooled", { ...summary(record), error: err.message });
        } catch (spoolErr) {
          this.logger.error("Audit record lost: the audit service did not take it and the spool failed", { ...summary(record), error: (spoolErr as Error).message });
        }
      })
      .finally(() => this.inflight.delete(done));
    this.inflight.add(done);
  }
}

function summary(record: AuditInput & { id: string }) {
  return { auditId: record.id, tenantId: record.tenantId, action: record.action, target: record.target, outcome: record.outcome };
}

const reporters = new WeakMap<ServiceBroker, AuditReporter>();

/**
 * The broker middleware giving a node its AuditReporter (moleculer.config.ts, test/helpers/node.ts):
 * started with the broker, flushed while the broker is stopping (before its services stop).
 */
export function auditMiddleware(config: Pick<Config, "dataDir" | "auditAggregationWindowMs">): Middleware {
  return {
    name: "AuditReporter",
    created(broker: ServiceBroker) {
      reporters.set(broker, new AuditReporter(broker, { windowMs: config.auditAggregationWindowMs, spoolDir: path.join(config.dataDir, "audit-spool") }));
    },
    started(broker: ServiceBroker) {
      reporters.get(broker)?.start();
    },
    async stopping(broker: ServiceBroker) {
      await reporters.get(broker)?.stop();
    }
  } as unknown as Middleware;
}

/**
 * The node's reporter. A broker built without `auditMiddleware` (unit tests) gets one that sends
 * every record immediately and logs what the audit service does not take.
 */
export function auditReporterOf(broker: ServiceBroker): AuditReporter {
  let reporter = reporters.get(broker);
  if (!reporter) {
    reporter = new AuditReporter(broker, { windowMs: 0 });
    reporters.set(broker, reporter);
  }
  return reporter;
}
