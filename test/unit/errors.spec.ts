import { Errors } from "moleculer";
import {
  authFailed,
  authzFailed,
  ErrorCode,
  httpStatusOf,
  invalidRequest,
  notFound,
  rateLimited,
  RealtimeError,
  tenantViolation,
  toClientError
} from "../../lib/errors";

const allCodes = Object.values(ErrorCode);

describe("RealtimeError", () => {
  it.each([
    ["AUTH_FAILED", 401, false],
    ["AUTHZ_FAILED", 403, false],
    ["TENANT_VIOLATION", 403, false],
    ["RATE_LIMIT", 429, true],
    ["INVALID_REQUEST", 400, false],
    ["NOT_FOUND", 404, false],
    ["INTERNAL_ERROR", 500, true]
  ] as const)("%s has status %d (retryable: %s)", (code, status, retryable) => {
    const error = new RealtimeError(code, "message", { a: 1 });
    expect(error).toBeInstanceOf(Errors.MoleculerError);
    expect(error.code).toBe(status);
    expect(error.type).toBe(code);
    expect(error.retryable).toBe(retryable);
    expect(httpStatusOf[code]).toBe(status);
  });

  it("covers the closed set of seed codes", () => {
    expect(allCodes.sort()).toEqual(["AUTHZ_FAILED", "AUTH_FAILED", "INTERNAL_ERROR", "INVALID_REQUEST", "NOT_FOUND", "RATE_LIMIT", "TENANT_VIOLATION"]);
  });

  it("has helpers for each refusal", () => {
    expect(authFailed().type).toBe("AUTH_FAILED");
    expect(authzFailed().type).toBe("AUTHZ_FAILED");
    expect(tenantViolation({ tenantId: "x" })).toMatchObject({ type: "TENANT_VIOLATION", code: 403, data: { tenantId: "x" } });
    expect(rateLimited({ retryAfterMs: 5 })).toMatchObject({ type: "RATE_LIMIT", code: 429, data: { retryAfterMs: 5 } });
    expect(invalidRequest("bad")).toMatchObject({ type: "INVALID_REQUEST", code: 400, message: "bad" });
    expect(notFound()).toMatchObject({ type: "NOT_FOUND", code: 404 });
  });
});

