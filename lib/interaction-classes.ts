/**
 * Interaction classes (seed 001, INV-010) as one policy table, applied wherever traffic enters.
 *
 * - CLASS_A: volatile (presence, typing); may be dropped under pressure, never persisted.
 * - CLASS_B: streamed and persisted; polling fallback.
 * - CLASS_C: low latency, persisted for recovery; reconciliation + snapshot fallback.
 * - CLASS_D: critical transactions; refused on every realtime path.
 */
export const InteractionClass = {
  A: "CLASS_A",
  B: "CLASS_B",
  C: "CLASS_C",
  D: "CLASS_D"
} as const;
export type InteractionClass = (typeof InteractionClass)[keyof typeof InteractionClass];

export const ALL_INTERACTION_CLASSES: readonly InteractionClass[] = Object.values(InteractionClass);

export const DEFAULT_MESSAGE_CLASS: InteractionClass = InteractionClass.C;

export interface ClassPolicy {
  /** May travel over a realtime transport (Socket.IO, WebSocket). */
  realtime: boolean;
  /** Delivered as a volatile emit: dropped rather than buffered for a congested client. */
  volatile: boolean;
  /** Appended to the tenant's log before it is acknowledged, so it can be replayed. */
  persisted: boolean;
}

export const classPolicy: Record<InteractionClass, ClassPolicy> = {
  CLASS_A: { realtime: true, volatile: true, persisted: false },
  CLASS_B: { realtime: true, volatile: false, persisted: true },
  CLASS_C: { realtime: true, volatile: false, persisted: true },
  CLASS_D: { realtime: false, volatile: false, persisted: false }
};

/** Classes a realtime client may use; announced in the `connected` event. */
export const REALTIME_CLASSES: readonly InteractionClass[] = ALL_INTERACTION_CLASSES.filter(c => classPolicy[c].realtime);
