import { tenantKey } from "../../lib/keys";
import type { ConversationStore } from "./conversation-store";

/** The embedded default: conversations of one process. */
export class MemoryConversationStore implements ConversationStore {
  private readonly conversations = new Map<string, Set<string>>();

  async create(tenantId: string, conversationId: string, members: string[]) {
    const key = tenantKey(tenantId, "conv", conversationId);
    const existing = this.conversations.get(key);
    const set = existing ?? new Set<string>();
    for (const userId of members) set.add(userId);
    this.conversations.set(key, set);
    return { created: existing === undefined, members: [...set].sort() };
  }

  async addMembers(tenantId: string, conversationId: string, userIds: string[]) {
    const set = this.conversations.get(tenantKey(tenantId, "conv", conversationId));
    if (!set) return undefined;
    const added = [...new Set(userIds)].filter(userId => !set.has(userId));
    for (const userId of added) set.add(userId);
    return added;
  }

  async removeMembers(tenantId: string, conversationId: string, userIds: string[]) {
    const set = this.conversations.get(tenantKey(tenantId, "conv", conversationId));
    if (!set) return undefined;
    const removed = [...new Set(userIds)].filter(userId => set.has(userId));
    for (const userId of removed) set.delete(userId);
    return removed;
  }

  async members(tenantId: string, conversationId: string) {
    const set = this.conversations.get(tenantKey(tenantId, "conv", conversationId));
    return set ? [...set].sort() : undefined;
  }

  async isMember(tenantId: string, conversationId: string, userId: string) {
    return this.conversations.get(tenantKey(tenantId, "conv", conversationId))?.has(userId) ?? false;
  }

  async delete(tenantId: string, conversationId: string) {
    const key = tenantKey(tenantId, "conv", conversationId);
    const set = this.conversations.get(key);
    this.conversations.delete(key);
    return set ? [...set].sort() : [];
  }

  async close() {
    this.conversations.clear();
  }
}