describe("toClientError", () => {
  it.each(allCodes.map(code => [code]))("maps a RealtimeError %s to its status with message and details", code => {
    const result = toClientError(new RealtimeError(code, `refused: ${code}`, { why: code }));
    expect(result).toEqual({ status: httpStatusOf[code], body: { error: `refused: ${code}`, code, details: { why: code } } });
  });

  it("omits details when there are none", () => {
    expect(toClientError(authFailed("Missing token"))).toEqual({ status: 401, body: { error: "Missing token", code: "AUTH_FAILED" } });
    expect(toClientError(new RealtimeError("NOT_FOUND", "gone", null)).body).not.toHaveProperty("details");
  });

  it("maps a Moleculer ValidationError to 400 INVALID_REQUEST with the field details only", () => {
    const error = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
      { type: "required", field: "roomId", message: "The 'roomId' field is required.", actual: undefined, nodeID: "node-1" },
      { type: "stringMax", field: "type", message: "The 'type' field length must be less than or equal to 128 characters long.", actual: "x".repeat(200) }
    ]);
    expect(toClientError(error)).toEqual({
      status: 400,
      body: {
        error: "Invalid request",
        code: "INVALID_REQUEST",
        details: [
          { field: "roomId", message: "The 'roomId' field is required.", type: "required" },
          { field: "type", message: "The 'type' field length must be less than or equal to 128 characters long.", type: "stringMax" }
        ]
      }
    });
  });

  it("maps ServiceNotFoundError to 404 NOT_FOUND without internal names", () => {
    const result = toClientError(new Errors.ServiceNotFoundError({ action: "secret-internal.action", nodeID: "node-7" }));
    expect(result).toEqual({ status: 404, body: { error: "Not found", code: "NOT_FOUND" } });
  });

  it("maps unavailable services and timeouts to a retryable 503", () => {
    const expected = { status: 503, body: { error: "Service temporarily unavailable", code: "INTERNAL_ERROR", details: { retryable: true } } };
    expect(toClientError(new Errors.RequestTimeoutError({ action: "rooms.join", nodeID: "n1" }))).toEqual(expected);
    expect(toClientError(new Errors.ServiceNotAvailableError({ action: "rooms.join", nodeID: "n1" }))).toEqual(expected);
    expect(toClientError(new Errors.MoleculerRetryableError("down", 503, "SOMETHING"))).toEqual(expected);
  });

  it("maps a store whose server is down or silent (Redis, PostgreSQL) to a retryable 503 without leaking the address", () => {
    const expected = { status: 503, body: { error: "Service temporarily unavailable", code: "INTERNAL_ERROR", details: { retryable: true } } };
    expect(toClientError(new Error("Connection is closed."))).toEqual(expected);
    expect(toClientError(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toEqual(expected);
    expect(toClientError(new Error("Command timed out"))).toEqual(expected);
    expect(toClientError(Object.assign(new Error("connect ECONNREFUSED 10.0.0.5:6379"), { code: "ECONNREFUSED" }))).toEqual(expected);
  });

  it("maps a 413 to INVALID_REQUEST", () => {
    expect(toClientError(new Errors.MoleculerClientError("too big", 413, "ENTITY_TOO_LARGE"))).toEqual({
      status: 413,
      body: { error: "Request entity too large", code: "INVALID_REQUEST" }
    });
  });

  it.each([
    ["an Error", new Error("password=hunter2 at /srv/app/db.ts:12")],
    ["a TypeError", new TypeError("Cannot read properties of undefined (reading 'secret')")],
    ["an unknown Moleculer error", new Errors.MoleculerError("internal detail: redis at 10.0.0.5", 500, "SOMETHING_ELSE", { host: "10.0.0.5" })],
    ["a plain object of unknown type", { type: "WEIRD", code: 500, message: "internal detail", stack: "at x" }],
    ["an error with a non-HTTP code", Object.assign(new Error("internal detail"), { code: "ERR_SOMETHING" })],
    ["a string", "internal detail"],
    ["null", null],
    ["undefined", undefined],
    ["a number", 42]
  ])("maps %s to 500 INTERNAL_ERROR without leaking anything", (_label, thrown: unknown) => {
    const result = toClientError(thrown);
    expect(result).toEqual({ status: 500, body: { error: "Internal server error", code: "INTERNAL_ERROR" } });
    const text = JSON.stringify(result);
    expect(text).not.toMatch(/stack|internal detail|hunter2|secret|10\.0\.0\.5/);
  });

  it("maps plain-object errors that crossed the transporter by their type", () => {
    const wire = { name: "RealtimeError", type: "TENANT_VIOLATION", code: 403, message: "Cross-tenant access is not allowed", data: { tenantId: "other" } };
    expect(toClientError(wire)).toEqual({
      status: 403,
      body: { error: "Cross-tenant access is not allowed", code: "TENANT_VIOLATION", details: { tenantId: "other" } }
    });
    expect(toClientError({ type: "RATE_LIMIT", code: 429, message: "Rate limit exceeded", data: { retryAfterMs: 1200 } })).toEqual({
      status: 429,
      body: { error: "Rate limit exceeded", code: "RATE_LIMIT", details: { retryAfterMs: 1200 } }
    });
    // The status comes from the seed code, not from whatever code the object carries.
    expect(toClientError({ type: "AUTH_FAILED", code: 500, message: "Invalid token" }).status).toBe(401);
    expect(toClientError({ type: "VALIDATION_ERROR", code: 422, message: "x", data: [{ field: "f", message: "m", type: "t" }] })).toEqual({
      status: 400,
      body: { error: "Invalid request", code: "INVALID_REQUEST", details: [{ field: "f", message: "m", type: "t" }] }
    });
  });

  it.each([
    ["moleculer-web's UnAuthorizedError", { name: "UnAuthorizedError", type: "INVALID_TOKEN", code: 401, message: "internal detail" }, 401, "AUTH_FAILED"],
    ["moleculer-web's ForbiddenError (origin not allowed)", { name: "ForbiddenError", type: "ORIGIN_NOT_ALLOWED", code: 403, message: "internal detail" }, 403, "AUTHZ_FAILED"],
    ["moleculer-web's NotFoundError", { name: "NotFoundError", type: "NOT_FOUND", code: 404, message: "Not found" }, 404, "NOT_FOUND"],
    ["moleculer-web's RateLimitExceeded", { name: "RateLimitExceeded", type: "RATE_LIMIT_EXCEEDED", code: 429, message: "internal detail" }, 429, "RATE_LIMIT"],
    ["body-parser's malformed JSON", new Errors.MoleculerError("Unexpected token } in JSON at position 7 (internal detail)", 400, "entity.parse.failed"), 400, "INVALID_REQUEST"],
    ["body-parser's unsupported charset", new Errors.MoleculerError("unsupported charset \"internal detail\"", 415, "charset.unsupported"), 400, "INVALID_REQUEST"],
    ["an unknown client status", { type: "WEIRD", code: 418, message: "internal detail", stack: "at x" }, 400, "INVALID_REQUEST"]
  ])("maps %s onto the seed's table without its message", (_label, thrown: unknown, status, code) => {
    const result = toClientError(thrown);
    expect(result.status).toBe(status);
    expect(result.body.code).toBe(code);
    expect(Object.keys(result.body).sort()).toEqual(["code", "error"]);
    expect(JSON.stringify(result)).not.toMatch(/internal detail|stack/);
  });

  it("never includes a stack in the body", () => {
    for (const code of allCodes) {
      const body = toClientError(new RealtimeError(code, "m")).body;
      expect(Object.keys(body).sort()).toEqual(["code", "error"]);
    }
  });
});
