/**
 * Conversations as application backends declare them (seed 003): a conversation id and the user
 * ids of its members, per tenant. Realtime adapters check membership here before a socket may
 * join a conversation's room; the store never learns about sockets.
 */
export interface ConversationStore {
  /**
   * Declares a conversation with its members. Idempotent: declaring an existing conversation adds
   * the members it lacks (never removes any). `created` is false when it existed.
   */
  create(tenantId: string, conversationId: string, members: string[]): Promise<{ created: boolean; members: string[] }>;

  /** Adds members; resolves the ones that were not members yet, or undefined for an unknown conversation. */
  addMembers(tenantId: string, conversationId: string, userIds: string[]): Promise<string[] | undefined>;

  /** Removes members; resolves the ones that were members, or undefined for an unknown conversation. */
  removeMembers(tenantId: string, conversationId: string, userIds: string[]): Promise<string[] | undefined>;

  /** Every member, sorted; undefined when the conversation was never declared (or was deleted). */
  members(tenantId: string, conversationId: string): Promise<string[] | undefined>;

  /** False for a non-member and for an unknown conversation. */
  isMember(tenantId: string, conversationId: string, userId: string): Promise<boolean>;

  /** Forgets the conversation; resolves its former members (empty when it did not exist). */
  delete(tenantId: string, conversationId: string): Promise<string[]>;

  close(): Promise<void>;
}
