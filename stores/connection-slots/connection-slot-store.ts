/**
 * Connection slots: how many live connections of one protocol a user holds across the cluster,
 * so a per-user cap (seed 002 `MAX_CONNECTIONS`) holds whichever gateway each connection reaches.
 *
 * A slot belongs to one connection id. It lives until it is released or until it has not been
 * refreshed for `ttlMs`, so the slots of a gateway that died free themselves without a cleanup.
 */
export interface SlotRef {
  tenantId: string;
  userId: string;
  connectionId: string;
}

export interface SlotResult {
  /** The connection holds a slot (newly taken, or already held). */
  allowed: boolean;
  /** Live slots of the user after the call, this one included when allowed. */
  count: number;
}

export interface ConnectionSlotStore {
  /**
   * Takes a slot for `connectionId` unless the user already holds `limit` live ones. Atomic: two
   * nodes racing for the last slot cannot both get it. Idempotent per connection id (refreshes it).
   */
  acquire(ref: SlotRef, limit: number, ttlMs: number, now: number): Promise<SlotResult>;

  /** Keeps the slots alive for another `ttlMs`; slots already gone are not taken again. */
  refresh(refs: SlotRef[], ttlMs: number, now: number): Promise<void>;

  /** Frees a slot; releasing an unknown one is a no-op. */
  release(ref: SlotRef): Promise<void>;

  /** Live slots of a user. */
  count(tenantId: string, userId: string, now: number): Promise<number>;

  close(): Promise<void>;
}
