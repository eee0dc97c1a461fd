import { randomUUID } from "node:crypto";
import { ErrorCode, toClientError } from "../../lib/errors";
import { isoNow } from "../../lib/iso-now";

/**
 * Seed 002 frames: every message in either direction is one JSON envelope
 * `{id, type, payload, channel?, ack_id?, timestamp}`. Logged events also carry `sequence`, their
 * number in the tenant's stream, which is the `last_poll_id` / `last_sequence` of the polling
 * fallback and of a reconnect, so a client switches transports without a gap or a duplicate.
 */
export interface WsEnvelope {
  id: string;
  type: string;
  payload: unknown;
  channel?: string;
  ack_id?: string;
  timestamp: string;
  sequence?: number;
}

/** A client frame that passed the envelope checks. */
export interface InboundFrame {
  id?: string;
  type: string;
  payload: Record<string, unknown>;
  channel?: string;
  ack_id?: string;
}

/** The seed's error codes (seed 002 "Error Codes"), plus AUTHZ_FAILED (forbidden) and NOT_FOUND (unknown HTTP route). */
export const WsErrorCode = {
  MISSING_TOKEN: "MISSING_TOKEN",
  INVALID_TOKEN: "INVALID_TOKEN",
  TOKEN_EXPIRED: "TOKEN_EXPIRED",
  INVALID_MESSAGE: "INVALID_MESSAGE",
  CHANNEL_NOT_FOUND: "CHANNEL_NOT_FOUND",
  AUTHZ_FAILED: "AUTHZ_FAILED",
  /** HTTP only: no such route under /api/v1/realtime. */
  NOT_FOUND: "NOT_FOUND",
  MAX_CONNECTIONS: "MAX_CONNECTIONS",
  RATE_LIMITED: "RATE_LIMITED",
  INTERNAL_ERROR: "INTERNAL_ERROR"
} as const;
export type WsErrorCode = (typeof WsErrorCode)[keyof typeof WsErrorCode];

const statusOf: Record<WsErrorCode, number> = {
  MISSING_TOKEN: 401,
  INVALID_TOKEN: 401,
  TOKEN_EXPIRED: 401,
  INVALID_MESSAGE: 400,
  CHANNEL_NOT_FOUND: 404,
  AUTHZ_FAILED: 403,
  NOT_FOUND: 404,
  MAX_CONNECTIONS: 429,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500
};

/** What a seed 002 client is shown for an error: `{code, message, details?}`, never a stack. */
export interface WsErrorBody {
  code: WsErrorCode;
  message: string;
  details?: unknown;
}

/** An error raised by the seed 002 adapter itself, already in the seed's vocabulary. */
export class WsError extends Error {
  constructor(
    readonly code: WsErrorCode,
    message: string,
    readonly details?: unknown,
    readonly status: number = statusOf[code]
  ) {
    super(message);
    this.name = "WsError";
  }
}

export const invalidMessage = (message: string, details?: unknown) => new WsError(WsErrorCode.INVALID_MESSAGE, message, details);

/**
 * Any thrown value in the seed's vocabulary: the product's closed set (lib/errors.ts) mapped onto
 * the seed 002 codes, with the HTTP status the seed gives each.
 */
export function toWsError(err: unknown): { status: number; body: WsErrorBody } {
  if (err instanceof WsError) return { status: err.status, body: withDetails(err.code, err.message, err.details) };
  const { status, body } = toClientError(err);
  switch (body.code) {
    case ErrorCode.AUTH_FAILED: {
      const reason = (body.details as { reason?: unknown } | undefined)?.reason;
      const code = body.error === "Missing token" ? WsErrorCode.MISSING_TOKEN : reason === "expired" ? WsErrorCode.TOKEN_EXPIRED : WsErrorCode.INVALID_TOKEN;
      return { status: 401, body: withDetails(code, body.error, body.details) };
    }
    case ErrorCode.INVALID_REQUEST:
      return { status: 400, body: withDetails(WsErrorCode.INVALID_MESSAGE, body.error, body.details) };
    case ErrorCode.RATE_LIMIT:
      return { status: 429, body: withDetails(WsErrorCode.RATE_LIMITED, body.error, body.details) };
    case ErrorCode.AUTHZ_FAILED:
    case ErrorCode.TENANT_VIOLATION:
      return { status: 403, body: withDetails(WsErrorCode.AUTHZ_FAILED, body.error, body.details) };
    case ErrorCode.NOT_FOUND:
      return { status: 404, body: withDetails(WsErrorCode.NOT_FOUND, body.error, body.details) };
    default:
      return { status: status >= 500 ? status : 500, body: withDetails(WsErrorCode.INTERNAL_ERROR, body.error, body.details) };
  }
}

