import { startNode, type TestNode } from "../helpers/node";
import { tokenFor } from "../helpers/tokens";
import { send, seedErrorProblem, type Answer } from "../helpers/http";

/**
 * REST hardening (issue #5): `X-RateLimit-*` on every `/api/*` response, 429 `RATE_LIMIT` past the
 * limit, and every error path answering the seed 000 table `{error, code, details?}` with its
 * status and never a stack, including moleculer-web's own refusals (route not found, malformed
 * or oversized bodies).
 */

const auth = (tenantId: string, userId: string, role = "user") => ({ Authorization: `Bearer ${tokenFor(tenantId, userId, { role })}`, "X-Tenant-ID": tenantId });

/** The seed's error shape: known code, matching status, a string message, nothing else but details; no stack. */
function expectSeedError(answer: Answer, code?: string) {
  expect(seedErrorProblem(answer)).toBeUndefined();
  if (code) expect(answer.body?.code).toBe(code);
}

function rateHeaders(answer: Answer) {
  return {
    limit: Number(answer.headers["x-ratelimit-limit"]),
    remaining: Number(answer.headers["x-ratelimit-remaining"]),
    reset: Number(answer.headers["x-ratelimit-reset"])
  };
}

describe("REST rate limits (X-RateLimit-*, 429 RATE_LIMIT)", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode({ config: { apiRateLimit: 5, pollRateLimit: 3 } });
  });
  afterAll(() => node.stop());

  it("carries the general limit on every answer and refuses past it with 429 RATE_LIMIT", async () => {
    const seen = [];
    for (let i = 0; i < 5; i++) {
      const answer = await send(node.url, "GET", "/api/presence/u2", auth("t1", "counted"));
      expect(answer.status).toBe(200);
      seen.push(rateHeaders(answer));
    }
    const nowSeconds = Date.now() / 1000;
    expect(seen.map(h => h.limit)).toEqual([5, 5, 5, 5, 5]);
    expect(seen.map(h => h.remaining)).toEqual([4, 3, 2, 1, 0]);
    for (const h of seen) {
      expect(h.reset).toBeGreaterThanOrEqual(Math.floor(nowSeconds));
      expect(h.reset).toBeLessThanOrEqual(Math.ceil(nowSeconds) + 60);
    }

    const refused = await send(node.url, "GET", "/api/presence/u2", auth("t1", "counted"));
    expect(refused.status).toBe(429);
    expectSeedError(refused, "RATE_LIMIT");
    expect(refused.body?.details).toMatchObject({ limit: 5, windowMs: 60_000, retryAfterMs: expect.any(Number) });
    expect(rateHeaders(refused)).toMatchObject({ limit: 5, remaining: 0 });
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(rateHeaders(refused).reset).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));

    // Per user: another user of the same tenant, and the same user id in another tenant, are not affected.
    expect((await send(node.url, "GET", "/api/presence/u2", auth("t1", "other-user"))).status).toBe(200);
    expect((await send(node.url, "GET", "/api/presence/u2", auth("t2", "counted"))).status).toBe(200);
  });

  it("shows the tighter limit of a route that has its own (poll: POLL_RATE_LIMIT)", async () => {
    const polls = [];
    for (let i = 0; i < 3; i++) polls.push(await send(node.url, "GET", "/api/events/poll", auth("t1", "poller")));
    expect(polls.map(p => p.status)).toEqual([200, 200, 200]);
    expect(polls.map(p => rateHeaders(p).limit)).toEqual([3, 3, 3]);
    expect(polls.map(p => rateHeaders(p).remaining)).toEqual([2, 1, 0]);
    const refused = await send(node.url, "GET", "/api/events/poll", auth("t1", "poller"));
    expect(refused.status).toBe(429);
    expectSeedError(refused, "RATE_LIMIT");
    expect(rateHeaders(refused)).toMatchObject({ limit: 3, remaining: 0 });
    // The general limit still counts those requests: 4 of 5 used.
    const other = await send(node.url, "GET", "/api/presence/x", auth("t1", "poller"));
    expect(rateHeaders(other)).toMatchObject({ limit: 5, remaining: 0 });
  });

  it("carries the headers on refusals too: 401, 403, 404, malformed JSON", async () => {
    const answers = [
      await send(node.url, "GET", "/api/presence/u2", { Authorization: "Bearer nope", "X-Tenant-ID": "t1" }),
      await send(node.url, "GET", "/api/presence/u2", { ...auth("t1", "h1"), "X-Tenant-ID": "t9" }),
      await send(node.url, "GET", "/api/no/such/route", auth("t1", "h2")),
      await send(node.url, "POST", "/api/rooms", { ...auth("t1", "h3", "admin"), "Content-Type": "application/json" }, "{not json")
    ];
    expect(answers.map(a => a.status)).toEqual([401, 403, 404, 400]);
    for (const a of answers) {
      expectSeedError(a);
      expect(rateHeaders(a).limit).toBe(5);
      expect(Number.isInteger(rateHeaders(a).remaining)).toBe(true);
    }
  });

  it("counts callers without a valid token by address, apart from users", async () => {
    const anonymous = await startNode({ config: { apiRateLimit: 2 } });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await send(anonymous.url, "GET", "/api/presence/u2", { Authorization: "Bearer garbage" })).status);
      expect(statuses).toEqual([401, 401, 429]);
      expect((await send(anonymous.url, "GET", "/api/presence/u2", auth("t1", "u1"))).status).toBe(200);
    } finally {
      await anonymous.stop();
    }
  });

  it("does not put rate-limit headers on /health", async () => {
    const health = await send(node.url, "GET", "/health/live");
    expect(health.status).toBe(200);
    expect(health.headers["x-ratelimit-limit"]).toBeUndefined();
  });
});

