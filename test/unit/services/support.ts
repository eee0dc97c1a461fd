import { ServiceBroker, type Context, type ServiceSchema } from "moleculer";
import { loadConfig, type Config } from "../../../lib/config";
import type { Principal } from "../../../lib/auth";
import type { Delivery } from "../../../lib/delivery";
import { TENANT_VIOLATION_EVENT } from "../../../mixins/tenant-scope.mixin";

/** Shared pieces of the service unit tests (not a spec file: jest only runs `*.spec.ts`). */

export const TEST_JWT_SECRET = "x";

/**
 * Moleculer waits `registry.stopDelay` (100 ms, missing from its typings) on every stop so remote
 * nodes learn about it first; these brokers have no transporter, so nothing needs that delay.
 */
const registry = { preferLocal: true, stopDelay: 0 };

/** A real broker without a transporter or logger, as the tests run it. */
export function newBroker(): ServiceBroker {
  return new ServiceBroker({ logger: false, registry });
}

/** A config for in-process brokers: no env, memory stores, gateway on a free port of 127.0.0.1. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return loadConfig({}, { jwtSecret: TEST_JWT_SECRET, wsPort: 0, wsHost: "127.0.0.1", ...overrides });
}

/** `ctx.meta` of a call made on behalf of a client, as the adapters build it. */
export function asClient(tenantId: string, userId = "u", role = "user"): { meta: { auth: Principal } } {
  return { meta: { auth: { tenantId, userId, role } } };
}

export interface CaughtError {
  name: string;
  message: string;
  type: string;
  code: number;
  data: unknown;
}

/** Awaits a promise that must reject and returns the error's Moleculer fields. */
export async function rejectionOf(promise: Promise<unknown>): Promise<CaughtError> {
  let settled: unknown;
  try {
    settled = await promise;
  } catch (err) {
    if (typeof err !== "object" || err === null) throw new Error(`Rejected with a non-object: ${String(err)}`);
    const e = err as Record<string, unknown>;
    return {
      name: String(e.name),
      message: String(e.message),
      type: String(e.type),
      code: typeof e.code === "number" ? e.code : Number.NaN,
      data: e.data
    };
  }
  throw new Error(`Expected a rejection, got ${JSON.stringify(settled)}`);
}

export interface TenantViolationRecord {
  tenantId: string;
  userId: string;
  requestedTenantId: string;
  action?: string;
  nodeID?: string;
  at: string;
}

/** A service recording every `security.tenantViolation` event. */
export function violationRecorder(seen: TenantViolationRecord[]): ServiceSchema {
  return {
    name: "violation-recorder",
    events: {
      [TENANT_VIOLATION_EVENT](ctx: Context<TenantViolationRecord>) {
        seen.push(ctx.params);
      }
    }
  };
}

/**
 * A stand-in for the gateway node: a service named "gateway" (so it is in the `gateway` event
 * group the presence service broadcasts to) recording every `gateway.deliver`.
 */
export function deliveryRecorder(deliveries: Delivery[]): ServiceSchema {
  return {
    name: "gateway",
    events: {
      "gateway.deliver"(ctx: Context<Delivery>) {
        deliveries.push(ctx.params);
      }
    }
  };
}

export { eventually } from "../../helpers/client";

/** Lets in-flight events arrive; used only to prove that something did NOT arrive. */
export const settle = (ms = 50) => new Promise(r => setTimeout(r, ms));

/** Stops brokers created by a test, ignoring ones that never started. */
export async function stopAll(brokers: ServiceBroker[]): Promise<void> {
  await Promise.all(brokers.splice(0).map(b => b.stop().catch(() => undefined)));
}

export const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** `broker.call` with the result type only (Moleculer's typings want both or neither type argument). */
export function callAs<T>(broker: ServiceBroker, action: string, params: object = {}, opts?: { meta: object }): Promise<T> {
  return broker.call<T, object>(action, params, opts);
}
