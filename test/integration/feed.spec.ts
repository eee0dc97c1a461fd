import type { Socket } from "socket.io-client";
import { io } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { firstEvent, nextEvent, recorder, settle } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { fetchJson } from "../helpers/http";

/** Seed 004, the event feed: REST `/api/events` and the `/events` namespace, over the tenant's log. */
describe("seed 004 event feed", () => {
  let node: TestNode;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    node = await startNode();
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => node.stop());

  const headers = (tenantId: string, userId = "admin_a", tenantHeader = tenantId) => ({
    "X-TENANT-ID": tenantHeader,
    "X-User-Token": tokenFor(tenantId, userId),
    "Content-Type": "application/json"
  });

  async function post(tenantId: string, body: unknown, hdrs = headers(tenantId)) {
    return fetchJson(`${node.url}/api/events`, { method: "POST", headers: hdrs, body: JSON.stringify(body) });
  }

  async function list(tenantId: string, query = "", hdrs = headers(tenantId)) {
    return fetchJson(`${node.url}/api/events${query}`, { headers: hdrs });
  }

  function feedSocket(tenantId: string, userId: string, claimedTenant = tenantId) {
    const socket = io(`${node.url}/events`, {
      auth: { tenantId: claimedTenant, token: tokenFor(tenantId, userId) },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true
    });
    sockets.push(socket);
    return socket;
  }

  it("creates events over REST and lists them with sinceId paging", async () => {
    const created = await post("company_a", { message: "User logged in" });
    expect(created.status).toBe(201);
    expect(created.body.event).toMatchObject({ tenant_id: "company_a", message: "User logged in", author: "admin_a", id: expect.any(String) });
    const second = await post("company_a", { message: "Second" });
    const third = await post("company_a", { message: "Third" });

    const all = await list("company_a", "?limit=10");
    expect(all.status).toBe(200);
    expect(all.body.events.map((e: { message: string }) => e.message)).toEqual(["User logged in", "Second", "Third"]);
    const since = await list("company_a", `?sinceId=${encodeURIComponent(created.body.event.id)}&limit=50`);
    expect(since.body.events.map((e: { id: string }) => e.id)).toEqual([second.body.event.id, third.body.event.id]);
    expect((await list("company_a", "?limit=1")).body.events.map((e: { message: string }) => e.message)).toEqual(["Third"]);
    expect((await list("company_b")).body.events).toEqual([]);
  });

  it("refuses empty (422) and oversized (413) messages, and another tenant (403)", async () => {
    expect((await post("company_a", { message: "" })).status).toBe(422);
    expect((await post("company_a", {})).status).toBe(422);
    const tooLong = await post("company_a", { message: "x".repeat(2049) });
    expect(tooLong.status).toBe(413);
    expect((await post("company_a", { message: "x".repeat(2048) })).status).toBe(201);
    const crossed = await post("company_a", { message: "hi" }, headers("company_a", "admin_a", "company_b"));
    expect(crossed.status).toBe(403);
    expect(crossed.body.code).toBe("TENANT_VIOLATION");
    const noToken = await fetch(`${node.url}/api/events`, { headers: { "X-TENANT-ID": "company_a" } });
    expect(noToken.status).toBe(401);
  });

  it("sends a snapshot on connect, broadcasts event_created to the tenant only, and answers replay and post_event", async () => {
    await post("feed_t1", { message: "old-1" });
    await post("feed_t1", { message: "old-2" });
    const a = feedSocket("feed_t1", "alice");
    const snapshot = await nextEvent<Array<{ message: string }>>(a, "snapshot");
    expect(snapshot.map(e => e.message)).toEqual(["old-1", "old-2"]);
    const b = feedSocket("feed_t2", "bob");
    await nextEvent(b, "snapshot");
    const leaked = recorder(b, "event_created");

    const created = nextEvent(a, "event_created");
    const response = await a.timeout(3000).emitWithAck("post_event", { message: "Hello World" });
    expect(response.event).toMatchObject({ message: "Hello World", tenant_id: "feed_t1", author: "alice" });
    expect(await created).toEqual(response.event);

    const restCreated = nextEvent(a, "event_created");
    await post("feed_t1", { message: "from REST" });
    expect((await restCreated).message).toBe("from REST");

    const replay = await a.timeout(3000).emitWithAck("replay", { sinceId: snapshot[0] && (snapshot as unknown as Array<{ id: string }>)[0].id, limit: 10 });
    expect(replay.events.map((e: { message: string }) => e.message)).toEqual(["old-2", "Hello World", "from REST"]);

    const bad = await a.timeout(3000).emitWithAck("post_event", { message: "" });
    expect(bad.error).toMatchObject({ code: "INVALID_REQUEST" });
    await settle();
    expect(leaked).toEqual([]);
  });

  it("refuses a handshake whose tenantId is not the token's", async () => {
    const socket = feedSocket("feed_t1", "mallory", "feed_t2");
    const { event, payload } = await firstEvent(socket, ["snapshot", "connect_error"]);
    expect(event).toBe("connect_error");
    expect(payload.data.code).toBe("TENANT_VIOLATION");
  });

  it("shares the log with the other transports: a feed id is a poll cursor", async () => {
    const created = await post("feed_t3", { message: "one" });
    await post("feed_t3", { message: "two" });
    const res = await fetch(`${node.url}/api/events/poll?lastEventId=${encodeURIComponent(created.body.event.id)}`, {
      headers: { Authorization: `Bearer ${tokenFor("feed_t3", "u")}`, "X-Tenant-ID": "feed_t3" }
    });
    const body = (await res.json()) as { events: Array<{ payload: { message: string } }> };
    expect(body.events.map(e => e.payload.message)).toEqual(["two"]);
  });
});
