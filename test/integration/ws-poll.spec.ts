import { settle } from "../helpers/client";
import { startNode, type TestNode } from "../helpers/node";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";
import { expiredToken, tokenFor } from "../helpers/tokens";
import { wsConnect, type Frame, type WsClient } from "../helpers/ws-client";
import { fetchJson } from "../helpers/http";

/**
 * Seed 002's HTTP polling fallback (`/api/v1/realtime/poll`, `/poll/missed`) and its cursor, shared
 * with the WebSocket: a client moves between /ws and polling without losing or repeating an event.
 * Runs over the in-process log and over Redis Streams (their offsets map to numbers differently).
 */
const variants = [
  { name: "memory log", redis: false },
  { name: "Redis log", redis: true }
];

for (const variant of variants) {
  describe(`seed 002 HTTP polling (${variant.name})`, () => {
    let node: TestNode;
    const prefix = uniquePrefix("wspoll");
    const clients: WsClient[] = [];

    async function poll(userId: string, query: Record<string, string | number> = {}, init: { method?: string; body?: unknown; token?: string; headers?: Record<string, string>; path?: string } = {}) {
      const url = new URL(`${node.url}/api/v1/realtime${init.path ?? "/poll"}`);
      for (const [key, value] of Object.entries(query)) url.searchParams.set(key, String(value));
      return fetchJson(url, {
        method: init.method ?? "GET",
        headers: { authorization: `Bearer ${init.token ?? tokenFor("acme", userId)}`, ...(init.body !== undefined ? { "content-type": "application/json" } : {}), ...init.headers },
        body: init.body === undefined ? undefined : typeof init.body === "string" ? init.body : JSON.stringify(init.body)
      });
    }

    const notify = (userId: string, notification: Record<string, unknown>, tenantId = "acme") =>
      node.broker.call<{ eventId: string; position: string }, object>("push.notification", { tenantId, userId, eventKey: "test", notification });

    beforeAll(async () => {
      node = await startNode({ config: { pollV1RateLimit: 10_000, ...(variant.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {}) } });
    });
    afterEach(async () => {
      await Promise.all(clients.splice(0).map(c => c.close()));
    });
    afterAll(async () => {
      await node.stop();
      if (variant.redis) await dropPrefix(prefix);
    });

    it("starts at the end of the stream, then returns what is new as {events, last_poll_id, has_more}", async () => {
      await notify("p1", { id: "before" });
      const first = await poll("p1", { timeout: 0 });
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ events: [], last_poll_id: expect.any(Number), has_more: false });
      const pushed = await notify("p1", { id: "after" });
      await notify("someone-else", { id: "not-yours" });
      const second = await poll("p1", { last_poll_id: first.body.last_poll_id, timeout: 0 });
      expect(second.body).toEqual({
        events: [{ id: expect.any(Number), type: "notification", channel: "notifications", payload: { id: "after" }, timestamp: expect.any(String) }],
        last_poll_id: expect.any(Number),
        has_more: false
      });
      expect(second.body.events[0].id).toBeGreaterThan(first.body.last_poll_id);
      expect(second.body.last_poll_id).toBeGreaterThanOrEqual(second.body.events[0].id);
      expect(pushed.eventId).toEqual(expect.any(String));
      // POST with a JSON body is the same poll.
      const viaPost = await poll("p1", {}, { method: "POST", body: { last_poll_id: first.body.last_poll_id, timeout: 0 } });
      expect(viaPost.body.events.map((e: any) => e.payload.id)).toEqual(["after"]);
      // 1 = from the oldest retained event.
      const all = await poll("p1", { last_poll_id: 1, timeout: 0 });
      expect(all.body.events.map((e: any) => e.payload.id)).toEqual(["before", "after"]);
    });

    it("waits up to `timeout` seconds for something new", async () => {
      const start = await poll("p2", { timeout: 0 });
      const waiting = poll("p2", { last_poll_id: start.body.last_poll_id, timeout: 10 });
      await settle(300);
      await notify("p2", { id: "late" });
      const answer = await waiting;
      expect(answer.body.events.map((e: any) => e.payload.id)).toEqual(["late"]);
    });

    it("pages with has_more and `limit`", async () => {
      const start = await poll("p3", { timeout: 0 });
      for (let i = 0; i < 5; i++) await notify("p3", { id: `n${i}` });
      const page1 = await poll("p3", { last_poll_id: start.body.last_poll_id, timeout: 0, limit: 3 });
      expect(page1.body).toMatchObject({ has_more: true });
      expect(page1.body.events.map((e: any) => e.payload.id)).toEqual(["n0", "n1", "n2"]);
      const page2 = await poll("p3", { last_poll_id: page1.body.last_poll_id, timeout: 0, limit: 3 });
      expect(page2.body.events.map((e: any) => e.payload.id)).toEqual(["n3", "n4"]);
    });

    it("authenticates with the JWT and checks user_id against it", async () => {
      expect((await poll("p4", { user_id: "p4", timeout: 0 })).status).toBe(200);
      expect(await poll("p4", { user_id: "somebody", timeout: 0 })).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED", message: expect.any(String) } });
      expect(await poll("p4", {}, { method: "POST", body: { user_id: "somebody", last_poll_id: 0 } })).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED" } });
      const noToken = await fetch(`${node.url}/api/v1/realtime/poll?timeout=0`);
      expect({ status: noToken.status, body: await noToken.json() }).toEqual({ status: 401, body: { code: "MISSING_TOKEN", message: expect.any(String) } });
      expect(await poll("p4", { timeout: 0 }, { token: expiredToken("acme", "p4") })).toMatchObject({ status: 401, body: { code: "TOKEN_EXPIRED" } });
      expect(await poll("p4", { timeout: 0 }, { token: "garbage" })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await poll("p4", { timeout: 0 }, { headers: { "x-tenant-id": "globex" } })).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED" } });
    });

    it("refuses malformed parameters with INVALID_MESSAGE", async () => {
      expect(await poll("p5", { last_poll_id: "abc" })).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
      expect(await poll("p5", { last_poll_id: -1 })).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
      expect(await poll("p5", { timeout: 31 })).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
      expect(await poll("p5", {}, { method: "POST", body: "{not json" })).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
      expect(await poll("p5", {}, { path: "/poll/missed" })).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
    });

    it("limits polls per user and minute, with X-RateLimit-* headers", async () => {
      const limited = await startNode({ config: { pollV1RateLimit: 5, ...(variant.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {}) } });
      const url = (path: string) => `${limited.url}/api/v1/realtime${path}?timeout=0&last_sequence=0`;
      const get = async (path: string, userId: string) => {
        return fetchJson(url(path), { headers: { authorization: `Bearer ${tokenFor("acme", userId)}` } });
      };
      try {
        const remaining: string[] = [];
        for (let i = 0; i < 5; i++) {
          // /poll and /poll/missed share the budget.
          const res = await get(i % 2 === 0 ? "/poll" : "/poll/missed", "p6");
          expect(res.status).toBe(200);
          expect(res.headers.get("x-ratelimit-limit")).toBe("5");
          expect(Number(res.headers.get("x-ratelimit-reset"))).toBeGreaterThan(Date.now() / 1000 - 1);
          remaining.push(res.headers.get("x-ratelimit-remaining") as string);
        }
        expect(remaining).toEqual(["4", "3", "2", "1", "0"]);
        const refused = await get("/poll", "p6");
        expect(refused).toMatchObject({ status: 429, body: { code: "RATE_LIMITED", message: expect.any(String) } });
        expect(refused.headers.get("x-ratelimit-remaining")).toBe("0");
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
        // Another user has their own budget.
        expect((await get("/poll", "p6-other")).status).toBe(200);
      } finally {
        await limited.stop();
      }
    });

    it("returns missed messages as WebSocket frames after last_sequence", async () => {
      const start = await poll("p7", { timeout: 0 });
      const a = await notify("p7", { id: "m1" });
      await notify("p7", { id: "m2" });
      const missed = await poll("p7", { last_sequence: start.body.last_poll_id }, { path: "/poll/missed" });
      expect(missed.status).toBe(200);
      expect(missed.body.messages).toEqual([
        { id: a.eventId, type: "notification", channel: "notifications", payload: { id: "m1" }, timestamp: expect.any(String), sequence: expect.any(Number) },
        expect.objectContaining({ type: "notification", payload: { id: "m2" } })
      ]);
      expect(missed.body).toMatchObject({ has_more: false, last_sequence: missed.body.messages[1].sequence });
    });

    it("says history_lost for a number the stream cannot serve, and starts from what it retains", async () => {
      await notify("p8", { id: "kept" });
      const { body: current } = await poll("p8", { timeout: 0 });
      // Far ahead of anything the stream issued (in-process: another epoch's number).
      const lost = await poll("p8", { last_poll_id: current.last_poll_id + 1e12, timeout: 0 });
      expect(lost.status).toBe(200);
      expect(lost.body).toMatchObject({ history_lost: true });
      expect(lost.body.events.map((e: any) => e.payload.id)).toContain("kept");
    });

    it("shows each user only their own tenant's events", async () => {
      const start = await poll("p9", { timeout: 0 });
      await notify("p9", { id: "globex" }, "globex");
      await node.broker.call("push.feedUpdate", { tenantId: "globex", update: { post_id: "globex" } });
      await node.broker.call("push.feedUpdate", { tenantId: "acme", update: { post_id: "acme" } });
      const got = await poll("p9", { last_poll_id: start.body.last_poll_id, timeout: 0 });
      expect(got.body.events.map((e: any) => [e.type, e.payload])).toEqual([["feed_update", { post_id: "acme" }]]);
    });

    it("lets a client lose its WebSocket, poll, and reconnect without losing or repeating an event", async () => {
      const total = 120;
      const seen: Array<{ n: number; sequence: number; via: string }> = [];
      const record = (via: string) => (f: Frame) => {
        if (f.type === "notification") seen.push({ n: f.payload.n as number, sequence: f.sequence as number, via });
      };
      // The publisher runs all along, from another place (the server push API).
      let published = 0;
      let abandoned = false;
      // The last third waits for the second WebSocket, so that some events are certain to arrive on it
      // (otherwise a fast final poll can take every event and leave nothing for ws2 to prove).
      let releaseTail = () => {};
      const tailReleased = new Promise<void>(resolve => { releaseTail = resolve; });
      const publisher = (async () => {
        while (published < total && !abandoned) {
          if (published === Math.round(total * 0.7)) await tailReleased;
          if (abandoned) break;
          await notify("roamer", { n: published });
          published += 1;
          // Slow while the client is on its first WebSocket and polling, a burst while it reconnects.
          if (published < total * 0.6) await new Promise(r => setTimeout(r, 5));
        }
      })();

      try {
        const ws1 = await wsConnect(node.url, tokenFor("acme", "roamer"), { last_poll_id: 1 });
        ws1.ws.on("message", data => record("ws1")(JSON.parse(data.toString())));
        for (const f of ws1.frames) record("ws1")(f);
        while (seen.length < 10) await settle(5);
        await ws1.close();
        let cursor = Math.max(...seen.map(s => s.sequence));

        // Polling while the WebSocket is blocked.
        while (published < total * 0.6) {
          const res = await poll("roamer", { last_poll_id: cursor, timeout: 1 }, { token: tokenFor("acme", "roamer") });
          for (const e of res.body.events) seen.push({ n: e.payload.n, sequence: e.id, via: "poll" });
          cursor = res.body.last_poll_id;
        }

        // Back on a WebSocket, resuming from the polling cursor.
        const ws2 = await wsConnect(node.url, tokenFor("acme", "roamer"), { last_poll_id: cursor });
        clients.push(ws2);
        expect(ws2.connected.payload).toMatchObject({ recovered: true, last_poll_id: cursor });
        ws2.ws.on("message", data => record("ws2")(JSON.parse(data.toString())));
        for (const f of ws2.frames) record("ws2")(f);
        releaseTail();
        await publisher;
        while (!seen.some(s => s.n === total - 1)) await settle(10);
        await settle(200);

        expect(seen.map(s => s.n)).toEqual(Array.from({ length: total }, (_, i) => i));
        const sequences = seen.map(s => s.sequence);
        expect([...sequences].sort((a, b) => a - b)).toEqual(sequences);
        expect(new Set(seen.map(s => s.via))).toEqual(new Set(["ws1", "poll", "ws2"]));
      } finally {
        abandoned = true;
        releaseTail();
        await publisher;
      }
    }, 30_000);
  });
}
