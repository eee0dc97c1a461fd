import { createHmac } from "node:crypto";
import jwt from "jsonwebtoken";
import { generateKeyPairSync } from "node:crypto";
import { algorithmOfPublicKey, bearerToken, createTokenVerifier, isIdentifier } from "../../lib/auth";
import { RealtimeError } from "../../lib/errors";
import { ecKeys, expiredToken, rsaKeys, TEST_SECRET, tokenFor, unsignedToken } from "../helpers/tokens";

const rsa = rsaKeys();
const ec = ecKeys();
const otherRsa = rsaKeys();

const hsVerifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
const rsaVerifier = createTokenVerifier({ jwtSecret: undefined, jwtPublicKey: rsa.publicKey });
const ecVerifier = createTokenVerifier({ jwtSecret: undefined, jwtPublicKey: ec.publicKey });

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A token signed by hand, so any header and any HMAC key can be forged. */
function hmacToken(header: object, payload: object, key: string | Buffer): string {
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${createHmac("sha256", key).update(body).digest("base64url")}`;
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Runs `fn` and returns the AUTH_FAILED RealtimeError it must throw. */
function authFailure(fn: () => unknown): RealtimeError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(RealtimeError);
  const error = thrown as RealtimeError;
  expect(error.type).toBe("AUTH_FAILED");
  expect(error.code).toBe(401);
  return error;
}

describe("createTokenVerifier", () => {
  it("refuses to be built without any key", () => {
    expect(() => createTokenVerifier({ jwtSecret: undefined, jwtPublicKey: undefined })).toThrow("No JWT key configured");
  });

  describe("accepted tokens", () => {
    it("verifies an HS256 token and returns its principal", () => {
      const token = tokenFor("tenant-1", "user-1");
      const exp = (jwt.decode(token) as { exp: number }).exp;
      expect(hsVerifier.verify(token)).toEqual({ tenantId: "tenant-1", userId: "user-1", role: "user", exp });
    });

    it("keeps an explicit role and defaults a missing or invalid one to user", () => {
      expect(hsVerifier.verify(tokenFor("t", "u", { role: "admin" })).role).toBe("admin");
      expect(hsVerifier.verify(tokenFor("t", "u", { role: "service" })).role).toBe("service");
      expect(hsVerifier.verify(tokenFor("t", "u")).role).toBe("user");
      expect(hsVerifier.verify(tokenFor("t", "u", { role: 42 })).role).toBe("user");
      expect(hsVerifier.verify(tokenFor("t", "u", { role: "" })).role).toBe("user");
      expect(hsVerifier.verify(tokenFor("t", "u", { role: "bad\nrole" })).role).toBe("user");
    });

    it("accepts a token without exp and leaves exp undefined", () => {
      const token = jwt.sign({ tenantId: "t", userId: "u" }, TEST_SECRET, { algorithm: "HS256" });
      expect(hsVerifier.verify(token)).toEqual({ tenantId: "t", userId: "u", role: "user", exp: undefined });
    });

    it("verifies RS256 with JWT_PUBLIC_KEY", () => {
      const token = jwt.sign({ tenantId: "t-rsa", userId: "u-rsa", role: "admin" }, rsa.privateKey, { algorithm: "RS256", expiresIn: "1h" });
      expect(rsaVerifier.verify(token)).toMatchObject({ tenantId: "t-rsa", userId: "u-rsa", role: "admin" });
    });

    it("verifies ES256 with JWT_PUBLIC_KEY", () => {
      const token = jwt.sign({ tenantId: "t-ec", userId: "u-ec" }, ec.privateKey, { algorithm: "ES256", expiresIn: "1h" });
      expect(ecVerifier.verify(token)).toMatchObject({ tenantId: "t-ec", userId: "u-ec", role: "user" });
    });

    it("accepts both kinds when a secret and a public key are configured", () => {
      const both = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: rsa.publicKey });
      expect(both.verify(tokenFor("t", "hs")).userId).toBe("hs");
      const rs = jwt.sign({ tenantId: "t", userId: "rs" }, rsa.privateKey, { algorithm: "RS256" });
      expect(both.verify(rs).userId).toBe("rs");
    });
  });

  describe("refused tokens (AUTH_FAILED)", () => {
    it("refuses a token signed with another secret", () => {
      const token = jwt.sign({ tenantId: "t", userId: "u" }, "not-the-secret", { algorithm: "HS256" });
      expect(authFailure(() => hsVerifier.verify(token)).data).toEqual({ reason: "invalid" });
    });

    it("refuses a tampered payload", () => {
      const [header, , signature] = tokenFor("t", "u").split(".");
      const forged = `${header}.${b64({ tenantId: "other-tenant", userId: "u", exp: inAnHour() })}.${signature}`;
      authFailure(() => hsVerifier.verify(forged));
    });

    it("refuses an expired token", () => {
      const error = authFailure(() => hsVerifier.verify(expiredToken("t", "u")));
      expect(error.data).toEqual({ reason: "expired" });
    });

    it("refuses a token that is not valid yet", () => {
      const token = tokenFor("t", "u", {}, { notBefore: "1h" });
      expect(authFailure(() => hsVerifier.verify(token)).data).toEqual({ reason: "not_before" });
    });

    it("refuses alg none, whatever keys are configured", () => {
      authFailure(() => hsVerifier.verify(unsignedToken("t", "u")));
      authFailure(() => rsaVerifier.verify(unsignedToken("t", "u")));
      const both = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: ec.publicKey });
      authFailure(() => both.verify(unsignedToken("t", "u")));
      // "none" with a signature attached, and a lower-case variant.
      const withSig = `${b64({ alg: "none", typ: "JWT" })}.${b64({ tenantId: "t", userId: "u" })}.c2ln`;
      authFailure(() => hsVerifier.verify(withSig));
      authFailure(() => hsVerifier.verify(hmacToken({ alg: "None", typ: "JWT" }, { tenantId: "t", userId: "u" }, TEST_SECRET)));
    });

    it("refuses algorithms outside the allow-list", () => {
      const hs512 = jwt.sign({ tenantId: "t", userId: "u" }, TEST_SECRET, { algorithm: "HS512" });
      expect(authFailure(() => hsVerifier.verify(hs512)).data).toEqual({ alg: "HS512" });
      const rs512 = jwt.sign({ tenantId: "t", userId: "u" }, rsa.privateKey, { algorithm: "RS512" });
      authFailure(() => rsaVerifier.verify(rs512));
    });

    it("refuses an HS256 token when only a public key is configured (algorithm confusion)", () => {
      // The classic attack: HMAC-sign with the public key, which the attacker knows.
      const payload = { tenantId: "t", userId: "attacker", role: "super_admin", exp: inAnHour() };
      const confused = hmacToken({ alg: "HS256", typ: "JWT" }, payload, rsa.publicKey);
      authFailure(() => rsaVerifier.verify(confused));
      authFailure(() => ecVerifier.verify(hmacToken({ alg: "HS256", typ: "JWT" }, payload, ec.publicKey)));
      // With a secret also configured, HS256 is checked against the secret only.
      const both = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: rsa.publicKey });
      authFailure(() => both.verify(confused));
    });

    it("refuses RS256 and ES256 tokens signed by another key", () => {
      const foreign = jwt.sign({ tenantId: "t", userId: "u" }, otherRsa.privateKey, { algorithm: "RS256" });
      authFailure(() => rsaVerifier.verify(foreign));
      const otherEc = ecKeys();
      authFailure(() => ecVerifier.verify(jwt.sign({ tenantId: "t", userId: "u" }, otherEc.privateKey, { algorithm: "ES256" })));
    });

    it("refuses an asymmetric token when only a secret is configured", () => {
      const rs = jwt.sign({ tenantId: "t", userId: "u" }, rsa.privateKey, { algorithm: "RS256" });
      authFailure(() => hsVerifier.verify(rs));
    });

    it.each([
      ["missing tenantId", { userId: "u" }],
      ["missing userId", { tenantId: "t" }],
      ["numeric tenantId", { tenantId: 42, userId: "u" }],
      ["numeric userId", { tenantId: "t", userId: 7 }],
      ["object tenantId", { tenantId: { id: "t" }, userId: "u" }],
      ["array userId", { tenantId: "t", userId: ["u"] }],
      ["null tenantId", { tenantId: null, userId: "u" }],
      ["empty tenantId", { tenantId: "", userId: "u" }],
      ["empty userId", { tenantId: "t", userId: "" }],
      ["control character in tenantId", { tenantId: "t\u0000x", userId: "u" }],
      ["newline in userId", { tenantId: "t", userId: "u\nx" }],
      ["overlong userId", { tenantId: "t", userId: "u".repeat(129) }]
    ])("refuses a token with %s", (_label, claims) => {
      const token = jwt.sign(claims, TEST_SECRET, { algorithm: "HS256", expiresIn: "1h" });
      expect(authFailure(() => hsVerifier.verify(token)).data).toEqual({ reason: "claims" });
    });

    it("refuses a token whose payload is not an object", () => {
      const token = jwt.sign("just-a-string", TEST_SECRET, { algorithm: "HS256" });
      authFailure(() => hsVerifier.verify(token));
    });

    it.each([
      ["garbage", "this is not a jwt"],
      ["three garbage parts", "aaa.bbb.ccc"],
      ["bad JSON header", `${Buffer.from("{not json").toString("base64url")}.${b64({ tenantId: "t", userId: "u" })}.sig`],
      ["truncated token", tokenFor("t", "u").split(".").slice(0, 2).join(".")],
      ["empty string", ""],
      ["overlong token", `${tokenFor("t", "u")}${"a".repeat(9000)}`]
    ])("refuses a %s", (_label, token) => {
      authFailure(() => hsVerifier.verify(token));
    });

    it.each([
      ["undefined", undefined],
      ["null", null],
      ["a number", 12345],
      ["an object", { token: tokenFor("t", "u") }],
      ["an array", [tokenFor("t", "u")]],
      ["a Buffer", Buffer.from(tokenFor("t", "u"))]
    ])("refuses %s instead of a string", (_label, token: unknown) => {
      authFailure(() => hsVerifier.verify(token));
    });
  });
});

describe("token hardening", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const hs = (claims: object) => jwt.sign({ tenantId: "t", userId: "u", ...claims }, TEST_SECRET, { algorithm: "HS256" });

  describe("one algorithm per configured key, derived from the key", () => {
    it("maps RSA to RS256 and the EC curves to ES256/ES384/ES512", () => {
      const { createPublicKey } = require("node:crypto") as typeof import("node:crypto");
      expect(algorithmOfPublicKey(createPublicKey(rsa.publicKey))).toBe("RS256");
      expect(algorithmOfPublicKey(createPublicKey(ec.publicKey))).toBe("ES256");
      const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
      expect(algorithmOfPublicKey(p384.publicKey)).toBe("ES384");
      const ed = generateKeyPairSync("ed25519");
      expect(() => algorithmOfPublicKey(ed.publicKey)).toThrow("unsupported key type");
      const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
      expect(() => algorithmOfPublicKey(k1.publicKey)).toThrow("unsupported EC curve");
    });

    it("refuses to start with a key type it cannot verify", () => {
      const ed = generateKeyPairSync("ed25519", { publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
      expect(() => createTokenVerifier({ jwtSecret: undefined, jwtPublicKey: ed.publicKey })).toThrow("JWT_PUBLIC_KEY");
    });

    it("an RSA key accepts RS256 only, an EC key ES256 only", () => {
      const p384 = generateKeyPairSync("ec", { namedCurve: "P-384", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
      const es384 = jwt.sign({ tenantId: "t", userId: "u" }, p384.privateKey, { algorithm: "ES384" });
      expect(createTokenVerifier({ jwtSecret: undefined, jwtPublicKey: p384.publicKey }).verify(es384).userId).toBe("u");
      // A P-384 token against the P-256 key, and an ES256 token against the RSA key, are refused by algorithm.
      expect(authFailure(() => ecVerifier.verify(es384)).data).toEqual({ alg: "ES384" });
      const es256 = jwt.sign({ tenantId: "t", userId: "u" }, ec.privateKey, { algorithm: "ES256" });
      expect(authFailure(() => rsaVerifier.verify(es256)).data).toEqual({ alg: "ES256" });
      const rs256 = jwt.sign({ tenantId: "t", userId: "u" }, rsa.privateKey, { algorithm: "RS256" });
      expect(authFailure(() => ecVerifier.verify(rs256)).data).toEqual({ alg: "RS256" });
      // PS256 uses an RSA key too, but was not configured.
      const ps256 = jwt.sign({ tenantId: "t", userId: "u" }, rsa.privateKey, { algorithm: "PS256" });
      expect(authFailure(() => rsaVerifier.verify(ps256)).data).toEqual({ alg: "PS256" });
    });

    it("refuses key confusion in every spelling of the public key (PEM, trimmed PEM, DER)", () => {
      const payload = { tenantId: "t", userId: "attacker", role: "super_admin", exp: inAnHour() };
      const { createPublicKey } = require("node:crypto") as typeof import("node:crypto");
      const der = createPublicKey(rsa.publicKey).export({ type: "spki", format: "der" });
      for (const key of [rsa.publicKey, rsa.publicKey.trim(), der]) {
        for (const alg of ["HS256", "HS384", "HS512"]) {
          const forged = `${b64({ alg, typ: "JWT" })}.${b64(payload)}`;
          const digest = alg === "HS256" ? "sha256" : alg === "HS384" ? "sha384" : "sha512";
          const token = `${forged}.${createHmac(digest, key).update(forged).digest("base64url")}`;
          expect(authFailure(() => rsaVerifier.verify(token)).data).toEqual({ alg });
        }
      }
    });

    it("refuses a header that is not an object or has no alg", () => {
      authFailure(() => hsVerifier.verify(`${b64({ typ: "JWT" })}.${b64({ tenantId: "t", userId: "u" })}.sig`));
      authFailure(() => hsVerifier.verify(`${b64({ alg: ["HS256"] })}.${b64({ tenantId: "t", userId: "u" })}.sig`));
      authFailure(() => hsVerifier.verify(`${Buffer.from("[1]").toString("base64url")}.${b64({ tenantId: "t", userId: "u" })}.sig`));
    });
  });

  describe("exp and nbf with a clock-skew allowance", () => {
    it("accepts a token expired within the allowance (default 30 s) and refuses one beyond it", () => {
      expect(hsVerifier.verify(hs({ exp: now() - 10 })).userId).toBe("u");
      expect(authFailure(() => hsVerifier.verify(hs({ exp: now() - 45 }))).data).toEqual({ reason: "expired" });
    });

    it("accepts nbf within the allowance and refuses a token valid only later", () => {
      expect(hsVerifier.verify(hs({ nbf: now() + 10 })).userId).toBe("u");
      expect(authFailure(() => hsVerifier.verify(hs({ nbf: now() + 45 }))).data).toEqual({ reason: "not_before" });
    });

    it("uses JWT_CLOCK_SKEW_SECONDS", () => {
      const strict = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined, jwtClockSkewSeconds: 0 });
      expect(authFailure(() => strict.verify(hs({ exp: now() - 2 }))).data).toEqual({ reason: "expired" });
      expect(authFailure(() => strict.verify(hs({ nbf: now() + 5 }))).data).toEqual({ reason: "not_before" });
      const lenient = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined, jwtClockSkewSeconds: 120 });
      expect(lenient.verify(hs({ exp: now() - 90 })).userId).toBe("u");
      expect(authFailure(() => lenient.verify(hs({ exp: now() - 150 }))).data).toEqual({ reason: "expired" });
    });

    it("refuses non-numeric exp and nbf instead of ignoring them", () => {
      // Signed by hand: jsonwebtoken would not sign such claims.
      const header = { alg: "HS256", typ: "JWT" };
      for (const claims of [{ exp: "tomorrow" }, { nbf: "later" }, { exp: null }, { exp: [inAnHour()] }]) {
        expect(authFailure(() => hsVerifier.verify(hmacToken(header, { tenantId: "t", userId: "u", ...claims }, TEST_SECRET))).data).toEqual({ reason: "invalid" });
      }
    });
  });

  describe("iss and aud (JWT_ISSUER, JWT_AUDIENCE)", () => {
    const checked = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined, jwtIssuer: ["https://id.example", "https://id2.example"], jwtAudience: ["pf2"] });

    it("accepts a token from a configured issuer for a configured audience", () => {
      expect(checked.verify(hs({ iss: "https://id.example", aud: "pf2" })).userId).toBe("u");
      expect(checked.verify(hs({ iss: "https://id2.example", aud: ["other", "pf2"] })).userId).toBe("u");
    });

    it.each([
      ["a wrong issuer", { iss: "https://evil.example", aud: "pf2" }, "issuer"],
      ["no issuer", { aud: "pf2" }, "issuer"],
      ["a wrong audience", { iss: "https://id.example", aud: "billing" }, "audience"],
      ["no audience", { iss: "https://id.example" }, "audience"],
      ["an audience list without ours", { iss: "https://id.example", aud: ["a", "b"] }, "audience"]
    ])("refuses %s", (_label, claims, reason) => {
      expect(authFailure(() => checked.verify(hs(claims))).data).toEqual({ reason });
    });

    it("does not check iss/aud when they are not configured", () => {
      expect(hsVerifier.verify(hs({ iss: "anyone", aud: "anything" })).userId).toBe("u");
    });

    it("checks the signature before trusting iss/aud", () => {
      const forged = jwt.sign({ tenantId: "t", userId: "u", iss: "https://id.example", aud: "pf2" }, "wrong-secret", { algorithm: "HS256" });
      expect(authFailure(() => checked.verify(forged)).data).toEqual({ reason: "invalid" });
    });
  });
});

describe("isIdentifier", () => {
  it("accepts bounded printable strings, including ':' and unicode", () => {
    expect(isIdentifier("a")).toBe(true);
    expect(isIdentifier("a:b")).toBe(true);
    expect(isIdentifier("ユーザー😀")).toBe(true);
    expect(isIdentifier("x".repeat(128))).toBe(true);
  });

  it("refuses empty, overlong, control characters and non-strings", () => {
    expect(isIdentifier("")).toBe(false);
    expect(isIdentifier("x".repeat(129))).toBe(false);
    expect(isIdentifier("a\tb")).toBe(false);
    expect(isIdentifier("a\u007f")).toBe(false);
    expect(isIdentifier(1)).toBe(false);
    expect(isIdentifier(null)).toBe(false);
  });
});

describe("bearerToken", () => {
  it.each([
    ["Bearer abc.def.ghi", "abc.def.ghi"],
    ["bearer abc", "abc"],
    ["BEARER abc", "abc"],
    ["Bearer    abc  ", "abc"]
  ])("extracts the token from %j", (header, expected) => {
    expect(bearerToken(header)).toBe(expected);
  });

  it.each([
    ["Basic dXNlcjpwYXNz"],
    ["Bearer"],
    ["Bearer "],
    ["Bearer a b"],
    ["Token abc"],
    ["abc"],
    [""],
    [" Bearer abc"]
  ])("returns undefined for %j", header => {
    expect(bearerToken(header)).toBeUndefined();
  });

  it("returns undefined for a non-string header", () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken(["Bearer abc"])).toBeUndefined();
    expect(bearerToken(42)).toBeUndefined();
  });
});