function withDetails(code: WsErrorCode, message: string, details: unknown): WsErrorBody {
  return details === undefined || details === null ? { code, message } : { code, message, details };
}

/** A server frame. */
export function envelope(type: string, payload: unknown, extra: { channel?: string; ack_id?: string; id?: string; timestamp?: string; sequence?: number } = {}): WsEnvelope {
  return {
    id: extra.id ?? randomUUID(),
    type,
    payload,
    ...(extra.channel !== undefined ? { channel: extra.channel } : {}),
    ...(extra.ack_id !== undefined ? { ack_id: extra.ack_id } : {}),
    timestamp: extra.timestamp ?? isoNow(),
    ...(extra.sequence !== undefined ? { sequence: extra.sequence } : {})
  };
}

/** `ack {ack_id, status, data}`; the envelope's own `ack_id` names the request too. */
export function ackFrame(ackId: string, status: "success" | "error", data: unknown): WsEnvelope {
  return envelope("ack", { ack_id: ackId, status, data: data ?? null }, { ack_id: ackId });
}

export function errorFrame(body: WsErrorBody): WsEnvelope {
  return envelope("error", body);
}

const TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_ID = 128;
const MAX_CHANNEL = 300;

/** Outcome of parsing a client frame: the frame, or the error to answer (with the ack id when one was readable). */
export type ParseResult = { frame: InboundFrame } | { error: WsError; ackId?: string };

/** Checks one client frame against the envelope: JSON object, `type`, object `payload`, string fields bounded. */
export function parseFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean, maxBytes: number): ParseResult {
  if (isBinary) return { error: invalidMessage("Binary frames are not supported; send JSON text", { reason: "binary" }) };
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (buffer.length > maxBytes) return { error: invalidMessage(`Message is larger than ${maxBytes} bytes`, { reason: "too_large", size: buffer.length, limit: maxBytes }) };
  let value: unknown;
  try {
    value = JSON.parse(buffer.toString("utf8"));
  } catch {
    return { error: invalidMessage("Message is not valid JSON", { reason: "not_json" }) };
  }
  if (!isPlainObject(value)) return { error: invalidMessage("Message must be a JSON object", { reason: "not_object" }) };
  const rawAck = value.ack_id;
  const ackId = typeof rawAck === "string" && rawAck.length > 0 && rawAck.length <= MAX_ID ? rawAck : typeof rawAck === "number" && Number.isFinite(rawAck) ? String(rawAck) : undefined;
  const fail = (message: string, details: Record<string, unknown>): ParseResult => ({ error: invalidMessage(message, details), ...(ackId !== undefined ? { ackId } : {}) });
  if (rawAck !== undefined && rawAck !== null && ackId === undefined) return fail(`ack_id must be a string of at most ${MAX_ID} characters`, { field: "ack_id" });
  if (value.type === undefined || value.type === null || value.type === "") return fail("Message type is required", { field: "type" });
  if (typeof value.type !== "string" || !TYPE.test(value.type)) return fail("Message type must be 1-64 characters of A-Z a-z 0-9 _ . : -", { field: "type" });
  const payload = value.payload ?? {};
  if (!isPlainObject(payload)) return fail("payload must be an object", { field: "payload" });
  if (value.channel !== undefined && value.channel !== null && (typeof value.channel !== "string" || value.channel.length === 0 || value.channel.length > MAX_CHANNEL)) {
    return fail(`channel must be a string of 1-${MAX_CHANNEL} characters`, { field: "channel" });
  }
  if (value.id !== undefined && value.id !== null && (typeof value.id !== "string" || value.id.length > MAX_ID)) return fail(`id must be a string of at most ${MAX_ID} characters`, { field: "id" });
  return {
    frame: {
      type: value.type,
      payload,
      ...(typeof value.id === "string" && value.id.length > 0 ? { id: value.id } : {}),
      ...(typeof value.channel === "string" ? { channel: value.channel } : {}),
      ...(ackId !== undefined ? { ack_id: ackId } : {})
    }
  };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
