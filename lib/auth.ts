import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import jwt, { type Algorithm, type JwtPayload } from "jsonwebtoken";
import type { Config } from "./config";
import { authFailed, type RealtimeError } from "./errors";
import { VerifiedTokenCache } from "./verified-token-cache";

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
  /** A token its caller sends again and again (REST, polling): checked once, then served from the cache until it expires. */
  verify(token: unknown): Principal;
  /**
   * A token presented once for a connection (a socket handshake): served from the cache when a
   * REST call put it there, but never added to it. A connection would keep its entry for its whole
   * life and, past the cache's size, push the REST callers' repeated tokens out.
   */
  verifyConnection(token: unknown): Principal;
}

/** The settings a verifier is built from (lib/config.ts: JWT_SECRET, JWT_PUBLIC_KEY, JWT_CLOCK_SKEW_SECONDS, JWT_ISSUER, JWT_AUDIENCE). */
export type TokenSettings = Pick<Config, "jwtSecret" | "jwtPublicKey"> & Partial<Pick<Config, "jwtClockSkewSeconds" | "jwtIssuer" | "jwtAudience">>;

/** Default tolerance for `exp` and `nbf` when the settings name none (JWT_CLOCK_SKEW_SECONDS). */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

/**
 * The one algorithm a configured public key verifies, decided by the key itself: RSA → RS256,
 * EC P-256 → ES256 (P-384 → ES384, P-521 → ES512). Any other key type is a configuration error.
 */
export function algorithmOfPublicKey(key: KeyObject): Algorithm {
  if (key.asymmetricKeyType === "rsa") return "RS256";
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return "ES256";
    if (curve === "secp384r1") return "ES384";
    if (curve === "secp521r1") return "ES512";
    throw new Error(`JWT_PUBLIC_KEY: unsupported EC curve '${String(curve)}' (use P-256, P-384 or P-521)`);
  }
  throw new Error(`JWT_PUBLIC_KEY: unsupported key type '${String(key.asymmetricKeyType)}' (use an RSA or EC public key)`);
}

/**
 * Verifies PF-2 tokens. Each configured key accepts exactly one algorithm, derived from the key:
 * HS256 for JWT_SECRET, RS256 or ES256 (by key type) for JWT_PUBLIC_KEY. So `alg: none`, an
 * algorithm not configured, and key confusion (an HS256 token whose HMAC key is the public key
 * PEM) are all refused before any signature is checked. `exp` and `nbf` are enforced with
 * JWT_CLOCK_SKEW_SECONDS of tolerance; `iss` / `aud` when JWT_ISSUER / JWT_AUDIENCE are set.
 */
export function createTokenVerifier(config: TokenSettings): TokenVerifier {
  // KeyObjects are parsed once: with a string key jsonwebtoken re-imports it on every verify
  // (~330 µs instead of ~7 µs for HS256), which would dominate connection set-up.
  const keys = new Map<string, KeyObject>();
  if (config.jwtSecret) keys.set("HS256", createSecretKey(Buffer.from(config.jwtSecret, "utf8")));
  if (config.jwtPublicKey) {
    const key = createPublicKey(config.jwtPublicKey);
    if (key.type !== "public") throw new Error("JWT_PUBLIC_KEY must be a public key");
    keys.set(algorithmOfPublicKey(key), key);
  }
  if (keys.size === 0) throw new Error("No JWT key configured");
  const clockTolerance = config.jwtClockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const issuer = config.jwtIssuer && config.jwtIssuer.length > 0 ? config.jwtIssuer : undefined;
  const audience = config.jwtAudience && config.jwtAudience.length > 0 ? config.jwtAudience : undefined;

  const verified = new VerifiedTokenCache(clockTolerance);
  const options: jwt.VerifyOptions = {
    algorithms: [...keys.keys()] as Algorithm[],
    clockTolerance,
    ...(issuer ? { issuer: issuer as [string, ...string[]] } : {}),
    ...(audience ? { audience: audience as [string, ...string[]] } : {})
  };

  // The key is picked inside jwt.verify, from the header it decodes anyway (decoding it here
  // first cost a second base64 and JSON.parse per token). With a key callback that answers at
  // once, jwt.verify runs its callback before it returns.
  const check = (token: string): Principal => {
    let refused: RealtimeError | undefined;
    let payload: string | JwtPayload | undefined;
    jwt.verify(
      token,
      (header, use) => {
        const alg = typeof header.alg === "string" ? header.alg : "";
        const key = keys.get(alg);
        if (key) return use(null, key);
        refused = authFailed("Token algorithm not accepted", { alg: alg.slice(0, 16) });
        use(refused);
      },
      options,
      (err, verified) => {
        if (err) refused ??= refusal(err);
        else payload = verified;
      }
    );
    if (refused) throw refused;
    // Fails closed should a jsonwebtoken version ever answer later than it returns.
    if (payload === undefined) throw authFailed("Invalid token", { reason: "invalid" });
    return principalFrom(payload);
  };

  return {
    verify(token: unknown): Principal {
      assertTokenText(token);
      const cached = verified.get(token);
      if (cached) return cached;
      const principal = check(token);
      verified.set(token, principal);
      return principal;
    },
    verifyConnection(token: unknown): Principal {
      assertTokenText(token);
      return verified.get(token) ?? check(token);
    }
  };
}

function assertTokenText(token: unknown): asserts token is string {
  if (typeof token !== "string" || token.length === 0) throw authFailed("Missing token");
  if (token.length > 8192) throw authFailed("Malformed token");
}

function refusal(err: unknown): RealtimeError {
  if (err instanceof jwt.TokenExpiredError) return authFailed("Token expired", { reason: "expired" });
  if (err instanceof jwt.NotBeforeError) return authFailed("Token not yet valid", { reason: "not_before" });
  const message = err instanceof Error ? err.message : "";
  if (message === "jwt malformed" || message === "invalid token") return authFailed("Malformed token");
  if (message.startsWith("jwt issuer invalid")) return authFailed("Token issuer not accepted", { reason: "issuer" });
  if (message.startsWith("jwt audience invalid")) return authFailed("Token audience not accepted", { reason: "audience" });
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
  if (tenantId === RESERVED_TENANT) throw authFailed("Token names a reserved tenant", { reason: "claims" });
  if (!isIdentifier(userId)) throw authFailed("Token lacks a valid userId claim", { reason: "claims" });
  return {
    tenantId,
    userId,
    role: isIdentifier(role) ? role : "user",
    exp: typeof exp === "number" ? exp : undefined
  };
}

/** A claim under its name or its snake_case alias; an integer alias (`"user_id": 123`) becomes a string. */
function claimOf(claims: Record<string, unknown>, name: string, alias: string): unknown {
  const value = claims[name];
  const raw = claims[alias];
  const aliased = typeof raw === "number" && Number.isSafeInteger(raw) ? String(raw) : raw;
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

/** A request's JWT: `Authorization: Bearer`, or `X-User-Token` (seed 004 clients send it there). */
export function requestToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const userToken = headers["x-user-token"];
  return bearerToken(headers.authorization) ?? (typeof userToken === "string" && userToken.length > 0 ? userToken : undefined);
}
