import type { ConnectionSlotStore, SlotRef } from "./connection-slot-store";

/** The embedded default: exact for one process (which is then the whole cluster). */
export class MemoryConnectionSlotStore implements ConnectionSlotStore {
  /** `tenant\0user` → connection id → expiry (epoch ms). */
  private readonly users = new Map<string, Map<string, number>>();

  async acquire(ref: SlotRef, limit: number, ttlMs: number, now: number) {
    const slots = this.live(ref.tenantId, ref.userId, now, true) as Map<string, number>;
    if (!slots.has(ref.connectionId) && slots.size >= limit) return { allowed: false, count: slots.size };
    slots.set(ref.connectionId, now + ttlMs);
    return { allowed: true, count: slots.size };
  }

  async refresh(refs: SlotRef[], ttlMs: number, now: number) {
    for (const ref of refs) {
      const slots = this.live(ref.tenantId, ref.userId, now, false);
      if (slots?.has(ref.connectionId)) slots.set(ref.connectionId, now + ttlMs);
    }
  }

  async release(ref: SlotRef) {
    const key = userKey(ref.tenantId, ref.userId);
    const slots = this.users.get(key);
    if (!slots) return;
    slots.delete(ref.connectionId);
    if (slots.size === 0) this.users.delete(key);
  }

  async count(tenantId: string, userId: string, now: number) {
    return this.live(tenantId, userId, now, false)?.size ?? 0;
  }

  async close() {
    this.users.clear();
  }

  /** The user's slots with the expired ones dropped. */
  private live(tenantId: string, userId: string, now: number, create: boolean): Map<string, number> | undefined {
    const key = userKey(tenantId, userId);
    let slots = this.users.get(key);
    if (slots) {
      for (const [connectionId, expiresAt] of slots) if (expiresAt <= now) slots.delete(connectionId);
      if (slots.size === 0 && !create) {
        this.users.delete(key);
        return undefined;
      }
    } else if (create) {
      slots = new Map();
      this.users.set(key, slots);
    }
    return slots;
  }
}

function userKey(tenantId: string, userId: string) {
  return `${tenantId}\0${userId}`;
}
