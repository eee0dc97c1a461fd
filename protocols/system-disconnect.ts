import type { Context, LoggerInstance, ServiceBroker } from "moleculer";
import type { Namespace, Socket } from "socket.io";
import { OPERATOR, auditFirst, auditReporterOf } from "../lib/audit-trail";
import type { CallerMeta } from "../lib/context";
import { authzFailed, invalidRequest } from "../lib/errors";
import type { DisconnectNotice } from "../lib/push";
import type { ConnectionState } from "./connection";

/**
 * `system:disconnect` (seed 003): an operator tells a user's clients, or one connection, why they
 * are being disconnected, then closes them, on every gateway node and every Socket.IO protocol
 * whose adapter handles `DisconnectNotice`s (PF-2 `/`, seed 003 `/ws/app`).
 *
 * `gateway.systemDisconnect` (alias `gateway.kick`) is the operator action (REPL, other services).
 * An `admin.disconnect` record (outcome `requested`) is made durable first: if the audit trail
 * cannot take it, nobody is disconnected. It then calls `gateway.disconnectLocal` on each gateway
 * node, so the answer counts what was really closed, and records the result.
 */
export const SYSTEM_DISCONNECT_EVENT = "system:disconnect";

/** Roles that may disconnect users when the call carries a principal; internal calls carry none. */
const OPERATOR_ROLES = new Set(["admin", "super_admin", "service"]);

export interface SystemDisconnectParams {
  tenantId: string;
  userId?: string;
  connectionId?: string;
  reason: string;
}

export interface SystemDisconnectResult {
  disconnected: number;
  nodes: Array<{ nodeID: string; disconnected: number } | { nodeID: string; error: string }>;
}

export const systemDisconnectParams = {
  tenantId: { type: "string", min: 1, max: 128 },
  userId: { type: "string", min: 1, max: 128, optional: true },
  connectionId: { type: "string", min: 1, max: 128, optional: true },
  reason: { type: "string", min: 1, max: 512 }
} as const;

/** Tells the namespace's matching sockets why, then closes them; returns how many. */
export function disconnectSockets(nsp: Namespace, notice: DisconnectNotice): number {
  const matching: Socket[] = [];
  if (notice.connectionId !== undefined) {
    const socket = nsp.sockets.get(notice.connectionId);
    // A connection id is not tenant-scoped by itself: check the owner.
    if (socket && (socket.data as ConnectionState | undefined)?.tenantId === notice.tenantId) matching.push(socket);
  } else {
    // Every socket of the namespace rather than the user's room: one still setting up counts too.
    for (const socket of nsp.sockets.values()) {
      const state = socket.data as ConnectionState | undefined;
      if (state?.tenantId === notice.tenantId && state.userId === notice.userId) matching.push(socket);
    }
  }
  for (const socket of matching) {
    // Engine.IO flushes what is buffered before it closes the transport, so the event arrives first.
    socket.emit(SYSTEM_DISCONNECT_EVENT, { reason: notice.reason });
    socket.disconnect(true);
  }
  return matching.length;
}

/** Exactly one target, and an operator (or a trusted internal call) asking; throws otherwise. */
export function checkDisconnect(ctx: Context<SystemDisconnectParams, CallerMeta>): void {
  if ((ctx.params.userId === undefined) === (ctx.params.connectionId === undefined)) throw invalidRequest("Exactly one of userId or connectionId is required");
  const caller = ctx.meta.auth;
  if (caller && !OPERATOR_ROLES.has(caller.role)) throw authzFailed("Only operators may disconnect users");
}

/** The operator action: every gateway node closes its matching connections; audited. */
export async function systemDisconnect(broker: ServiceBroker, logger: LoggerInstance, ctx: Context<SystemDisconnectParams, CallerMeta>): Promise<SystemDisconnectResult> {
  checkDisconnect(ctx);
  const { tenantId, userId, connectionId, reason } = ctx.params;
  const caller = ctx.meta.auth;
  const notice: DisconnectNotice = { tenantId, reason, ...(userId !== undefined ? { userId } : { connectionId }) };
  const actor = caller ? { userId: caller.userId, role: caller.role } : OPERATOR;
  const target = userId !== undefined ? `user:${userId}` : `connection:${connectionId}`;
  const { id: requestId } = await auditFirst(broker, { tenantId, actor, action: "admin.disconnect", target, outcome: "requested", justification: reason, details: { reason } });

  // Moleculer types the list as schemas; the entries carry `nodeID` (registry/service-catalog.js).
  const services = broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as unknown as Array<{ name: string; nodeID: string }>;
  const nodeIDs = [...new Set(services.filter(service => service.name === "gateway").map(service => service.nodeID))];
  const answers = await Promise.allSettled(
    nodeIDs.map(nodeID => ctx.call<{ disconnected: number }, DisconnectNotice>("gateway.disconnectLocal", notice, { nodeID, timeout: 5000, retries: 0 }))
  );
  const result: SystemDisconnectResult = { disconnected: 0, nodes: [] };
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") {
      result.disconnected += answer.value.disconnected;
      result.nodes.push({ nodeID: nodeIDs[i], disconnected: answer.value.disconnected });
    } else {
      result.nodes.push({ nodeID: nodeIDs[i], error: (answer.reason as Error)?.message ?? String(answer.reason) });
    }
  });
  const failed = result.nodes.some(node => "error" in node);
  // The result record cannot undo what happened: it goes through the reporter (spooled if needed).
  auditReporterOf(broker).record({
    tenantId,
    actor,
    action: "admin.disconnect",
    target,
    outcome: failed ? "failure" : "success",
    justification: reason,
    details: { reason, requestId, disconnected: result.disconnected, nodes: result.nodes }
  });
  logger.info("Operator disconnect", { tenantId, target, disconnected: result.disconnected });
  return result;
}
