import { generateKeyPairSync } from "node:crypto";
import jwt, { type SignOptions } from "jsonwebtoken";

export const TEST_SECRET = "test-secret-for-pf2";

/** An HS256 token signed with TEST_SECRET; claims default to a normal user valid for an hour. */
export function tokenFor(tenantId: string, userId: string, extra: Record<string, unknown> = {}, options: SignOptions = {}): string {
  return jwt.sign({ tenantId, userId, ...extra }, TEST_SECRET, { algorithm: "HS256", expiresIn: "1h", ...options });
}

export function expiredToken(tenantId: string, userId: string): string {
  return jwt.sign({ tenantId, userId, exp: Math.floor(Date.now() / 1000) - 60 }, TEST_SECRET, { algorithm: "HS256" });
}

/** An unsigned token (`alg: none`), which must always be refused. */
export function unsignedToken(tenantId: string, userId: string): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ tenantId, userId, exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}

export function rsaKeys() {
  return generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
}

export function ecKeys() {
  return generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
}
