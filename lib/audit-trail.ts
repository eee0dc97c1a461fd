import type { ServiceBroker } from "moleculer";

/**
 * What a service hands to the audit trail (the `audit` service turns it into a chained record
 * `{id, at, tenantId, actor, action, target, outcome, justification?, details, prevHash, hash}`).
 * Never put a token or a message body in `details`.
 */
export interface AuditInput {
  /** The tenant whose chain gets the record: the tenant acted upon, or the actor's for refusals. */
  tenantId: string;
  actor: { userId: string; role: string; nodeID?: string };
  /** Dotted verb, e.g. `security.tenant_violation`, `admin.disconnect`, `eventbus.redrive`. */
  action: string;
  /** What was acted upon, e.g. `connection:<id>`, `tenant:<id>`, `room:<id>`. */
  target: string;
  outcome: "success" | "denied" | "failure";
  justification?: string;
  details?: Record<string, unknown>;
}

/** The action the audit service exposes for appends. */
export const AUDIT_APPEND_ACTION = "audit.append";

/**
 * Appends a record through the audit service. Resolves once the record is durable; rejects when
 * it cannot be made durable, so callers that must not act unaudited (admin actions) can refuse.
 */
export async function audit(broker: ServiceBroker, input: AuditInput): Promise<void> {
  await broker.call(AUDIT_APPEND_ACTION, { ...input, actor: { nodeID: broker.nodeID, ...input.actor } }, { timeout: 5000, retries: 0 });
}
