import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import jwt, { type Algorithm, type JwtPayload } from "jsonwebtoken";
import type { Config } from "./config";
import { authFailed, type RealtimeError } from "./errors";

/** Who is calling, as proven by a verified token. The only source of `tenantId` for client calls. */
export interface Principal {
  tenantId: string;
  userId: string;
  /** `user` unless the token says otherwise (`service`, `admin`, `super_admin`, ...). */
  role: string;
  /** Token expiry, epoch seconds. */
  exp?: number;
}

/** The role that may read other tenants' data over REST with a justification (INV-003, protocols/admin-access.ts). */
export const SUPER_ADMIN_ROLE = "super_admin";

/** The audit trail's own chain (lib/audit-trail.ts SYSTEM_TENANT); no token may claim it. */
const RESERVED_TENANT = "_system";

/** Identifiers end up in keys, logs and room names: bounded, printable, no control characters. */
const IDENTIFIER = /^[^\u0000-\u001f\u007f]{1,128}$/;

export function isIdentifier(value: unknown): value is string {
  return typeof value === "string" && IDENTIFIER.test(value);
}

export interface TokenVerifier {
  verify(token: unknown): Principal;
}

/**
 * Verifies PF-2 tokens: HS256 with JWT_SECRET and/or RS256/ES256 with JWT_PUBLIC_KEY.
 * `alg: none` and every algorithm not listed are refused by jsonwebtoken's allow-list.
 */
export function createTokenVerifier(config: Pick<Config, "jwtSecret" | "jwtPublicKey">): TokenVerifier {
  // KeyObjects are parsed once: with a string key jsonwebtoken re-imports it on every verify
  // (~330 µs instead of ~7 µs for HS256), which would dominate connection set-up.
  const keys: Array<{ key: KeyObject; algorithms: Algorithm[] }> = [];
  if (config.jwtSecret) keys.push({ key: createSecretKey(Buffer.from(config.jwtSecret, "utf8")), algorithms: ["HS256"] });
  if (config.jwtPublicKey) keys.push({ key: createPublicKey(config.jwtPublicKey), algorithms: ["RS256", "ES256"] });
  if (keys.length === 0) throw new Error("No JWT key configured");

  return {
    verify(token: unknown): Principal {
      if (typeof token !== "string" || token.length === 0) throw authFailed("Missing token");
      if (token.length > 8192) throw authFailed("Malformed token");
      const header = decodeHeader(token);
      const candidate = keys.find(k => k.algorithms.includes(header.alg as Algorithm));
      if (!candidate) throw authFailed("Token algorithm not accepted", { alg: String(header.alg) });
      let payload: string | JwtPayload;
      try {
        payload = jwt.verify(token, candidate.key, { algorithms: candidate.algorithms });
      } catch (err) {
        throw refusal(err);
      }
      return principalFrom(payload);
    }
  };
}

function decodeHeader(token: string): { alg?: unknown } {
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded || typeof decoded !== "object" || !decoded.header) throw authFailed("Malformed token");
  return decoded.header;
}

function refusal(err: unknown): RealtimeError {
  if (err instanceof jwt.TokenExpiredError) return authFailed("Token expired", { reason: "expired" });
  if (err instanceof jwt.NotBeforeError) return authFailed("Token not yet valid", { reason: "not_before" });
  return authFailed("Invalid token", { reason: "invalid" });
}

function principalFrom(payload: string | JwtPayload): Principal {
  if (typeof payload !== "object" || payload === null) throw authFailed("Malformed token");
  const { tenantId, userId, role, exp } = payload as JwtPayload & Record<string, unknown>;
  if (!isIdentifier(tenantId)) throw authFailed("Token lacks a valid tenantId claim", { reason: "claims" });
  if (tenantId === RESERVED_TENANT) throw authFailed("Token names a reserved tenant", { reason: "claims" });
  if (!isIdentifier(userId)) throw authFailed("Token lacks a valid userId claim", { reason: "claims" });
  return {
    tenantId,
    userId,
    role: isIdentifier(role) ? role : "user",
    exp: typeof exp === "number" ? exp : undefined
  };
}

/** `Authorization: Bearer <jwt>` → the token, or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== "string") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}
