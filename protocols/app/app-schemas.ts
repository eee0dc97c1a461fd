import { isIdentifier } from "../../lib/auth";
import { invalidRequest } from "../../lib/errors";

/** Inbound payloads of the seed 003 namespace, validated before anything else looks at them. */

export interface ConversationInput {
  conversationId: string;
  /** Not part of the seed; when given it must be the connection's own tenant. */
  tenantId?: unknown;
}

/**
 * The size of an event's arguments as they crossed the wire: JSON bytes, binary attachments by
 * their length. Infinity for something that cannot be serialised (a cycle cannot come off the
 * wire, but the limit must never be bypassed by a throw).
 */
export function payloadBytes(args: unknown[]): number {
  let binary = 0;
  try {
    const json = JSON.stringify(args, function (this: Record<string, unknown>, key: string, value: unknown) {
      // `value` went through toJSON already (a Buffer is {type, data} by now): look at the original.
      const original = this[key];
      if (Buffer.isBuffer(original)) {
        binary += original.length;
        return null;
      }
      if (original instanceof ArrayBuffer) {
        binary += original.byteLength;
        return null;
      }
      if (ArrayBuffer.isView(original)) {
        binary += original.byteLength;
        return null;
      }
      return value;
    });
    return Buffer.byteLength(json ?? "") + binary;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** `conversations:join` / `conversations:leave` body: `{conversationId}`. */
export function parseConversation(event: string, data: unknown): ConversationInput {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalidRequest(`'${event}' expects an object {conversationId}`, { event });
  }
  const { conversationId, tenantId } = data as Record<string, unknown>;
  if (!isIdentifier(conversationId)) {
    throw invalidRequest("conversationId must be a string of 1-128 printable characters", { event, field: "conversationId" });
  }
  return { conversationId, ...(tenantId !== undefined ? { tenantId } : {}) };
}
