import type { Socket } from "socket.io-client";
import jwt from "jsonwebtoken";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, nextEvent, recorder, refusal, request, settle, socketTo } from "../helpers/client";
import { expiredToken, rsaKeys, tokenFor, unsignedToken, TEST_SECRET } from "../helpers/tokens";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";

/**
 * PF-2 over Socket.IO against the real gateway, with an unchanged socket.io-client, on one node.
 * The whole suite runs on the embedded default (memory stores) and on Redis-backed stores.
 */
const backends = [
  { name: "memory stores", redis: false },
  { name: "Redis stores", redis: true }
];

for (const backend of backends) {
  describe(`PF-2 Socket.IO on one node (${backend.name})`, () => {
    let node: TestNode;
    const prefix = uniquePrefix("pf2");
    const sockets: Socket[] = [];

    async function client(tenantId: string, userId: string, clientId?: string) {
      const { socket, connected } = await connect(node.url, tokenFor(tenantId, userId), { clientId });
      sockets.push(socket);
      return { socket, connected };
    }

    beforeAll(async () => {
      node = await startNode({
        config: {
          wsMessageRateLimit: 20,
          wsMaxPayloadBytes: 4096,
          ...(backend.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {})
        }
      });
    });

    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });

    afterAll(async () => {
      await node.stop();
      if (backend.redis) await dropPrefix(prefix);
    });

    describe("handshake", () => {
      it("accepts a valid token and sends `connected`", async () => {
        const { connected } = await client("t1", "alice", "client-123");
        expect(typeof connected.connectionId).toBe("string");
        expect(connected.clientId).toBe("client-123");
        expect(new Date(connected.serverTime).toISOString()).toBe(connected.serverTime);
        expect(connected.interactionClasses).toEqual(["CLASS_A", "CLASS_B", "CLASS_C"]);
      });

      it("generates a clientId when none is given", async () => {
        const { connected } = await client("t1", "alice");
        expect(connected.clientId).toMatch(/^[0-9a-f-]{36}$/);
      });

      const refusals: Array<[string, () => unknown]> = [
        ["a missing token", () => undefined],
        ["a malformed token", () => "not-a-jwt"],
        ["a token signed with another secret", () => jwt.sign({ tenantId: "t1", userId: "u" }, "other-secret")],
        ["an expired token", () => expiredToken("t1", "u")],
        ["an unsigned token (alg none)", () => unsignedToken("t1", "u")],
        ["a token without tenantId", () => jwt.sign({ userId: "u" }, TEST_SECRET)],
        ["a token without userId", () => jwt.sign({ tenantId: "t1" }, TEST_SECRET)],
        ["a token with a numeric token value", () => 12345],
        ["an RS256 token when only a secret is configured", () => jwt.sign({ tenantId: "t1", userId: "u" }, rsaKeys().privateKey, { algorithm: "RS256" })]
      ];
      it.each(refusals)("refuses %s with connect_error AUTH_FAILED", async (_label, token) => {
        const err = await refusal(node.url, token());
        expect(err.data.code).toBe("AUTH_FAILED");
        expect(typeof err.message).toBe("string");
      });
    });

    describe("direct messages", () => {
      it("acks the sender and delivers to every device of the recipient, in the sender's tenant only", async () => {
        const { socket: alice } = await client("t1", "alice");
        const { socket: bobPhone } = await client("t1", "bob");
        const { socket: bobLaptop } = await client("t1", "bob");
        const { socket: otherBob } = await client("t2", "bob");
        const leaked = recorder(otherBob, "message");

        const phone = nextEvent(bobPhone, "message");
        const laptop = nextEvent(bobLaptop, "message");
        const ack = nextEvent(alice, "message_ack");
        alice.emit("message", { type: "chat.message", recipientId: "bob", payload: { text: "hi" }, metadata: { m: 1 } });

        const { messageId } = await ack;
        const [m1, m2] = await Promise.all([phone, laptop]);
        expect(m1).toEqual(m2);
        expect(m1).toMatchObject({
          messageId,
          type: "chat.message",
          interactionClass: "CLASS_C",
          tenantId: "t1",
          senderId: "alice",
          recipientId: "bob",
          payload: { text: "hi" },
          metadata: { m: 1 }
        });
        expect(m1.roomId).toBeUndefined();
        expect(new Date(m1.timestamp).toISOString()).toBe(m1.timestamp);
        await settle();
        expect(leaked).toEqual([]);
      });

      it("answers an acknowledgement callback too", async () => {
        const { socket: alice } = await client("t1", "alice");
        const answer = await request(alice, "message", { type: "x", recipientId: "nobody", payload: null, interactionClass: "CLASS_B" });
        expect(answer.messageId).toMatch(/^[0-9a-f-]{36}$/);
      });

      it("delivers class A messages as volatile and keeps their class", async () => {
        const { socket: alice } = await client("t1", "alice");
        const { socket: bob } = await client("t1", "bob");
        const got = nextEvent(bob, "message");
        alice.emit("message", { type: "typing", interactionClass: "CLASS_A", recipientId: "bob", payload: {} });
        expect((await got).interactionClass).toBe("CLASS_A");
      });

      it("refuses CLASS_D on the realtime path and never delivers it", async () => {
        const { socket: alice } = await client("t1", "alice");
        const { socket: bob } = await client("t1", "bob");
        const received = recorder(bob, "message");
        const acks = recorder(alice, "message_ack");
        const error = nextEvent(alice, "error");
        alice.emit("message", { type: "payment", interactionClass: "CLASS_D", recipientId: "bob", payload: { amount: 1 } });
        expect(await error).toMatchObject({ code: "INVALID_REQUEST", details: { interactionClass: "CLASS_D" } });
        await settle();
        expect(received).toEqual([]);
        expect(acks).toEqual([]);
      });
    });

    describe("rooms", () => {
      it("joins, delivers to every member, leaves, and stops delivering", async () => {
        const { socket: alice } = await client("t1", "alice");
        const { socket: bob } = await client("t1", "bob");
        const { socket: carol } = await client("t1", "carol");
        const carolGot = recorder(carol, "message");

        expect(await request(alice, "join_room", { roomId: "room-789" })).toEqual({ roomId: "room-789" });
        const joined = nextEvent(bob, "room_joined");
        bob.emit("join_room", { roomId: "room-789" });
        expect(await joined).toEqual({ roomId: "room-789" });

        const bobGot = nextEvent(bob, "message");
        const aliceGot = nextEvent(alice, "message");
        alice.emit("message", { type: "chat.message", roomId: "room-789", payload: { text: "hello room" } });
        const [toBob, toAlice] = await Promise.all([bobGot, aliceGot]);
        expect(toBob).toMatchObject({ roomId: "room-789", senderId: "alice", tenantId: "t1", payload: { text: "hello room" } });
        expect(toAlice.messageId).toBe(toBob.messageId);

        const left = nextEvent(bob, "room_left");
        bob.emit("leave_room", { roomId: "room-789" });
        expect(await left).toEqual({ roomId: "room-789" });
        const bobAfter = recorder(bob, "message");
        await request(alice, "message", { type: "chat.message", roomId: "room-789", payload: 2 });
        await settle();
        expect(bobAfter).toEqual([]);
        expect(carolGot).toEqual([]);
      });

      it("scopes rooms by tenant: the same roomId in two tenants is two rooms", async () => {
        const { socket: a1 } = await client("t1", "alice");
        const { socket: a2 } = await client("t2", "alice");
        await request(a1, "join_room", { roomId: "shared" });
        await request(a2, "join_room", { roomId: "shared" });
        const t2Got = recorder(a2, "message");
        const t1Got = nextEvent(a1, "message");
        a1.emit("message", { type: "m", roomId: "shared", payload: "t1 only" });
        expect((await t1Got).payload).toBe("t1 only");
        await settle();
        expect(t2Got).toEqual([]);
      });

      it("refuses sending to a room the connection has not joined", async () => {
        const { socket: alice } = await client("t1", "alice");
        const error = nextEvent(alice, "error");
        alice.emit("message", { type: "m", roomId: "not-joined", payload: 1 });
        expect(await error).toMatchObject({ code: "AUTHZ_FAILED" });
      });

      it("lists members over REST and forgets a connection's rooms when it disconnects", async () => {
        const { socket: alice } = await client("t1", "alice");
        const { socket: bob } = await client("t1", "bob");
        await request(alice, "join_room", { roomId: "r-members" });
        await request(bob, "join_room", { roomId: "r-members" });
        const members = async () => {
          const res = await fetch(`${node.url}/api/rooms/r-members/members`, {
            headers: { Authorization: `Bearer ${tokenFor("t1", "admin-user", { role: "admin" })}`, "X-Tenant-ID": "t1" }
          });
          return ((await res.json()) as { members: Array<{ userId: string }> }).members.map(m => m.userId).sort();
        };
        expect(await members()).toEqual(["alice", "bob"]);
        bob.close();
        await eventually(async () => (await members()).join() === "alice", 3000, "bob's membership to go");
      });
    });

    describe("presence", () => {
      async function presenceOf(tenantId: string, userId: string) {
        const res = await fetch(`${node.url}/api/presence/${encodeURIComponent(userId)}`, {
          headers: { Authorization: `Bearer ${tokenFor(tenantId, "observer")}`, "X-Tenant-ID": tenantId }
        });
        expect(res.status).toBe(200);
        return (await res.json()) as { userId: string; status: string; metadata?: unknown; lastSeen: string | null };
      }

      it("is online from the first device until the last one leaves, per tenant", async () => {
        const { socket: phone } = await client("t3", "dave");
        const { socket: laptop } = await client("t3", "dave");
        expect((await presenceOf("t3", "dave")).status).toBe("online");
        expect((await presenceOf("t4", "dave")).status).toBe("offline");
        phone.close();
        await settle();
        expect((await presenceOf("t3", "dave")).status).toBe("online");
        laptop.close();
        await eventually(async () => (await presenceOf("t3", "dave")).status === "offline", 3000, "dave offline");
        expect((await presenceOf("t3", "dave")).lastSeen).not.toBeNull();
      });

      it("pushes presence changes to connections sharing a room, readable by broker.call", async () => {
        const { socket: erin } = await client("t3", "erin");
        const { socket: frank } = await client("t3", "frank");
        const { socket: outsider } = await client("t3", "outsider");
        const outsiderGot = recorder(outsider, "presence");
        await request(erin, "join_room", { roomId: "team" });
        await request(frank, "join_room", { roomId: "team" });

        const pushed = nextEvent(frank, "presence");
        erin.emit("presence_update", { status: "away", metadata: { statusMessage: "In a meeting" } });
        expect(await pushed).toMatchObject({ userId: "erin", status: "away", metadata: { statusMessage: "In a meeting" } });
        const viaBroker = await node.broker.call<{ status: string }, object>("presence.get", { tenantId: "t3", userId: "erin" });
        expect(viaBroker.status).toBe("away");

        const offline = nextEvent(frank, "presence");
        erin.close();
        expect(await offline).toMatchObject({ userId: "erin", status: "offline" });
        await settle();
        expect(outsiderGot).toEqual([]);
      });

      it("sends nothing back for presence_update (fire-and-forget) unless asked for an ack", async () => {
        const { socket } = await client("t3", "gina");
        const errors = recorder(socket, "error");
        socket.emit("presence_update", { status: "away" });
        await settle();
        expect(errors).toEqual([]);
        expect(await request(socket, "presence_update", { status: "online" })).toEqual({ status: "online" });
      });
    });

    describe("heartbeat", () => {
      it("answers ping with pong", async () => {
        const { socket } = await client("t1", "alice");
        const pong = nextEvent(socket, "pong");
        socket.emit("ping");
        await pong;
      });
    });

    describe("errors and malformed input", () => {
      const malformed: Array<[string, string, unknown]> = [
        ["message", "null", null],
        ["message", "a number", 42],
        ["message", "an array", [1, 2]],
        ["message", "a string", "hello"],
        ["message", "no type", { recipientId: "b", payload: 1 }],
        ["message", "a numeric type", { type: 5, recipientId: "b", payload: 1 }],
        ["message", "no payload", { type: "m", recipientId: "b" }],
        ["message", "both targets", { type: "m", recipientId: "b", roomId: "r", payload: 1 }],
        ["message", "no target", { type: "m", payload: 1 }],
        ["message", "an unknown class", { type: "m", recipientId: "b", payload: 1, interactionClass: "CLASS_Z" }],
        ["message", "an unknown field", { type: "m", recipientId: "b", payload: 1, recipientID: "typo" }],
        ["message", "a __proto__ key", JSON.parse('{"type":"m","recipientId":"b","payload":1,"__proto__":{"polluted":true}}')],
        ["message", "an oversized payload", { type: "m", recipientId: "b", payload: "x".repeat(5000) }],
        ["message", "a payload over the byte limit in fewer characters (2-byte UTF-8)", { type: "m", recipientId: "b", payload: "é".repeat(2100) }],
        ["message", "a control character in recipientId", { type: "m", recipientId: "b\u0000c", payload: 1 }],
        ["join_room", "an empty roomId", { roomId: "" }],
        ["join_room", "a 200-char roomId", { roomId: "r".repeat(200) }],
        ["join_room", "an object roomId", { roomId: { $ne: 1 } }],
        ["presence_update", "an unknown status", { status: "dancing" }],
        ["presence_update", "nothing", undefined]
      ];
      it.each(malformed)("answers %s with %s by INVALID_REQUEST and keeps serving", async (event, _label, body) => {
        const { socket } = await client("t1", "mallory");
        const error = nextEvent(socket, "error");
        socket.emit(event, body);
        const err = await error;
        expect(err).toMatchObject({ code: "INVALID_REQUEST" });
        expect(typeof err.error).toBe("string");
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        const pong = nextEvent(socket, "pong");
        socket.emit("ping");
        await pong;
      });

      it("delivers a message just under the byte limit whose quick size bound is over it", async () => {
        const { socket: sender } = await client("t1", "near-limit-sender");
        const { socket: recipient } = await client("t1", "near-limit-recipient");
        const got = nextEvent(recipient, "message");
        // ~3 900 bytes of JSON; the bound counts 6 bytes per character, so only the exact check passes it.
        const payload = "x".repeat(3800);
        const ack = nextEvent(sender, "message_ack");
        sender.emit("message", { type: "m", recipientId: "near-limit-recipient", payload });
        expect(await ack).toMatchObject({ messageId: expect.any(String) });
        expect(await got).toMatchObject({ payload });
      });

      it("answers an unknown event and the generic `call` event with INVALID_REQUEST", async () => {
        const { socket } = await client("t1", "mallory");
        const first = nextEvent(socket, "error");
        socket.emit("launch_missiles", { now: true });
        expect(await first).toMatchObject({ code: "INVALID_REQUEST", details: { event: "launch_missiles" } });
        const second = nextEvent(socket, "error");
        socket.emit("call", "presence.connect", { tenantId: "t2", userId: "x", connectionId: "y", nodeId: "z" });
        expect(await second).toMatchObject({ code: "INVALID_REQUEST" });
      });

      it("refuses any attempt to address another tenant with TENANT_VIOLATION", async () => {
        const { socket: mallory } = await client("t1", "mallory");
        const { socket: victim } = await client("t2", "victim");
        const victimGot = recorder(victim, "message");
        for (const [event, body] of [
          ["message", { type: "m", recipientId: "victim", payload: 1, tenantId: "t2" }],
          ["join_room", { roomId: "r", tenantId: "t2" }],
          ["leave_room", { roomId: "r", tenantId: "t2" }],
          ["presence_update", { status: "away", tenantId: "t2" }]
        ] as const) {
          const error = nextEvent(mallory, "error");
          mallory.emit(event, body);
          expect(await error).toMatchObject({ code: "TENANT_VIOLATION" });
        }
        await settle();
        expect(victimGot).toEqual([]);
      });

      it("rate-limits a connection past WS_MESSAGE_RATE_LIMIT messages a minute without affecting others", async () => {
        const { socket: spammer } = await client("t1", "spammer");
        const { socket: bob } = await client("t1", "bob");
        const { socket: other } = await client("t1", "other");
        const acks = recorder(spammer, "message_ack");
        const errors = recorder(spammer, "error");
        const bobGot = recorder(bob, "message");
        for (let i = 0; i < 25; i++) spammer.emit("message", { type: "m", recipientId: "bob", payload: i });
        await eventually(() => acks.length + errors.length === 25, 3000, "25 answers");
        expect(acks).toHaveLength(20);
        expect(errors.every(e => e.code === "RATE_LIMIT")).toBe(true);
        expect(errors[0].details.retryAfterMs).toBeGreaterThan(0);
        await eventually(() => bobGot.length === 20, 3000, "20 deliveries");
        expect(bobGot.map(m => m.payload)).toEqual([...Array(20).keys()]);
        expect(await request(other, "message", { type: "m", recipientId: "bob", payload: "still fine" })).toHaveProperty("messageId");
      });

      it("survives a flood of garbage from one client while another keeps talking", async () => {
        const { socket: attacker } = await client("t1", "attacker");
        const { socket: alice } = await client("t1", "alice");
        const { socket: bob } = await client("t1", "bob");
        const garbage: unknown[] = [null, 0, -1, "", [], [[[[]]]], { a: { b: { c: {} } } }, "x".repeat(100_000), { type: null }, true];
        for (let i = 0; i < 200; i++) attacker.emit(["message", "join_room", "presence_update", "leave_room"][i % 4], garbage[i % garbage.length]);
        const got = nextEvent(bob, "message");
        alice.emit("message", { type: "m", recipientId: "bob", payload: "through" });
        expect((await got).payload).toBe("through");
      });
    });

    describe("internal push (gateway.send)", () => {
      it("pushes to a user, a room, a connection and a whole tenant without a socket", async () => {
        const { socket: hank, connected } = await client("t5", "hank");
        const { socket: other } = await client("t6", "hank");
        const otherGot = recorder(other, "notice");
        await request(hank, "join_room", { roomId: "ops" });
        const cases = [{ userId: "hank" }, { roomId: "ops" }, { connectionId: connected.connectionId }, { all: true }];
        for (const target of cases) {
          const got = nextEvent(hank, "notice");
          await node.broker.call("gateway.send", { tenantId: "t5", ...target, event: "notice", payload: { target } });
          expect(await got).toEqual({ target });
        }
        // A connection id of another tenant is not reachable through this tenant.
        await node.broker.call("gateway.send", { tenantId: "t6", connectionId: connected.connectionId, event: "notice", payload: 1 });
        await settle();
        expect(otherGot).toEqual([]);
      });

      it("validates its input", async () => {
        await expect(node.broker.call("gateway.send", { tenantId: "t5", event: "notice", payload: 1 })).rejects.toMatchObject({ type: "INVALID_REQUEST" });
        await expect(node.broker.call("gateway.send", { tenantId: "t5", userId: "u", event: "disconnect" })).rejects.toMatchObject({ type: "INVALID_REQUEST" });
        await expect(node.broker.call("gateway.send", { userId: "u", event: "x" })).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
      });
    });

    describe("token lifetime", () => {
      it("disconnects a connection when its token expires", async () => {
        const token = jwt.sign({ tenantId: "t1", userId: "shortlived", exp: Math.floor(Date.now() / 1000) + 2 }, TEST_SECRET);
        const socket = socketTo(node.url, token);
        sockets.push(socket);
        await nextEvent(socket, "connected");
        const err = nextEvent(socket, "error", 4000);
        const gone = nextEvent(socket, "disconnect", 4000);
        expect(await err).toMatchObject({ code: "AUTH_FAILED" });
        await gone;
      });
    });
  });
}
