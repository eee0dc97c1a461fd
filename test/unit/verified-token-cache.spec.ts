import jwt from "jsonwebtoken";
import { createTokenVerifier } from "../../lib/auth";
import { VerifiedTokenCache } from "../../lib/verified-token-cache";
import { TEST_SECRET, tokenFor } from "../helpers/tokens";

const principal = (exp?: number) => ({ tenantId: "t", userId: "u", role: "user", exp });

describe("VerifiedTokenCache", () => {
  it("serves a cached token until exp plus the tolerance has passed, then forgets it", () => {
    const cache = new VerifiedTokenCache(30);
    const exp = 1_000_000;
    cache.set("tok", principal(exp));
    expect(cache.get("tok", (exp + 29) * 1000)).toEqual(principal(exp));
    expect(cache.get("tok", (exp + 30) * 1000)).toBeUndefined();
    // Refused for good: an earlier clock reading does not bring it back.
    expect(cache.get("tok", exp * 1000)).toBeUndefined();
  });

  it("keeps a token without exp", () => {
    const cache = new VerifiedTokenCache(0);
    cache.set("tok", principal());
    expect(cache.get("tok", Date.now() + 1e12)).toEqual(principal());
  });

  it("hands out copies, so a caller changing one cannot change another caller's principal", () => {
    const cache = new VerifiedTokenCache(30);
    const original = principal();
    cache.set("tok", original);
    original.tenantId = "changed-after-set";
    const first = cache.get("tok") as ReturnType<typeof principal>;
    first.tenantId = "changed-after-get";
    expect(cache.get("tok")?.tenantId).toBe("t");
  });

  it("drops the oldest token when full", () => {
    const cache = new VerifiedTokenCache(30, 2);
    cache.set("a", principal());
    cache.set("b", principal());
    cache.set("c", principal());
    expect([cache.get("a"), cache.get("b"), cache.get("c")].map(Boolean)).toEqual([false, true, true]);
    expect(cache.size).toBe(2);
  });
});

describe("createTokenVerifier with its cache", () => {
  it("answers a repeated token the same way and never caches a refusal", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
    const token = tokenFor("acme", "svc", { role: "service" });
    const first = verifier.verify(token);
    expect(verifier.verify(token)).toEqual(first);
    const [header, payload] = token.split(".");
    const forged = `${header}.${payload}.${Buffer.from("not the signature").toString("base64url")}`;
    expect(() => verifier.verify(forged)).toThrow("Invalid token");
    expect(() => verifier.verify(forged)).toThrow("Invalid token");
  });

  it("refuses a cached token once it has expired beyond the tolerance", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined, jwtClockSkewSeconds: 0 });
    const now = Date.now();
    const token = jwt.sign({ tenantId: "acme", userId: "u", exp: Math.floor(now / 1000) + 2 }, TEST_SECRET, { algorithm: "HS256" });
    expect(verifier.verify(token).userId).toBe("u");
    const spy = jest.spyOn(Date, "now").mockReturnValue(now + 3000);
    try {
      expect(() => verifier.verify(token)).toThrow("Token expired");
    } finally {
      spy.mockRestore();
    }
  });

  it("keeps tokens verifiers apart: another secret does not accept what one verifier cached", () => {
    const token = tokenFor("acme", "u");
    createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined }).verify(token);
    const other = createTokenVerifier({ jwtSecret: "another-secret-entirely-0123456789", jwtPublicKey: undefined });
    expect(() => other.verify(token)).toThrow("Invalid token");
  });

  it("serves a connection's token from the cache REST filled, but never adds one a connection presents", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
    const spy = jest.spyOn(jwt, "verify");
    try {
      const socketToken = tokenFor("acme", "socket-user");
      expect(verifier.verifyConnection(socketToken).userId).toBe("socket-user");
      expect(verifier.verifyConnection(socketToken).userId).toBe("socket-user");
      expect(spy).toHaveBeenCalledTimes(2);
      const restToken = tokenFor("acme", "rest-user");
      verifier.verify(restToken);
      expect(verifier.verifyConnection(restToken).userId).toBe("rest-user");
      expect(spy).toHaveBeenCalledTimes(3);
      expect(() => verifier.verifyConnection("")).toThrow("Missing token");
      expect(() => verifier.verifyConnection("x".repeat(8193))).toThrow("Malformed token");
    } finally {
      spy.mockRestore();
    }
  });
});
