import { ServerResponse, IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { ANONYMOUS_TENANT, callerBucket, rateLimitState, setRateLimitHeaders, tighter } from "../../protocols/rest-rate-limit";
import { createTokenVerifier } from "../../lib/auth";
import { admits, isRoomAdmin } from "../../lib/room-access";
import { TEST_SECRET, tokenFor } from "../helpers/tokens";

describe("REST rate-limit arithmetic", () => {
  const now = 1_700_000_030_500; // 30.5 s into a minute

  it("resets an allowed request at the end of the current window", () => {
    expect(rateLimitState({ allowed: true, remaining: 7, retryAfterMs: 0 }, 10, 60_000, now)).toEqual({ limit: 10, remaining: 7, resetAt: 1_700_000_040_000 });
  });

  it("resets a refused request when a request will pass again, with nothing remaining", () => {
    expect(rateLimitState({ allowed: false, remaining: 0, retryAfterMs: 1234 }, 10, 60_000, now)).toEqual({ limit: 10, remaining: 0, resetAt: now + 1234 });
  });

  it("picks the limit that bites first", () => {
    const general = { limit: 600, remaining: 590, resetAt: 2 };
    const poll = { limit: 60, remaining: 3, resetAt: 1 };
    expect(tighter(general, poll)).toBe(poll);
    expect(tighter(poll, general)).toBe(poll);
    expect(tighter(general, undefined)).toBe(general);
    expect(tighter(undefined, poll)).toBe(poll);
    expect(tighter({ limit: 5, remaining: 0, resetAt: 10 }, { limit: 9, remaining: 0, resetAt: 20 })).toEqual({ limit: 9, remaining: 0, resetAt: 20 });
  });

  it("writes the three headers in whole numbers, Reset in epoch seconds", () => {
    const res = new ServerResponse(new IncomingMessage(new Socket()));
    setRateLimitHeaders(res, { limit: 10, remaining: 3.7, resetAt: 1_700_000_040_001 });
    expect(res.getHeader("X-RateLimit-Limit")).toBe("10");
    expect(res.getHeader("X-RateLimit-Remaining")).toBe("3");
    expect(res.getHeader("X-RateLimit-Reset")).toBe("1700000041");
  });

  it("counts a verified caller as its user and anyone else by address", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
    const req = (headers: Record<string, string>) => Object.assign(new IncomingMessage(new Socket()), { headers });
    expect(callerBucket(verifier, req({ authorization: `Bearer ${tokenFor("t1", "u1")}` }))).toEqual({ tenantId: "t1", key: "api:user:u1" });
    expect(callerBucket(verifier, req({ "x-user-token": tokenFor("t2", "u2") }))).toEqual({ tenantId: "t2", key: "api:user:u2" });
    expect(callerBucket(verifier, req({ authorization: "Bearer forged" }))).toEqual({ tenantId: ANONYMOUS_TENANT, key: "api:ip:unknown" });
    expect(callerBucket(verifier, req({}))).toMatchObject({ tenantId: "" });
  });
});

describe("room admission", () => {
  const user = { role: "user" };
  it("admits anyone to a room without settings or a public one", () => {
    expect(admits(undefined, user)).toBe(true);
    expect(admits({ private: false, allowedRoles: [], isMember: false }, user)).toBe(true);
  });

  it("admits to a private room its members and allowed roles only", () => {
    expect(admits({ private: true, allowedRoles: [], isMember: true }, user)).toBe(true);
    expect(admits({ private: true, allowedRoles: ["moderator"], isMember: false }, { role: "moderator" })).toBe(true);
    expect(admits({ private: true, allowedRoles: ["moderator"], isMember: false }, user)).toBe(false);
    expect(admits({ private: true, allowedRoles: [], isMember: false }, { role: "super_admin" })).toBe(false);
  });

  it("lets admin, service and super_admin manage rooms", () => {
    expect(["admin", "service", "super_admin", "user", "moderator"].map(role => isRoomAdmin({ role }))).toEqual([true, true, true, false, false]);
  });
});
