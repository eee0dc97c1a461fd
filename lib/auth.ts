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
  const claims = payload as JwtPayload & Record<string, unknown>;
  const { role, exp } = claims;
  // Seed 002 login services issue snake_case claims (`user_id`); both spellings are accepted, and
  // a token carrying both with different values is refused rather than guessed.
  const tenantId = claimOf(claims, "tenantId", "tenant_id");
  const userId = claimOf(claims, "userId", "user_id");
  if (!isIdentifier(tenantId)) throw authFailed("Token lacks a valid tenantId claim", { reason: "claims" });
  if (!isIdentifier(userId)) throw authFailed("Token lacks a valid userId claim", { reason: "claims" });
  return {
    tenantId,
    userId,
    role: isIdentifier(role) ? role : "user",
    exp: typeof exp === "number" ? exp : undefined
  };
}

/** A claim under its name or its snake_case alias; integer ids (`"user_id": 123`) become strings. */
function claimOf(claims: Record<string, unknown>, name: string, alias: string): unknown {
  const asId = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? String(v) : v);
  const value = asId(claims[name]);
  const aliased = asId(claims[alias]);
  if (value === undefined) return aliased;
  if (aliased !== undefined && aliased !== value) throw authFailed(`Token claims ${name} and ${alias} disagree`, { reason: "claims" });
  return value;
}

/** `Authorization: Bearer <jwt>` → the token, or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== "string") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}