describe("REST error bodies follow seed 000 on every path", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(() => node.stop());

  const json = (tenantId: string, userId: string, role = "user") => ({ ...auth(tenantId, userId, role), "Content-Type": "application/json" });

  it.each([
    ["no token", "GET", "/api/presence/u1", {}, undefined, 401, "AUTH_FAILED"],
    ["a forged token", "GET", "/api/presence/u1", { Authorization: "Bearer a.b.c", "X-Tenant-ID": "t1" }, undefined, 401, "AUTH_FAILED"],
    ["another tenant's header", "GET", "/api/presence/u1", { ...auth("t1", "u"), "X-Tenant-ID": "t2" }, undefined, 403, "TENANT_VIOLATION"],
    ["another tenant in the query", "GET", "/api/presence/u1?tenantId=t2", auth("t1", "u"), undefined, 403, "TENANT_VIOLATION"],
    ["another tenant in the body", "POST", "/api/rooms", json("t1", "boss", "admin"), JSON.stringify({ roomId: "r", tenantId: "t2" }), 403, "TENANT_VIOLATION"],
    ["no X-Tenant-ID", "GET", "/api/presence/u1", { Authorization: `Bearer ${tokenFor("t1", "u")}` }, undefined, 400, "INVALID_REQUEST"],
    ["a role that may not publish", "POST", "/api/events/publish", json("t1", "u"), JSON.stringify({ eventType: "x" }), 403, "AUTHZ_FAILED"],
    ["an unknown route", "GET", "/api/unknown", auth("t1", "u"), undefined, 404, "NOT_FOUND"],
    ["an unknown method on a route", "DELETE", "/api/rooms/r1", auth("t1", "u"), undefined, 404, "NOT_FOUND"],
    ["a path outside every route", "GET", "/nothing/here", {}, undefined, 404, "NOT_FOUND"],
    ["malformed JSON", "POST", "/api/rooms", json("t1", "boss", "admin"), "{\"roomId\": ", 400, "INVALID_REQUEST"],
    ["a JSON body that is not an object", "POST", "/api/rooms", json("t1", "boss", "admin"), "\"just a string\"", 400, "INVALID_REQUEST"],
    ["a body over the limit", "POST", "/api/rooms", json("t1", "boss", "admin"), JSON.stringify({ roomId: "r", members: ["x".repeat(300 * 1024)] }), 413, "INVALID_REQUEST"],
    ["an unsupported charset", "POST", "/api/rooms", { ...auth("t1", "boss", "admin"), "Content-Type": "application/json; charset=klingon" }, "{}", 400, "INVALID_REQUEST"],
    ["an unsupported content encoding", "POST", "/api/rooms", { ...json("t1", "boss", "admin"), "Content-Encoding": "zstd-nope" }, "{}", 400, "INVALID_REQUEST"],
    ["invalid params", "GET", `/api/presence/${"x".repeat(200)}`, auth("t1", "u"), undefined, 400, "INVALID_REQUEST"],
    ["a malformed percent-encoding", "GET", "/api/presence/%E0%A4%A", auth("t1", "u"), undefined, 400, "INVALID_REQUEST"],
    ["a wrongly typed query", "GET", "/api/events/poll?limit=lots", auth("t1", "u"), undefined, 400, "INVALID_REQUEST"],
    ["a missing room", "GET", "/api/rooms/none", auth("t1", "boss", "admin"), undefined, 404, "NOT_FOUND"]
  ])("answers %s with the seed's shape", async (_label, method, path, headers, body, status, code) => {
    const answer = await send(node.url, method as string, path as string, headers as Record<string, string>, body as string | undefined);
    expect([answer.status, answer.body?.code]).toEqual([status, code]);
    expectSeedError(answer, code as string);
  });
});
