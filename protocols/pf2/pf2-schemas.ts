import Validator from "fastest-validator";
import { ALL_INTERACTION_CLASSES } from "../../lib/interaction-classes";

/** Inbound PF-2 events, validated before anything else looks at them. */
const v = new Validator({ haltOnFirstError: false });

/** Bounded, printable identifiers (user and room ids end up in keys and room names). */
const identifier = { type: "string", min: 1, max: 128, pattern: /^[^\u0000-\u001f\u007f]+$/ } as const;
/** A client may restate its own tenant; the handler refuses any other with TENANT_VIOLATION. */
const claimedTenant = { type: "string", optional: true } as const;

export interface Pf2MessageInput {
  /** Client-chosen id: sending the same message again with it is idempotent (classes B/C). */
  messageId?: string;
  type: string;
  interactionClass?: string;
  recipientId?: string;
  roomId?: string;
  payload: unknown;
  metadata?: Record<string, unknown>;
  tenantId?: string;
}

export interface Pf2RoomInput {
  roomId: string;
  tenantId?: string;
}

export interface Pf2PresenceInput {
  status: "online" | "away" | "offline";
  metadata?: Record<string, unknown>;
  tenantId?: string;
}

export const checkMessage = v.compile({
  $$strict: true,
  messageId: { type: "string", min: 1, max: 128, pattern: /^[A-Za-z0-9_.:-]+$/, optional: true },
  type: { type: "string", min: 1, max: 128 },
  interactionClass: { type: "enum", values: [...ALL_INTERACTION_CLASSES], optional: true },
  recipientId: { ...identifier, optional: true },
  roomId: { ...identifier, optional: true },
  payload: { type: "any", optional: false, nullable: true },
  metadata: { type: "object", optional: true },
  tenantId: claimedTenant
});

export const checkRoom = v.compile({
  $$strict: true,
  roomId: identifier,
  tenantId: claimedTenant
});

export const checkPresence = v.compile({
  $$strict: true,
  status: { type: "enum", values: ["online", "away", "offline"] },
  metadata: { type: "object", optional: true },
  tenantId: claimedTenant
});

export type ValidationIssue = { field?: string; message?: string; type?: string };

/** Runs a compiled check on a value already known to be a plain object. */
export function validate(check: (value: object) => true | ValidationIssue[] | Promise<unknown>, value: object): ValidationIssue[] | undefined {
  const result = check(value);
  if (result === true) return undefined;
  if (Array.isArray(result)) return result.map(({ field, message, type }) => ({ field, message, type }));
  return [{ message: "Unexpected asynchronous validation" }];
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
