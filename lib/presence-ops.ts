import type { DeviceInfo } from "../stores/presence/presence-store";

/** One change a gateway reports to the presence service (`presence.applyMany`). */
export type PresenceOp =
  | { op: "connect"; tenantId: string; userId: string; connectionId: string; nodeId: string; device?: DeviceInfo }
  | { op: "disconnect"; tenantId: string; userId: string; connectionId: string };

/** Ops per `presence.applyMany` request at most. */
export const PRESENCE_BATCH_MAX = 1000;
