import type { Service } from "moleculer";
import type { Socket } from "socket.io-client";
import jwt from "jsonwebtoken";
import { connect, eventually, nextEvent, recorder, request, settle } from "../helpers/client";
import { appRefusal, appSocketTo, connectApp } from "../helpers/app-client";
import { startNode, type TestNode } from "../helpers/node";
import { TEST_SECRET, expiredToken, tokenFor, unsignedToken } from "../helpers/tokens";
import { fetchJson } from "../helpers/http";

/**
 * Seed 003 `/ws/app` with an unchanged socket.io-client: handshake refusals, notifications,
 * conversations and messages (once per socket), multi-device presence, limits, operator
 * disconnects, tenant isolation. One node, in-process stores.
 */
describe("seed 003 /ws/app", () => {
  let node: TestNode;
  const sockets: Socket[] = [];
  const backend = tokenFor("acme", "crm-backend", { role: "service" });

  async function app(tenantId: string, userId: string, userAgent?: string) {
    const { socket, ready } = await connectApp(node.url, tokenFor(tenantId, userId), { userAgent });
    sockets.push(socket);
    return { socket, ready };
  }

  async function post(path: string, body: unknown, token = backend, tenant = "acme") {
    return fetchJson(`${node.url}/api${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "x-tenant-id": tenant, "content-type": "application/json" },
      body: JSON.stringify(body)
    });
  }

  const pushMessage = (body: Record<string, unknown>, tenant = "acme") =>
    post("/push/messages", body, tenant === "acme" ? backend : tokenFor(tenant, "backend", { role: "service" }), tenant);

  beforeAll(async () => {
    node = await startNode();
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => node.stop());

  describe("handshake", () => {
    it("refuses a missing, malformed, unsigned or foreign token as socket_error:unauthorized", async () => {
      const foreign = jwt.sign({ tenantId: "acme", userId: "ann" }, "another-secret", { algorithm: "HS256", expiresIn: "1h" });
      for (const token of [undefined, "", "not-a-jwt", unsignedToken("acme", "ann"), foreign, tokenFor("acme", "")]) {
        const error = await appRefusal(node.url, token);
        expect(error.data).toEqual({ code: "socket_error:unauthorized", message: expect.any(String) });
        expect(error.message).toBe(error.data.message);
      }
    });

    it("refuses an expired token as socket_error:token_expired", async () => {
      const error = await appRefusal(node.url, expiredToken("acme", "ann"));
      expect(error.data).toEqual({ code: "socket_error:token_expired", message: "Token expired" });
    });

    it("joins the personal room and says notifications:ready {message, userId}", async () => {
      const { ready } = await app("acme", "ann");
      expect(ready).toEqual({ message: expect.any(String), userId: "ann" });
    });

    it("tells a socket whose token expires socket_error:token_expired, then disconnects it", async () => {
      const { socket } = await connectApp(node.url, tokenFor("acme", "shortlived", {}, { expiresIn: 2 }));
      sockets.push(socket);
      const error = nextEvent(socket, "error", 5000);
      const gone = nextEvent(socket, "disconnect", 5000);
      expect(await error).toEqual({ code: "socket_error:token_expired", message: "Token expired" });
      expect(await gone).toBe("io server disconnect");
    });
  });

  describe("notifications:new", () => {
    it("reaches every device of the user only, pushed over REST or broker.call, and stays pollable", async () => {
      const { socket: annPhone } = await app("acme", "ann");
      const { socket: annDesk } = await app("acme", "ann");
      const { socket: bob } = await app("acme", "bob");
      const { socket: otherAnn } = await app("globex", "ann");
      const bobSeen = recorder(bob, "notifications:new");
      const leaked = recorder(otherAnn, "notifications:new");
      const phoneSeen = recorder(annPhone, "notifications:new");
      const deskSeen = recorder(annDesk, "notifications:new");

      const rest = await post("/push/notifications", { userId: "ann", eventKey: "task.assigned", notification: { id: "n1", title: "Review" } });
      expect(rest.status).toBe(200);
      await node.broker.call("push.notification", { tenantId: "acme", userId: "ann", eventKey: "task.done", notification: { id: "n2" } });
      await eventually(() => phoneSeen.length === 2 && deskSeen.length === 2, 3000, "both notifications on both devices");
      expect(phoneSeen).toEqual([
        { eventKey: "task.assigned", notification: { id: "n1", title: "Review" } },
        { eventKey: "task.done", notification: { id: "n2" } }
      ]);
      expect(deskSeen).toEqual(phoneSeen);
      await settle();
      expect(bobSeen).toEqual([]);
      expect(leaked).toEqual([]);

      const poll = await fetch(`${node.url}/api/events/poll?limit=1000`, { headers: { authorization: `Bearer ${tokenFor("acme", "ann")}`, "x-tenant-id": "acme" } });
      const events = ((await poll.json()) as { events: Array<{ eventId: string; eventType: string }> }).events;
      expect(events.map(e => e.eventId)).toContain(rest.body.eventId);
    });
  });

  describe("conversations and messages", () => {
    it("lets only declared members join, with an acknowledgement", async () => {
      await post("/conversations", { conversationId: "c-join", members: ["ann"] });
      const { socket: ann } = await app("acme", "ann");
      const { socket: bob } = await app("acme", "bob");
      expect(await request(ann, "conversations:join", { conversationId: "c-join" })).toEqual({ success: true });
      expect(await request(bob, "conversations:join", { conversationId: "c-join" })).toEqual({ success: false, message: "Not a member of this conversation", code: "AUTHZ_FAILED" });
      expect(await request(ann, "conversations:join", { conversationId: "never-declared" })).toMatchObject({ success: false, message: expect.any(String) });
      // Bad payloads fail the acknowledgement, with the validation message.
      const errors = recorder(ann, "error");
      expect(await request(ann, "conversations:join", { conversationId: 42 })).toMatchObject({ success: false, code: "INVALID_REQUEST" });
      expect(await request(ann, "conversations:join", "c-join")).toMatchObject({ success: false, code: "INVALID_REQUEST" });
      await settle();
      expect(errors).toEqual([]);
      // Without an acknowledgement the refusal comes as `error`.
      const error = nextEvent(bob, "error");
      bob.emit("conversations:join", { conversationId: "c-join" });
      expect(await error).toEqual({ code: "AUTHZ_FAILED", message: "Not a member of this conversation", details: { event: "conversations:join", conversationId: "c-join" } });
      // Another tenant's members do not count, whatever the conversation id.
      const { socket: globexAnn } = await app("globex", "ann");
      expect(await request(globexAnn, "conversations:join", { conversationId: "c-join" })).toMatchObject({ success: false });
      expect(await request(ann, "conversations:join", { conversationId: "c-join", tenantId: "globex" })).toMatchObject({ success: false, code: "TENANT_VIOLATION" });
    });

    it("delivers messages:new|updated|deleted to the conversation room and every recipient, once per socket", async () => {
      await post("/conversations", { conversationId: "c1", members: ["ann", "bob", "carol", "dave"] });
      await post("/conversations", { conversationId: "c1", members: ["ann"] }, tokenFor("globex", "backend", { role: "service" }), "globex");
      const { socket: ann } = await app("acme", "ann"); // sender: joined and in the recipients
      const { socket: annPhone } = await app("acme", "ann"); // sender's other device, not joined
      const { socket: bob } = await app("acme", "bob"); // recipient, not joined
      const { socket: carol } = await app("acme", "carol"); // member who joined, not a recipient
      const { socket: dave } = await app("acme", "dave"); // member, neither joined nor a recipient
      const { socket: globexAnn } = await app("globex", "ann"); // same ids in another tenant, joined there
      for (const socket of [ann, carol]) expect(await request(socket, "conversations:join", { conversationId: "c1" })).toEqual({ success: true });
      expect(await request(globexAnn, "conversations:join", { conversationId: "c1" })).toEqual({ success: true });
      const seen = new Map<Socket, Array<[string, any]>>();
      for (const socket of [ann, annPhone, bob, carol, dave, globexAnn]) {
        const list: Array<[string, any]> = [];
        seen.set(socket, list);
        socket.onAny((event: string, payload: unknown) => {
          if (event.startsWith("messages:")) list.push([event, payload]);
        });
      }

      const message = { id: "m1", body: "hello", status: "sent" };
      const res = await pushMessage({ conversationId: "c1", message, senderId: "ann", recipients: ["bob"] });
      expect(res.status).toBe(200);
      await pushMessage({ conversationId: "c1", kind: "updated", message: { ...message, body: "hello!" }, senderId: "ann", recipients: ["bob"] });
      await pushMessage({ conversationId: "c1", kind: "deleted", message: { ...message, status: "deleted", deletedAt: "2026-01-01T00:00:00Z" }, senderId: "ann", recipients: ["bob"] });

      const expected = [
        ["messages:new", { conversationId: "c1", message, senderId: "ann", recipients: ["bob", "ann"] }],
        ["messages:updated", { conversationId: "c1", message: { ...message, body: "hello!" }, senderId: "ann", recipients: ["bob", "ann"] }],
        ["messages:deleted", { conversationId: "c1", message: { ...message, status: "deleted", deletedAt: "2026-01-01T00:00:00Z" }, senderId: "ann", recipients: ["bob", "ann"] }]
      ];
      await eventually(() => [ann, annPhone, bob, carol].every(s => (seen.get(s) ?? []).length >= 3), 3000, "three events on every addressed socket");
      await settle(200);
      for (const socket of [ann, annPhone, bob, carol]) expect(seen.get(socket)).toEqual(expected);
      expect(seen.get(dave)).toEqual([]);
      expect(seen.get(globexAnn)).toEqual([]);

      // The recipients can recover it from the stream; a member who was not addressed cannot.
      const poll = async (user: string) => {
        const r = await fetch(`${node.url}/api/events/poll?limit=1000`, { headers: { authorization: `Bearer ${tokenFor("acme", user)}`, "x-tenant-id": "acme" } });
        return ((await r.json()) as { events: Array<{ eventId: string }> }).events.map(e => e.eventId);
      };
      expect(await poll("bob")).toContain(res.body.eventId);
      expect(await poll("dave")).not.toContain(res.body.eventId);
    });

    it("stops room delivery after conversations:leave and after the backend removes the member", async () => {
      await post("/conversations", { conversationId: "c2", members: ["ann", "carol", "erin"] });
      const { socket: carol } = await app("acme", "carol");
      const { socket: erin } = await app("acme", "erin");
      for (const socket of [carol, erin]) expect(await request(socket, "conversations:join", { conversationId: "c2" })).toEqual({ success: true });
      const carolSeen = recorder(carol, "messages:new");
      const erinSeen = recorder(erin, "messages:new");
      await pushMessage({ conversationId: "c2", message: { id: "m1" }, senderId: "ann", recipients: [] });
      await eventually(() => carolSeen.length === 1 && erinSeen.length === 1, 3000, "first message");

      carol.emit("conversations:leave", { conversationId: "c2" });
      expect((await post("/conversations/c2/members/remove", { userIds: ["erin"] })).body.removed).toEqual(["erin"]);
      await settle();
      await pushMessage({ conversationId: "c2", message: { id: "m2" }, senderId: "ann", recipients: [] });
      await settle(300);
      expect(carolSeen.map(m => m.message.id)).toEqual(["m1"]);
      expect(erinSeen.map(m => m.message.id)).toEqual(["m1"]);
      // A removed member cannot come back; one who left can.
      expect(await request(erin, "conversations:join", { conversationId: "c2" })).toMatchObject({ success: false });
      expect(await request(carol, "conversations:join", { conversationId: "c2" })).toEqual({ success: true });
      expect(await request(carol, "conversations:leave", { conversationId: "c2" })).toEqual({ success: true });
    });
  });

  describe("presence:update", () => {
    const latest = (list: any[], userId: string) => [...list].reverse().find(s => s.userId === userId);

    it("sends per-device snapshots on connect, heartbeat and disconnect to the user's devices and the tenant", async () => {
      const { socket: bob } = await app("acme", "bob");
      const { socket: globexBob } = await app("globex", "bob");
      const bobSeen = recorder(bob, "presence:update");
      const leaked = recorder(globexBob, "presence:update");

      const { socket: desk } = await app("acme", "gina", "Desk/1.0");
      const deskSeen = recorder(desk, "presence:update");
      const phone = appSocketTo(node.url, tokenFor("acme", "gina"), { userAgent: "Phone/2.0" });
      sockets.push(phone);
      const phoneSeen = recorder(phone, "presence:update");
      await nextEvent(phone, "notifications:ready");

      const twoDevices = (s: any) => s?.userId === "gina" && s.sockets.length === 2;
      await eventually(() => twoDevices(latest(bobSeen, "gina")) && twoDevices(latest(deskSeen, "gina")) && twoDevices(latest(phoneSeen, "gina")), 3000, "two-device snapshots");
      const own = latest(deskSeen, "gina");
      expect(own).toEqual({
        userId: "gina",
        isOnline: true,
        lastSeen: expect.any(Number),
        sockets: [
          { socketId: desk.id, connectedAt: expect.any(Number), lastSeen: expect.any(Number), userAgent: "Desk/1.0", ip: expect.stringMatching(/127\.0\.0\.1/) },
          { socketId: phone.id, connectedAt: expect.any(Number), lastSeen: expect.any(Number), userAgent: "Phone/2.0", ip: expect.stringMatching(/127\.0\.0\.1/) }
        ]
      });
      // Others see the devices but not their addresses.
      const seenByBob = latest(bobSeen, "gina");
      expect(seenByBob).toEqual({ ...own, sockets: own.sockets.map((s: any) => ({ ...s, ip: null })) });
      expect(Math.abs(own.lastSeen - Date.now())).toBeLessThan(10_000);

      // A heartbeat refreshes the device's lastSeen and sends a fresh snapshot.
      const before = own.sockets[1].lastSeen;
      await new Promise(r => setTimeout(r, 20));
      const ginaSnapshots = (list: any[]) => list.filter(s => s.userId === "gina").length;
      const [deskBefore, bobBefore] = [ginaSnapshots(deskSeen), ginaSnapshots(bobSeen)];
      const count = bobSeen.length;
      expect(await request(phone, "presence:heartbeat")).toEqual({ success: true });
      await eventually(() => bobSeen.length > count, 3000, "heartbeat snapshot");
      const refreshed = latest(bobSeen, "gina");
      expect(refreshed.sockets[1].lastSeen).toBeGreaterThan(before);
      expect(refreshed.lastSeen).toBeGreaterThanOrEqual(refreshed.sockets[1].lastSeen);
      // Without an acknowledgement too (the seed's `socket.emit('presence:heartbeat')`).
      const again = bobSeen.length;
      phone.emit("presence:heartbeat");
      await eventually(() => bobSeen.length > again, 3000, "second heartbeat snapshot");

      // Each socket got each snapshot once (own devices are in the user room and the tenant room).
      await eventually(() => ginaSnapshots(deskSeen) - deskBefore >= 2, 3000, "heartbeat snapshots on the desk");
      await settle();
      expect([ginaSnapshots(deskSeen) - deskBefore, ginaSnapshots(bobSeen) - bobBefore]).toEqual([2, 2]);

      phone.close();
      await eventually(() => latest(bobSeen, "gina")?.sockets.length === 1, 3000, "one device left");
      expect(latest(bobSeen, "gina")).toMatchObject({ isOnline: true, sockets: [{ socketId: desk.id }] });
      desk.close();
      await eventually(() => latest(bobSeen, "gina")?.isOnline === false, 3000, "offline snapshot");
      expect(latest(bobSeen, "gina")).toEqual({ userId: "gina", isOnline: false, lastSeen: expect.any(Number), sockets: [] });

      await settle();
      expect(leaked.filter(s => s.userId === "gina")).toEqual([]);
    });

    it("shares one presence with PF-2: a user online on either protocol is online on both", async () => {
      const { socket: bob } = await app("acme", "bob");
      const bobSeen = recorder(bob, "presence:update");
      const { socket: pf2 } = await connect(node.url, tokenFor("acme", "hank"));
      sockets.push(pf2);
      await eventually(() => latest(bobSeen, "hank")?.isOnline === true, 3000, "PF-2 connection in a /ws/app snapshot");
      expect(latest(bobSeen, "hank").sockets).toEqual([expect.objectContaining({ socketId: pf2.id })]);
      pf2.close();
      await eventually(() => latest(bobSeen, "hank")?.isOnline === false, 3000, "offline");

      await app("acme", "ivy");
      const res = await fetch(`${node.url}/api/presence/ivy`, { headers: { authorization: `Bearer ${tokenFor("acme", "observer")}`, "x-tenant-id": "acme" } });
      expect(await res.json()).toMatchObject({ userId: "ivy", status: "online" });
    });
  });

  describe("limits and errors", () => {
    it("answers payloads over SOCKET_MAX_PAYLOAD_BYTES with error and does not process them", async () => {
      expect(node.config.socketMaxPayloadBytes).toBe(5120);
      await post("/conversations", { conversationId: "c-big", members: ["ann"] });
      const { socket: ann } = await app("acme", "ann");
      const errors = recorder(ann, "error");
      const padding = "x".repeat(5200);
      expect(await request(ann, "conversations:join", { conversationId: "c-big", padding })).toMatchObject({ success: false, code: "INVALID_REQUEST" });
      expect(errors).toEqual([{ code: "INVALID_REQUEST", message: "'conversations:join' is larger than 5120 bytes", details: { event: "conversations:join", size: expect.any(Number), limit: 5120 } }]);
      // Not processed: the socket did not join the conversation.
      const seen = recorder(ann, "messages:new");
      await pushMessage({ conversationId: "c-big", message: { id: "m1" }, senderId: "someone", recipients: ["zed"] });
      await settle(300);
      expect(seen).toEqual([]);
      // Just under the limit is processed.
      expect(await request(ann, "conversations:join", { conversationId: "c-big", padding: "x".repeat(4000) })).toEqual({ success: true });
    });

    it("answers unknown events with INVALID_REQUEST", async () => {
      const { socket } = await app("acme", "ann");
      const error = nextEvent(socket, "error");
      socket.emit("call", "presence.get", { userId: "x" });
      expect(await error).toMatchObject({ code: "INVALID_REQUEST", message: "Unknown event 'call'" });
      expect(await request(socket, "messages:new", {})).toMatchObject({ success: false, code: "INVALID_REQUEST" });
    });
  });

  describe("system:disconnect", () => {
    it("tells every device of the user (both protocols) why, disconnects them, and leaves everyone else", async () => {
      const { socket: one } = await app("acme", "kim");
      const { socket: two } = await app("acme", "kim");
      const { socket: pf2 } = await connect(node.url, tokenFor("acme", "kim"));
      sockets.push(pf2);
      const { socket: bob } = await app("acme", "bob");
      const { socket: otherKim } = await app("globex", "kim");
      const told = [one, two, pf2].map(s => nextEvent(s, "system:disconnect"));
      const closed = [one, two, pf2].map(s => nextEvent(s, "disconnect"));
      const bystanders = [bob, otherKim].map(s => recorder(s, "system:disconnect"));

      const result = await node.broker.call("gateway.systemDisconnect", { tenantId: "acme", userId: "kim", reason: "Account suspended" });
      expect(result).toEqual({ disconnected: 3, nodes: [{ nodeID: node.broker.nodeID, disconnected: 3 }] });
      expect(await Promise.all(told)).toEqual([{ reason: "Account suspended" }, { reason: "Account suspended" }, { reason: "Account suspended" }]);
      expect(await Promise.all(closed)).toEqual(["io server disconnect", "io server disconnect", "io server disconnect"]);
      await settle();
      expect(bystanders).toEqual([[], []]);
      expect(bob.connected && otherKim.connected).toBe(true);
    });

    it("disconnects one connection by id, within its tenant only", async () => {
      const { socket: one } = await app("acme", "lou");
      const { socket: two } = await app("acme", "lou");
      expect(await node.broker.call("gateway.systemDisconnect", { tenantId: "globex", connectionId: one.id, reason: "x" })).toMatchObject({ disconnected: 0 });
      const told = nextEvent(one, "system:disconnect");
      expect(await node.broker.call("gateway.systemDisconnect", { tenantId: "acme", connectionId: one.id, reason: "Maintenance" })).toMatchObject({ disconnected: 1 });
      expect(await told).toEqual({ reason: "Maintenance" });
      await eventually(() => !one.connected, 2000, "closed");
      await settle();
      expect(two.connected).toBe(true);
    });

    it("is for operators only and checks the tenant", async () => {
      const asUser = { meta: { auth: { tenantId: "acme", userId: "ann", role: "user" } } };
      await expect(node.broker.call("gateway.systemDisconnect", { tenantId: "acme", userId: "bob", reason: "x" }, asUser)).rejects.toMatchObject({ type: "AUTHZ_FAILED" });
      await expect(node.broker.call("gateway.disconnectLocal", { tenantId: "acme", userId: "bob", reason: "x" }, asUser)).rejects.toMatchObject({ type: "AUTHZ_FAILED" });
      const asAdmin = { meta: { auth: { tenantId: "acme", userId: "root", role: "admin" } } };
      await expect(node.broker.call("gateway.systemDisconnect", { tenantId: "globex", userId: "bob", reason: "x" }, asAdmin)).rejects.toMatchObject({ type: "TENANT_VIOLATION" });
      await expect(node.broker.call("gateway.systemDisconnect", { tenantId: "acme", reason: "x" })).rejects.toMatchObject({ type: "INVALID_REQUEST" });
      await expect(node.broker.call("gateway.systemDisconnect", { tenantId: "acme", userId: "a", connectionId: "b", reason: "x" })).rejects.toMatchObject({ type: "INVALID_REQUEST" });
      expect(await node.broker.call("gateway.systemDisconnect", { tenantId: "acme", userId: "nobody", reason: "x" }, asAdmin)).toMatchObject({ disconnected: 0 });
    });

    it("audits it: an admin.disconnect record is durable before anyone is disconnected, the result follows", async () => {
      const { socket } = await app("acme", "max");
      const told = nextEvent(socket, "system:disconnect");
      const asAdmin = { meta: { auth: { tenantId: "acme", userId: "root", role: "admin" } } };
      await node.broker.call("gateway.systemDisconnect", { tenantId: "acme", userId: "max", reason: "Abuse report #12" }, asAdmin);
      await told;
      const records = async () =>
        (await node.broker.call<{ records: any[] }, object>("audit.query", { tenantId: "acme", action: "admin.disconnect", limit: 1000 })).records.filter(r => r.target === "user:max");
      await eventually(async () => (await records()).length === 2, 3000, "two admin.disconnect records");
      const [requested, result] = await records();
      expect(requested).toMatchObject({ actor: { nodeID: node.broker.nodeID, userId: "root", role: "admin" }, outcome: "requested", justification: "Abuse report #12" });
      expect(result).toMatchObject({
        outcome: "success",
        justification: "Abuse report #12",
        details: { requestId: requested.id, disconnected: 1, nodes: [{ nodeID: node.broker.nodeID, disconnected: 1 }] }
      });
    });
  });
});

/** Limits that need their own configuration. */
describe("seed 003 /ws/app: rate limit and presence expiry", () => {
  let node: TestNode;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    node = await startNode({ config: { wsMessageRateLimit: 3, presenceTtlSeconds: 1 } });
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => node.stop());

  it("rate limits inbound events per connection with RATE_LIMIT", async () => {
    const { socket } = await connectApp(node.url, tokenFor("acme", "ann"));
    sockets.push(socket);
    for (let i = 0; i < 3; i++) expect(await request(socket, "presence:heartbeat")).toEqual({ success: true });
    const error = nextEvent(socket, "error");
    expect(await request(socket, "presence:heartbeat")).toMatchObject({ success: false, code: "RATE_LIMIT" });
    expect(await error).toMatchObject({ code: "RATE_LIMIT", message: "Rate limit exceeded", details: { event: "presence:heartbeat", limit: 3, retryAfterMs: expect.any(Number) } });
  });

  it("expires a device after PRESENCE_TTL_SECONDS without heartbeat: snapshot with isOnline false", async () => {
    const gateway = node.broker.getLocalService("gateway") as Service & { heartbeatTimer?: NodeJS.Timeout };
    const { socket: observer } = await connectApp(node.url, tokenFor("acme", "obs"));
    sockets.push(observer);
    const seen = recorder(observer, "presence:update");
    // A gateway that stopped heartbeating (stalled or cut off): its connections age out.
    clearInterval(gateway.heartbeatTimer);
    const started = Date.now();
    const { socket: quiet } = await connectApp(node.url, tokenFor("acme", "quiet"));
    sockets.push(quiet);
    await eventually(() => seen.some(s => s.userId === "quiet" && s.isOnline), 3000, "online");
    await eventually(() => seen.some(s => s.userId === "quiet" && !s.isOnline), 5000, "expired");
    // Not before the TTL (1 s) has passed since the connection was registered.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(quiet.connected).toBe(true);
    expect([...seen].reverse().find(s => s.userId === "quiet")).toEqual({ userId: "quiet", isOnline: false, lastSeen: expect.any(Number), sockets: [] });
  });
});
