import jwt from "jsonwebtoken";
import { connect, eventually, nextEvent, settle } from "../helpers/client";
import { connectApp } from "../helpers/app-client";
import { startNode, type TestNode } from "../helpers/node";
import { TEST_SECRET, expiredToken, tokenFor, unsignedToken } from "../helpers/tokens";
import { wsConnect, wsRefusal, type WsClient } from "../helpers/ws-client";
import { fetchJson, type JsonBody } from "../helpers/http";

/**
 * Seed 002 over a raw WebSocket (`ws` package as the client) on the gateway's one HTTP port,
 * beside Socket.IO: authentication before the upgrade, the envelope, channels, every event type,
 * the server push API, and tenant isolation on every channel.
 */
describe("seed 002 raw WebSocket /ws", () => {
  let node: TestNode;
  const clients: WsClient[] = [];
  const backend = tokenFor("acme", "backend", { role: "service" });

  async function client(tenantId: string, userId: string, query: Record<string, string | number | undefined> = {}) {
    const c = await wsConnect(node.url, tokenFor(tenantId, userId), query);
    clients.push(c);
    return c;
  }

  async function api(method: string, path: string, body: unknown, token = backend, tenant = "acme") {
    return fetchJson(`${node.url}/api${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "x-tenant-id": tenant, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
  }

  beforeAll(async () => {
    node = await startNode({ config: { maxConnectionsPerUser: 3, wsRawRateLimit: 20, wsPingIntervalMs: 200, wsPingTimeoutMs: 400 } });
    // Conversations are declared by the application backend.
    await api("POST", "/conversations", { conversationId: "c1", members: ["ann", "bob"] });
    await api("POST", "/conversations", { conversationId: "c1", members: ["ann"] }, tokenFor("globex", "backend", { role: "service" }), "globex");
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(c => c.close()));
  });
  afterAll(() => node.stop());

  describe("connection", () => {
    it("refuses before the upgrade with 401 and {code, message}", async () => {
      expect(await wsRefusal(node.url)).toEqual({ status: 401, body: { code: "MISSING_TOKEN", message: expect.any(String) } });
      expect(await wsRefusal(node.url, { token: "not-a-jwt" })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: unsignedToken("acme", "ann") })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: jwt.sign({ tenantId: "acme", userId: "ann" }, "another-secret") })).toMatchObject({ status: 401, body: { code: "INVALID_TOKEN" } });
      expect(await wsRefusal(node.url, { token: expiredToken("acme", "ann") })).toMatchObject({ status: 401, body: { code: "TOKEN_EXPIRED" } });
      expect(await wsRefusal(node.url, {}, { authorization: `Bearer ${expiredToken("acme", "ann")}` })).toMatchObject({ status: 401, body: { code: "TOKEN_EXPIRED" } });
    });

    it("accepts the token in the query or as a bearer header, and says `connect {user_id, timestamp}`", async () => {
      const a = await client("acme", "ann");
      expect(a.connected).toMatchObject({ type: "connect", id: expect.any(String), timestamp: expect.any(String), payload: { user_id: "ann", timestamp: expect.any(String), last_poll_id: expect.any(Number) } });
      const b = await wsConnect(node.url, undefined, {}, { authorization: `Bearer ${tokenFor("acme", "ann")}` });
      clients.push(b);
      expect(b.connected.payload.user_id).toBe("ann");
      // Seed 002 login services issue `user_id`; it is accepted as userId.
      const c = await wsConnect(node.url, jwt.sign({ tenantId: "acme", user_id: 42 }, TEST_SECRET, { expiresIn: "1h" }));
      clients.push(c);
      expect(c.connected.payload.user_id).toBe("42");
    });

    it("allows MAX_CONNECTIONS per user; the next is refused with 429 until one closes", async () => {
      const three = [await client("acme", "max"), await client("acme", "max"), await client("acme", "max")];
      expect(await wsRefusal(node.url, { token: tokenFor("acme", "max") })).toEqual({ status: 429, body: { code: "MAX_CONNECTIONS", message: expect.any(String), details: { limit: 3 } } });
      // Another user and the same user id in another tenant are not affected.
      await client("acme", "other");
      await client("globex", "max");
      await three[0].close();
      await eventually(async () => (await wsConnect(node.url, tokenFor("acme", "max")).then(c => (clients.push(c), true)).catch(() => false)), 3000, "a free slot");
    });

    it("closes the connection when its token expires, saying TOKEN_EXPIRED", async () => {
      const token = jwt.sign({ tenantId: "acme", userId: "brief", exp: Math.floor(Date.now() / 1000) + 2 }, TEST_SECRET);
      const a = await wsConnect(node.url, token);
      clients.push(a);
      const closed = new Promise<number>(resolve => a.ws.once("close", (code: number) => resolve(code)));
      expect((await a.waitFor(f => f.type === "error", 4000)).payload).toMatchObject({ code: "TOKEN_EXPIRED" });
      expect((await a.waitFor(f => f.type === "disconnect")).payload).toEqual({ reason: "token_expired" });
      expect(await closed).toBe(1008);
    });

    it("says `disconnect {reason: server_shutdown}` and closes with 1001 when the node stops", async () => {
      const other = await startNode();
      const a = await wsConnect(other.url, tokenFor("acme", "ann"));
      const closed = new Promise<number>(resolve => a.ws.once("close", (code: number) => resolve(code)));
      await other.stop();
      expect(await closed).toBe(1001);
      expect(a.ofType("disconnect").map(f => f.payload)).toEqual([{ reason: "server_shutdown" }]);
    });

    it("is listed by gateway.connections and closed by an operator's gateway.systemDisconnect", async () => {
      const a = await client("acme", "suspended");
      const other = await client("acme", "bystander");
      const listed = await node.broker.call<{ connections: Array<{ namespace: string; userId: string; connectionId: string }> }, object>("gateway.connections", { tenantId: "acme" });
      expect(listed.connections).toEqual(expect.arrayContaining([expect.objectContaining({ namespace: "/ws", userId: "suspended", connectionId: a.connected.payload.connection_id })]));
      const closed = new Promise<number>(resolve => a.ws.once("close", (code: number) => resolve(code)));
      const result = await node.broker.call<{ disconnected: number }, object>("gateway.systemDisconnect", { tenantId: "acme", userId: "suspended", reason: "Account suspended" });
      expect(result.disconnected).toBe(1);
      expect(await closed).toBe(1008);
      expect(a.ofType("disconnect").map(f => f.payload)).toEqual([{ reason: "Account suspended" }]);
      expect(other.ws.readyState).toBe(other.ws.OPEN);
    });

    it("keeps Socket.IO working on the same port and refuses unknown upgrade paths", async () => {
      const { socket, connected } = await connect(node.url, tokenFor("acme", "ann"));
      expect(connected.connectionId).toEqual(expect.any(String));
      socket.close();
      expect((await wsRefusal(node.url, { token: tokenFor("acme", "ann") }, {}, "/elsewhere")).status).toBe(404);
    });

    it("answers heartbeat and sends its own heartbeats and pings", async () => {
      const a = await client("acme", "ann");
      const ack = await a.request("heartbeat");
      expect(ack).toMatchObject({ status: "success", data: { timestamp: expect.any(String) } });
      expect(a.ofType("heartbeat").length).toBeGreaterThanOrEqual(1);
      let pinged = false;
      a.ws.once("ping", () => (pinged = true));
      await a.waitFor(f => f.type === "heartbeat" && a.ofType("heartbeat").length >= 3, 3000, "server heartbeats");
      await eventually(() => pinged, 2000, "a ping");
    });
  });

  describe("envelope", () => {
    it("answers invalid frames with error INVALID_MESSAGE, and requests with ack_id with an ack", async () => {
      const a = await client("acme", "ann");
      a.send("not json");
      expect((await a.waitFor(f => f.type === "error")).payload).toMatchObject({ code: "INVALID_MESSAGE", message: expect.any(String), details: { reason: "not_json" } });
      a.send({ payload: {} });
      expect((await a.waitFor(f => f.type === "error" && f.payload.details?.field === "type")).payload).toMatchObject({ code: "INVALID_MESSAGE", message: "Message type is required" });
      a.send("[1,2]");
      await a.waitFor(f => f.type === "error" && f.payload.details?.reason === "not_object");
      a.ws.send(Buffer.from([1, 2, 3]));
      await a.waitFor(f => f.type === "error" && f.payload.details?.reason === "binary");
      const unknown = await a.request("launch_rockets", {});
      expect(unknown).toMatchObject({ status: "error", data: { code: "INVALID_MESSAGE" } });
      const badPayload = await a.request("subscribe", "x" as never);
      expect(badPayload).toMatchObject({ status: "error", data: { code: "INVALID_MESSAGE", details: { field: "payload" } } });
      // The connection survives all of it.
      expect(await a.request("heartbeat")).toMatchObject({ status: "success" });
    });

    it("refuses more than WS_RAW_RATE_LIMIT frames per second with RATE_LIMITED", async () => {
      const a = await client("acme", "ann");
      const acks = Array.from({ length: 40 }, (_, i) => `burst-${i}`);
      for (const ackId of acks) a.send({ type: "heartbeat", payload: {}, ack_id: ackId });
      const answers = await Promise.all(acks.map(ackId => a.waitFor(f => f.type === "ack" && f.payload.ack_id === ackId)));
      expect(answers.filter(f => f.payload.status === "success")).toHaveLength(20);
      const refused = answers.filter(f => f.payload.status === "error");
      expect(refused).toHaveLength(20);
      expect(refused[0].payload.data).toMatchObject({ code: "RATE_LIMITED", message: expect.any(String), details: { limit: 20 } });
      // Without ack_id the refusal is an `error` frame.
      for (let i = 0; i < 25; i++) a.send({ type: "heartbeat", payload: {} });
      await a.waitFor(f => f.type === "error" && f.payload.code === "RATE_LIMITED");
      // The window slides: a second later frames pass again.
      await settle(1100);
      expect(await a.request("heartbeat")).toMatchObject({ status: "success" });
    });

    it("closes a connection that stops answering pings, and the user goes offline", async () => {
      const a = await client("acme", "sleepy");
      const presence = async () => (await api("GET", "/presence/sleepy", undefined, tokenFor("acme", "observer"))).body.status;
      expect(await presence()).toBe("online");
      // The client stops reading: no pong, no frame.
      (a.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      await eventually(async () => (await presence()) === "offline", 5000, "sleepy offline");
    });
  });

  describe("channels", () => {
    it("subscribes and unsubscribes; unknown channels are CHANNEL_NOT_FOUND, foreign conversations AUTHZ_FAILED", async () => {
      const ann = await client("acme", "ann");
      const carol = await client("acme", "carol");
      expect(await ann.request("subscribe", { channel: "feed:updates" })).toEqual({ ack_id: expect.any(String), status: "success", data: { channel: "feed:updates" } });
      expect(await ann.request("subscribe", { channel: "conversation:c1" })).toMatchObject({ status: "success" });
      expect(await ann.request("subscribe", { channel: "presence" })).toMatchObject({ status: "success" });
      expect(await ann.request("subscribe", {}, { channel: "presence:bob" })).toMatchObject({ status: "success", data: { channel: "presence:bob" } });
      for (const channel of ["nope", "feed:other", "conversation:", "notifications:bob", "presence:"]) {
        expect(await ann.request("subscribe", { channel })).toMatchObject({ status: "error", data: { code: "CHANNEL_NOT_FOUND" } });
      }
      expect(await carol.request("subscribe", { channel: "conversation:c1" })).toMatchObject({ status: "error", data: { code: "AUTHZ_FAILED" } });
      expect(await carol.request("subscribe", { channel: "conversation:unknown" })).toMatchObject({ status: "error", data: { code: "AUTHZ_FAILED" } });
      // Without ack_id a refusal is an `error` frame.
      carol.send({ type: "subscribe", payload: { channel: "bogus" } });
      expect((await carol.waitFor(f => f.type === "error")).payload).toMatchObject({ code: "CHANNEL_NOT_FOUND", details: { channel: "bogus" } });

      // feed:updates reaches subscribers only, and stops after unsubscribe.
      await api("POST", "/push/feed", { update: { type: "new_post", post_id: "p1" } });
      expect((await ann.waitFor(f => f.type === "feed_update")).payload).toEqual({ type: "new_post", post_id: "p1" });
      expect(await ann.request("unsubscribe", { channel: "feed:updates" })).toMatchObject({ status: "success" });
      await api("POST", "/push/feed", { update: { type: "new_post", post_id: "p2" } });
      await settle();
      expect(ann.ofType("feed_update").map(f => f.payload.post_id)).toEqual(["p1"]);
      expect(carol.ofType("feed_update")).toEqual([]);
    });

    it("subscribes channels named in the URL before going live", async () => {
      const ann = await client("acme", "ann", { channels: "feed:updates,conversation:c1,nope" });
      expect((await ann.waitFor(f => f.type === "error")).payload).toMatchObject({ code: "CHANNEL_NOT_FOUND", details: { channel: "nope" } });
      await api("POST", "/push/feed", { update: { type: "new_post", post_id: "url" } });
      expect((await ann.waitFor(f => f.type === "feed_update")).channel).toBe("feed:updates");
    });

    it("drops a removed member's subscription to the conversation", async () => {
      await api("POST", "/conversations", { conversationId: "c9", members: ["ann", "bob"] });
      const ann = await client("acme", "ann");
      const bob = await client("acme", "bob");
      await bob.request("subscribe", { channel: "conversation:c9" });
      await api("POST", "/conversations/c9/members/remove", { userIds: ["bob"] });
      expect((await bob.waitFor(f => f.type === "unsubscribe")).payload).toEqual({ channel: "conversation:c9", reason: "removed_from_conversation" });
      expect(await ann.request("typing_start", { conversation_id: "c9" })).toMatchObject({ status: "success" });
      expect(await bob.request("typing_start", { conversation_id: "c9" })).toMatchObject({ status: "error", data: { code: "AUTHZ_FAILED" } });
      await settle();
      expect(bob.ofType("typing_start")).toEqual([]);
    });
  });

  describe("events", () => {
    it("delivers a pushed notification on `notifications` to every device, over /ws, PF-2 and /ws/app alike", async () => {
      const annWs1 = await client("acme", "ann");
      const annWs2 = await client("acme", "ann");
      const bob = await client("acme", "bob");
      const { socket: annIo } = await connect(node.url, tokenFor("acme", "ann"));
      const { socket: annApp } = await connectApp(node.url, tokenFor("acme", "ann"));
      try {
        const onIo = nextEvent(annIo, "event");
        const onApp = nextEvent(annApp, "notifications:new");
        const res = await api("POST", "/push/notifications", { userId: "ann", eventKey: "like", notification: { id: "notif_1", type: "like", actor_id: "456", message: "John liked your post", read: false } });
        expect(res.status).toBe(200);
        const [f1, f2, io] = await Promise.all([annWs1.waitFor(f => f.type === "notification"), annWs2.waitFor(f => f.type === "notification"), onIo]);
        expect(f1).toEqual({
          id: res.body.eventId,
          type: "notification",
          channel: "notifications",
          payload: { id: "notif_1", type: "like", actor_id: "456", message: "John liked your post", read: false },
          timestamp: expect.any(String),
          sequence: expect.any(Number)
        });
        expect(f2).toEqual(f1);
        expect(io).toMatchObject({ eventType: "app.notification", position: res.body.position });
        // …and seed 003 /ws/app.
        expect(await onApp).toMatchObject({ eventKey: "like", notification: { id: "notif_1" } });
        await settle();
        expect(bob.ofType("notification")).toEqual([]);
        expect(annWs1.ofType("notification")).toHaveLength(1);
      } finally {
        annIo.close();
        annApp.close();
      }
    });

    it("relays notification_read and notification_read_all to the user's other devices only", async () => {
      const phone = await client("acme", "ann");
      const laptop = await client("acme", "ann");
      const bob = await client("acme", "bob");
      const ack = await phone.request("notification_read", { notification_id: "notif_1", read_at: "2024-03-01T12:05:00Z" });
      expect(ack).toMatchObject({ status: "success", data: { sequence: expect.any(Number) } });
      const read = await laptop.waitFor(f => f.type === "notification_read");
      expect(read).toMatchObject({ channel: "notifications", payload: { notification_id: "notif_1", read_at: "2024-03-01T12:05:00.000Z" }, sequence: ack.data.sequence });
      expect(await laptop.request("notification_read_all", {})).toMatchObject({ status: "success" });
      expect((await phone.waitFor(f => f.type === "notification_read_all")).payload).toEqual({ read_at: expect.any(String) });
      expect((await phone.request("notification_read", {})).data).toMatchObject({ code: "INVALID_MESSAGE" });
      await settle();
      expect(phone.ofType("notification_read")).toEqual([]);
      expect(laptop.ofType("notification_read_all")).toEqual([]);
      expect(bob.frames.filter(f => f.type.startsWith("notification"))).toEqual([]);
    });

    it("sends a client `message` to a conversation: acked, persisted, delivered to every member once", async () => {
      const ann = await client("acme", "ann");
      const annOther = await client("acme", "ann");
      const bob = await client("acme", "bob");
      const carol = await client("acme", "carol");
      const { socket: bobIo } = await connect(node.url, tokenFor("acme", "bob"));
      try {
        const onIo = nextEvent(bobIo, "event");
        const ack = await ann.request("message", { content: "Hello!", sender: { display_name: "spoofed" } }, { channel: "conversation:c1", id: "client-msg-1" });
        expect(ack).toMatchObject({ status: "success", data: { id: expect.any(String), conversation_id: "c1", sequence: expect.any(Number), duplicate: false } });
        const got = await bob.waitFor(f => f.type === "message");
        expect(got).toMatchObject({ channel: "conversation:c1", sequence: ack.data.sequence, payload: { id: ack.data.id, conversation_id: "c1", sender_id: "ann", content: "Hello!", is_read: false, created_at: expect.any(String) } });
        expect(got.payload.sender).toBeUndefined();
        await annOther.waitFor(f => f.type === "message");
        await ann.waitFor(f => f.type === "message");
        // Seed 003 / PF-2 clients of the members get it too (as app.message.new).
        expect(await onIo).toMatchObject({ eventType: "app.message.new", payload: { conversationId: "c1", senderId: "ann" } });
        // Re-sending the same frame (a client's queue after a reconnect) is not a second message.
        const again = await ann.request("message", { content: "Hello!", sender: { display_name: "spoofed" } }, { channel: "conversation:c1", id: "client-msg-1" });
        expect(again.data).toMatchObject({ id: ack.data.id, duplicate: true });
        // A different message reusing the id is a message of its own.
        const reused = await ann.request("message", { content: "Second" }, { channel: "conversation:c1", id: "client-msg-1" });
        expect(reused.data).toMatchObject({ duplicate: false });
        expect(reused.data.id).not.toBe(ack.data.id);
        await bob.waitFor(f => f.type === "message" && f.payload.content === "Second");
        // Non-members and bad frames are refused.
        expect((await carol.request("message", { content: "hi" }, { channel: "conversation:c1" })).data).toMatchObject({ code: "AUTHZ_FAILED" });
        expect((await ann.request("message", { content: "" }, { channel: "conversation:c1" })).data).toMatchObject({ code: "INVALID_MESSAGE" });
        expect((await ann.request("message", { content: "x" }, { channel: "feed:updates" })).data).toMatchObject({ code: "INVALID_MESSAGE" });
        expect((await ann.request("message", { content: "x", conversation_id: "c2" }, { channel: "conversation:c1" })).data).toMatchObject({ code: "INVALID_MESSAGE" });
        await settle();
        expect(bob.ofType("message").map(f => f.payload.content)).toEqual(["Hello!", "Second"]);
        expect(carol.ofType("message")).toEqual([]);
      } finally {
        bobIo.close();
      }
    });

    it("delivers backend pushes of conversation messages, feed and count updates", async () => {
      const bob = await client("acme", "bob", { channels: "feed:updates" });
      const carol = await client("acme", "carol");
      await api("POST", "/push/messages", { conversationId: "c1", message: { id: "m-srv", content: "from the backend" }, senderId: "ann", recipients: ["bob"] });
      expect((await bob.waitFor(f => f.type === "message")).payload).toMatchObject({ id: "m-srv", conversation_id: "c1", sender_id: "ann", content: "from the backend" });
      await api("POST", "/push/counts", { userId: "carol", counts: { new_posts_count: 5 } });
      expect(await carol.waitFor(f => f.type === "count_update")).toMatchObject({ channel: "notifications", payload: { new_posts_count: 5 } });
      await api("POST", "/push/counts", { counts: { new_posts_count: 7 } });
      expect(await bob.waitFor(f => f.type === "count_update")).toMatchObject({ channel: "feed:updates", payload: { new_posts_count: 7 } });
      await settle();
      expect(carol.ofType("count_update")).toHaveLength(1);
      expect(bob.ofType("count_update")).toHaveLength(1);
    });

    it("relays typing_start / typing_stop to the conversation's subscribers, never persisted", async () => {
      const ann = await client("acme", "ann");
      const bob = await client("acme", "bob", { channels: "conversation:c1" });
      expect(await ann.request("typing_start", { conversation_id: "c1", username: "ann_s" })).toMatchObject({ status: "success" });
      expect((await bob.waitFor(f => f.type === "typing_start")).payload).toEqual({ conversation_id: "c1", user_id: "ann", username: "ann_s", is_typing: true });
      ann.send({ type: "typing_stop", channel: "conversation:c1", payload: {} });
      expect(await bob.waitFor(f => f.type === "typing_stop")).toMatchObject({ channel: "conversation:c1", payload: { is_typing: false, user_id: "ann" } });
      expect((await bob.waitFor(f => f.type === "typing_stop")).sequence).toBeUndefined();
      await settle();
      expect(ann.ofType("typing_start")).toEqual([]);
      const missed = await fetchJson(`${node.url}/api/v1/realtime/poll/missed?last_sequence=1`, { headers: { authorization: `Bearer ${tokenFor("acme", "bob")}` } });
      expect(missed.body.messages.filter((m: JsonBody) => m.type.startsWith("typing"))).toEqual([]);
    });

    it("relays read receipts to the conversation's members", async () => {
      const ann = await client("acme", "ann");
      const bob = await client("acme", "bob");
      const ack = await bob.request("read_receipt", { conversation_id: "c1", message_ids: ["msg_1", "msg_2"], read_at: "2024-03-01T12:05:00Z" });
      expect(ack).toMatchObject({ status: "success", data: { sequence: expect.any(Number) } });
      expect(await ann.waitFor(f => f.type === "read_receipt")).toMatchObject({ channel: "conversation:c1", payload: { conversation_id: "c1", user_id: "bob", message_ids: ["msg_1", "msg_2"], read_at: "2024-03-01T12:05:00.000Z" } });
      expect((await bob.request("read_receipt", { conversation_id: "c1" })).data).toMatchObject({ code: "INVALID_MESSAGE" });
      await settle();
      expect(bob.ofType("read_receipt")).toEqual([]);
    });

    it("shows presence changes on `presence` and `presence:{userId}`, with busy", async () => {
      const watcher = await client("acme", "watcher", { channels: "presence,presence:pia" });
      const single = await client("acme", "single");
      expect(await single.request("subscribe", { channel: "presence:pia" })).toMatchObject({ status: "success" });
      expect((await single.waitFor(f => f.type === "presence")).payload).toEqual({ user_id: "pia", status: "offline", last_seen: null });
      const pia = await client("acme", "pia");
      const online = await watcher.waitFor(f => f.type === "presence" && f.payload.user_id === "pia" && f.payload.status === "online");
      expect(online).toMatchObject({ channel: "presence:pia", payload: { last_seen: expect.any(String) } });
      await single.waitFor(f => f.type === "presence" && f.payload.status === "online");
      expect(await pia.request("presence", { status: "busy" })).toMatchObject({ status: "success", data: { status: "busy" } });
      await watcher.waitFor(f => f.type === "presence" && f.payload.user_id === "pia" && f.payload.status === "busy");
      expect((await pia.request("presence", { status: "sleeping" })).data).toMatchObject({ code: "INVALID_MESSAGE" });
      await pia.close();
      const statuses = () => watcher.ofType("presence").filter(f => f.payload.user_id === "pia").map(f => f.payload.status);
      await eventually(() => statuses().length >= 4, 3000, "pia offline");
      // The current presence on subscribing, then each change once although both channels match.
      await settle();
      expect(statuses()).toEqual(["offline", "online", "busy", "offline"]);
      // `presence` (the tenant's) shows everyone, `presence:pia` only pia.
      await client("acme", "erin");
      await watcher.waitFor(f => f.type === "presence" && f.payload.user_id === "erin" && f.channel === "presence");
      await settle();
      expect(single.ofType("presence").some(f => f.payload.user_id === "erin")).toBe(false);
    });
  });

  it("keeps tenants apart on every channel", async () => {
    const ann = await client("acme", "ann", { channels: "presence,presence:dave,conversation:c1,feed:updates" });
    const spy = await client("globex", "ann", { channels: "presence,presence:dave,conversation:c1,feed:updates" });
    const globexDave = await client("globex", "dave");
    await spy.waitFor(f => f.type === "presence" && f.payload.user_id === "dave" && f.payload.status === "online");
    const from = spy.frames.length;
    // Everything a tenant can cause, in tenant acme.
    const dave = await client("acme", "dave");
    await api("POST", "/push/notifications", { userId: "ann", eventKey: "k", notification: { id: "n-iso" } });
    await api("POST", "/push/feed", { update: { post_id: "iso" } });
    await api("POST", "/push/counts", { counts: { new_posts_count: 1 } });
    await api("POST", "/push/counts", { userId: "ann", counts: { new_posts_count: 2 } });
    await api("POST", "/push/messages", { conversationId: "c1", message: { content: "iso" }, senderId: "bob", recipients: ["ann"] });
    const bob = await client("acme", "bob");
    await bob.request("typing_start", { conversation_id: "c1" });
    await bob.request("read_receipt", { conversation_id: "c1", message_ids: ["m"] });
    await bob.request("message", { content: "iso 2" }, { channel: "conversation:c1" });
    const annOther = await client("acme", "ann");
    await annOther.request("notification_read", { notification_id: "n-iso" });
    await annOther.request("notification_read_all", {});
    await dave.request("presence", { status: "away" });
    await dave.close();
    // acme's ann saw all of it…
    const expected = ["notification", "feed_update", "count_update", "message", "typing_start", "read_receipt", "notification_read", "notification_read_all", "presence"];
    for (const type of expected) await ann.waitFor(f => f.type === type, 3000, type);
    await ann.waitFor(f => f.type === "presence" && f.payload.user_id === "dave" && f.payload.status === "offline");
    expect(ann.ofType("count_update")).toHaveLength(2);
    expect(ann.ofType("message")).toHaveLength(2);
    // …globex's ann, subscribed to the same channel names, saw none of it.
    await settle(300);
    expect(spy.frames.slice(from).filter(f => f.type !== "heartbeat")).toEqual([]);
    await globexDave.close();
  });
});
