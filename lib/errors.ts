import { Errors } from "moleculer";

/** The closed set of error codes clients see (seed 000 "Error Codes"). */
export const ErrorCode = {
  AUTH_FAILED: "AUTH_FAILED",
  AUTHZ_FAILED: "AUTHZ_FAILED",
  TENANT_VIOLATION: "TENANT_VIOLATION",
  RATE_LIMIT: "RATE_LIMIT",
  INVALID_REQUEST: "INVALID_REQUEST",
  NOT_FOUND: "NOT_FOUND",
  INTERNAL_ERROR: "INTERNAL_ERROR"
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const httpStatusOf: Record<ErrorCode, number> = {
  AUTH_FAILED: 401,
  AUTHZ_FAILED: 403,
  TENANT_VIOLATION: 403,
  RATE_LIMIT: 429,
  INVALID_REQUEST: 400,
  NOT_FOUND: 404,
  INTERNAL_ERROR: 500
};

/** Codes a client may simply retry later (the same request can succeed). */
const retryableCodes = new Set<ErrorCode>([ErrorCode.RATE_LIMIT, ErrorCode.INTERNAL_ERROR]);

/**
 * A product error: Moleculer's `code` is the HTTP status, `type` is the seed code, `data` the
 * details shown to the client. It crosses the transporter intact, so a refusal raised on a
 * services node reaches the client of another gateway with the same code.
 */
export class RealtimeError extends Errors.MoleculerError {
  /** `httpStatus` overrides the code's usual status where a client contract asks for another (seed 004: 413, 422). */
  constructor(code: ErrorCode, message: string, details?: unknown, httpStatus: number = httpStatusOf[code]) {
    super(message, httpStatus, code, details);
    this.name = "RealtimeError";
    this.retryable = retryableCodes.has(code);
  }
}

export const authFailed = (message = "Authentication failed", details?: unknown) =>
  new RealtimeError(ErrorCode.AUTH_FAILED, message, details);
export const authzFailed = (message = "Not allowed", details?: unknown) =>
  new RealtimeError(ErrorCode.AUTHZ_FAILED, message, details);
export const tenantViolation = (details?: unknown) =>
  new RealtimeError(ErrorCode.TENANT_VIOLATION, "Cross-tenant access is not allowed", details);
export const rateLimited = (details?: unknown) =>
  new RealtimeError(ErrorCode.RATE_LIMIT, "Rate limit exceeded", details);
export const invalidRequest = (message: string, details?: unknown) =>
  new RealtimeError(ErrorCode.INVALID_REQUEST, message, details);
export const notFound = (message = "Not found", details?: unknown) =>
  new RealtimeError(ErrorCode.NOT_FOUND, message, details);

/** What a client is shown for any error: `{error, code, details?}`, never a stack. */
export interface ClientError {
  error: string;
  code: ErrorCode;
  details?: unknown;
}

const knownCodes = new Set<string>(Object.values(ErrorCode));

/** Maps any thrown value (ours, Moleculer's, or a bug) to the client's view and an HTTP status. */
export function toClientError(err: unknown): { status: number; body: ClientError } {
  if (err instanceof Errors.MoleculerError || isMoleculerLike(err)) {
    const e = err as Errors.MoleculerError;
    if (knownCodes.has(e.type)) {
      const code = e.type as ErrorCode;
      // A 4xx carried by the error may refine the code's status (413, 422); anything else follows the code.
      const status = typeof e.code === "number" && e.code >= 400 && e.code < 500 ? e.code : httpStatusOf[code];
      return { status, body: withDetails(e.message, code, e.data) };
    }
    if (e.type === "VALIDATION_ERROR" || e.code === 422 || e.code === 400) {
      return {
        status: 400,
        body: withDetails("Invalid request", ErrorCode.INVALID_REQUEST, validationDetails(e.data))
      };
    }
    // Before the 404 branch: Moleculer's ServiceNotAvailableError carries code 404.
    if (e.code === 503 || e.code === 504 || e.type === "SERVICE_NOT_AVAILABLE" || e.type === "REQUEST_TIMEOUT") {
      return {
        status: 503,
        body: { error: "Service temporarily unavailable", code: ErrorCode.INTERNAL_ERROR, details: { retryable: true } }
      };
    }
    if (e.code === 404 || e.type === "SERVICE_NOT_FOUND" || e.type === "NOT_FOUND") {
      return { status: 404, body: { error: "Not found", code: ErrorCode.NOT_FOUND } };
    }
    if (e.code === 413) {
      return { status: 413, body: { error: "Request entity too large", code: ErrorCode.INVALID_REQUEST } };
    }
    // Any other client error raised by a library (moleculer-web's 401/403/429, body-parser's 415,
    // …) maps onto the seed's table by status, without its message.
    if (typeof e.code === "number" && e.code >= 400 && e.code < 500) {
      const code = CLIENT_STATUS_CODES[e.code] ?? ErrorCode.INVALID_REQUEST;
      return { status: httpStatusOf[code], body: { error: GENERIC_MESSAGES[code], code } };
    }
  }
  if (isDependencyUnavailable(err)) {
    return { status: 503, body: { error: "Service temporarily unavailable", code: ErrorCode.INTERNAL_ERROR, details: { retryable: true } } };
  }
  return { status: 500, body: { error: "Internal server error", code: ErrorCode.INTERNAL_ERROR } };
}

const CLIENT_STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  401: ErrorCode.AUTH_FAILED,
  403: ErrorCode.AUTHZ_FAILED,
  404: ErrorCode.NOT_FOUND,
  429: ErrorCode.RATE_LIMIT
};

const GENERIC_MESSAGES: Record<ErrorCode, string> = {
  AUTH_FAILED: "Authentication failed",
  AUTHZ_FAILED: "Not allowed",
  TENANT_VIOLATION: "Cross-tenant access is not allowed",
  RATE_LIMIT: "Rate limit exceeded",
  INVALID_REQUEST: "Invalid request",
  NOT_FOUND: "Not found",
  INTERNAL_ERROR: "Internal server error"
};
/** Errors of a store client whose server is unreachable or does not answer (ioredis, pg, sockets). */
const UNAVAILABLE_MESSAGES = [/Connection is closed/i, /enableOfflineQueue/i, /Command timed out/i, /max retries per request/i, /Connection terminated/i, /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/];
const UNAVAILABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTCONN"]);

/** A dependency (Redis, PostgreSQL) is down: the client may retry later (503, retryable). */
export function isDependencyUnavailable(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { message, code } = err as { message?: unknown; code?: unknown };
  if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) return true;
  return typeof message === "string" && UNAVAILABLE_MESSAGES.some(pattern => pattern.test(message));
}

function withDetails(error: string, code: ErrorCode, details: unknown): ClientError {
  return details === undefined || details === null ? { error, code } : { error, code, details };
}

/** Errors that crossed the transporter are plain objects rebuilt by Moleculer; accept their shape. */
function isMoleculerLike(err: unknown): boolean {
  return typeof err === "object" && err !== null && "type" in err && "code" in err;
}

/** fastest-validator's error list, reduced to what helps a client fix its request. */
function validationDetails(data: unknown): unknown {
  if (!Array.isArray(data)) return data;
  return data.map((item: { field?: string; message?: string; type?: string }) => ({
    field: item.field,
    message: item.message,
    type: item.type
  }));
}
