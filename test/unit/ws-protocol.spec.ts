import jwt from "jsonwebtoken";
import { createTokenVerifier } from "../../lib/auth";
import { authFailed, authzFailed, invalidRequest, rateLimited, RealtimeError, ErrorCode, notFound } from "../../lib/errors";
import { APP_EVENT_TYPES } from "../../lib/push";
import { parseChannel } from "../../protocols/ws/ws-channels";
import { FROM_NOW, FROM_START, cursorOf, sequenceOf } from "../../protocols/ws/ws-cursor";
import { WsError, parseFrame, toWsError } from "../../protocols/ws/ws-envelope";
import { WS_EVENT_TYPES, frameOf, pollItemOf, presencePayloadOf, renderStored } from "../../protocols/ws/ws-render";
import { comparePositions, type StoredEvent } from "../../stores/event-log";
import { MemoryEventLog } from "../../stores/event-log/event-log.memory";
import { TEST_SECRET } from "../helpers/tokens";

const frame = (value: unknown) => parseFrame(Buffer.from(typeof value === "string" ? value : JSON.stringify(value)), false, 1024);

describe("seed 002 envelope parsing", () => {
  it("accepts a well-formed frame and defaults the payload", () => {
    expect(frame({ id: "m1", type: "subscribe", payload: { channel: "presence" }, ack_id: "a1", timestamp: "x" })).toEqual({
      frame: { id: "m1", type: "subscribe", payload: { channel: "presence" }, ack_id: "a1" }
    });
    expect(frame({ type: "heartbeat" })).toEqual({ frame: { type: "heartbeat", payload: {} } });
    expect(frame({ type: "heartbeat", ack_id: 7 })).toEqual({ frame: { type: "heartbeat", payload: {}, ack_id: "7" } });
  });

  it.each([
    ["not JSON", "{", "not_json"],
    ["an array", [1], "not_object"],
    ["a string", '"hi"', "not_object"]
  ])("refuses %s", (_what, value, reason) => {
    const result = frame(value);
    expect("error" in result && result.error).toMatchObject({ code: "INVALID_MESSAGE", details: { reason } });
  });

  it("refuses a missing or malformed type, payload, channel or id, keeping the ack id", () => {
    const cases: Array<[unknown, string]> = [
      [{ ack_id: "a", payload: {} }, "type"],
      [{ ack_id: "a", type: "" }, "type"],
      [{ ack_id: "a", type: "a b" }, "type"],
      [{ ack_id: "a", type: "x".repeat(65) }, "type"],
      [{ ack_id: "a", type: "t", payload: [1] }, "payload"],
      [{ ack_id: "a", type: "t", payload: "s" }, "payload"],
      [{ ack_id: "a", type: "t", channel: 5 }, "channel"],
      [{ ack_id: "a", type: "t", id: { x: 1 } }, "id"]
    ];
    for (const [value, field] of cases) {
      const result = frame(value);
      expect(result).toMatchObject({ ackId: "a", error: { code: "INVALID_MESSAGE", details: { field } } });
    }
    expect(frame({ type: "t", ack_id: { no: 1 } })).toMatchObject({ error: { details: { field: "ack_id" } } });
  });

  it("refuses binary and oversized frames", () => {
    expect(parseFrame(Buffer.from("{}"), true, 1024)).toMatchObject({ error: { details: { reason: "binary" } } });
    expect(parseFrame(Buffer.from(JSON.stringify({ type: "t", payload: { x: "y".repeat(2000) } })), false, 1024)).toMatchObject({ error: { details: { reason: "too_large", limit: 1024 } } });
  });
});

describe("seed 002 error mapping", () => {
  it("maps the product's codes onto the seed's, with its HTTP statuses", () => {
    expect(toWsError(authFailed("Missing token"))).toEqual({ status: 401, body: { code: "MISSING_TOKEN", message: "Missing token" } });
    expect(toWsError(authFailed("Token expired", { reason: "expired" })).body.code).toBe("TOKEN_EXPIRED");
    expect(toWsError(authFailed("Invalid token", { reason: "invalid" })).body.code).toBe("INVALID_TOKEN");
    expect(toWsError(invalidRequest("bad"))).toMatchObject({ status: 400, body: { code: "INVALID_MESSAGE" } });
    expect(toWsError(rateLimited())).toMatchObject({ status: 429, body: { code: "RATE_LIMITED" } });
    expect(toWsError(authzFailed())).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED" } });
    expect(toWsError(new RealtimeError(ErrorCode.TENANT_VIOLATION, "x"))).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED" } });
    expect(toWsError(notFound())).toMatchObject({ status: 404, body: { code: "NOT_FOUND" } });
    expect(toWsError(new Error("boom"))).toEqual({ status: 500, body: { code: "INTERNAL_ERROR", message: "Internal server error" } });
    expect(toWsError(new WsError("MAX_CONNECTIONS", "full", { limit: 10 }))).toEqual({ status: 429, body: { code: "MAX_CONNECTIONS", message: "full", details: { limit: 10 } } });
  });

  it("maps every refusal of the token verifier", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
    const codeOf = (token: unknown) => {
      try {
        verifier.verify(token);
        return "accepted";
      } catch (err) {
        return toWsError(err).body.code;
      }
    };
    expect(codeOf(undefined)).toBe("MISSING_TOKEN");
    expect(codeOf("")).toBe("MISSING_TOKEN");
    expect(codeOf("a.b.c")).toBe("INVALID_TOKEN");
    expect(codeOf(jwt.sign({ tenantId: "t", userId: "u", exp: Math.floor(Date.now() / 1000) - 600 }, TEST_SECRET))).toBe("TOKEN_EXPIRED");
    expect(codeOf(jwt.sign({ tenantId: "t" }, TEST_SECRET))).toBe("INVALID_TOKEN");
  });
});

describe("seed 002 token claims", () => {
  const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });

  it("accepts user_id / tenant_id as aliases of userId / tenantId, integers as strings", () => {
    expect(verifier.verify(jwt.sign({ tenant_id: "t1", user_id: "123" }, TEST_SECRET))).toMatchObject({ tenantId: "t1", userId: "123" });
    expect(verifier.verify(jwt.sign({ tenantId: "t1", user_id: 123 }, TEST_SECRET))).toMatchObject({ userId: "123" });
    expect(verifier.verify(jwt.sign({ tenantId: "t1", userId: "u", user_id: "u" }, TEST_SECRET))).toMatchObject({ userId: "u" });
  });

  it("refuses a token whose two spellings disagree, or without a tenant", () => {
    expect(() => verifier.verify(jwt.sign({ tenantId: "t1", userId: "a", user_id: "b" }, TEST_SECRET))).toThrow(/disagree/);
    expect(() => verifier.verify(jwt.sign({ user_id: "123" }, TEST_SECRET))).toThrow(/tenantId/);
    expect(() => verifier.verify(jwt.sign({ tenantId: "t1", user_id: 1.5 }, TEST_SECRET))).toThrow(/userId/);
  });
});

describe("seed 002 channels", () => {
  it("knows the seed's channels and nothing else", () => {
    expect(parseChannel("notifications")).toEqual({ kind: "notifications", name: "notifications" });
    expect(parseChannel("presence")).toEqual({ kind: "presence", name: "presence" });
    expect(parseChannel("feed:updates")).toEqual({ kind: "feed", name: "feed:updates" });
    expect(parseChannel("presence:123")).toEqual({ kind: "presence_user", name: "presence:123", userId: "123" });
    expect(parseChannel("conversation:conv_456")).toEqual({ kind: "conversation", name: "conversation:conv_456", conversationId: "conv_456" });
    expect(parseChannel("conversation:a:b")).toEqual({ kind: "conversation", name: "conversation:a:b", conversationId: "a:b" });
    for (const name of ["", "feed", "feed:other", "notifications:1", "conversation:", "presence:", "x:1", ":1", "conversation:\u0001", `presence:${"u".repeat(129)}`, 5]) {
      expect(parseChannel(name)).toBeUndefined();
    }
  });
});

describe("seed 002 stream numbers", () => {
  it("maps Redis positions to ms*1000+seq and back, in order", () => {
    const head = "rabc.1700000000000-5";
    const n = sequenceOf("rabc.1700000000000-3") as number;
    expect(n).toBe(1_700_000_000_000_003);
    expect(Number.isSafeInteger(n)).toBe(true);
    expect(cursorOf(n, head)).toEqual({ kind: "after", position: "rabc.1700000000000-3" });
    expect(sequenceOf("rabc.1700000000001-0")).toBeGreaterThan(sequenceOf("rabc.1700000000000-999") as number);
    expect(sequenceOf("rabc.1700000000000-1000")).toBeUndefined();
  });

  it("maps in-process positions with an epoch tag, so another epoch's number is lost", async () => {
    const log = new MemoryEventLog({ retentionMs: 60_000, maxEventsPerTenant: 100 });
    const event = (i: number) => ({ eventId: `e${i}`, eventType: "x", tenantId: "t", timestamp: "", payload: null, metadata: {}, schemaVersion: "1" });
    const positions: string[] = [];
    for (let i = 0; i < 3; i++) positions.push((await log.append("t", event(i), Date.now())).event.position);
    const numbers = positions.map(p => sequenceOf(p) as number);
    expect(numbers.every(n => Number.isSafeInteger(n) && n > FROM_START)).toBe(true);
    expect([...numbers].sort((a, b) => a - b)).toEqual(numbers);
    const head = positions[2];
    expect(cursorOf(numbers[0], head)).toEqual({ kind: "after", position: positions[0] });
    // Fixed epochs, so the test is deterministic: a number of one epoch is lost in the other.
    const before = sequenceOf("m0123456789ab.7") as number;
    expect(cursorOf(before, "m0123456789ab.9")).toEqual({ kind: "after", position: "m0123456789ab.7" });
    expect(cursorOf(before, "mba9876543210.9")).toEqual({ kind: "lost" });
    // 0 and 1 are never an event's number.
    expect(cursorOf(FROM_NOW, head)).toEqual({ kind: "now" });
    expect(cursorOf(FROM_START, head)).toEqual({ kind: "start" });
    expect(cursorOf(12345, null)).toEqual({ kind: "lost" });
  });

  it("orders numbers like positions", () => {
    const a = "rabc.1700000000000-3";
    const b = "rabc.1700000000002-0";
    expect(Math.sign((sequenceOf(a) as number) - (sequenceOf(b) as number))).toBe(comparePositions(a, b));
  });
});

describe("seed 002 rendering", () => {
  const stored = (eventType: string, payload: unknown, extra: Partial<StoredEvent> = {}): StoredEvent => ({
    eventId: "e1",
    eventType,
    tenantId: "t",
    timestamp: "2024-03-01T12:00:00.000Z",
    payload,
    metadata: {},
    schemaVersion: "1.0",
    position: "rabc.1700000000000-1",
    ...extra
  });

  it("renders application pushes as the seed's events on the seed's channels", () => {
    const notification = renderStored(stored(APP_EVENT_TYPES.notification, { eventKey: "like", notification: { id: "n1" } }, { audience: { userId: "u" } }));
    expect(notification && frameOf(notification)).toEqual({ id: "e1", type: "notification", channel: "notifications", payload: { id: "n1" }, timestamp: "2024-03-01T12:00:00.000Z", sequence: 1_700_000_000_000_001 });
    expect(notification && pollItemOf(notification)).toEqual({ id: 1_700_000_000_000_001, type: "notification", channel: "notifications", payload: { id: "n1" }, timestamp: "2024-03-01T12:00:00.000Z" });
    const message = renderStored(stored(APP_EVENT_TYPES.messageNew, { conversationId: "c1", message: { id: "m1", content: "hi" }, senderId: "ann", recipients: ["ann", "bob"] }, { audience: { userIds: ["ann", "bob"], conversationId: "c1" } }));
    expect(message).toMatchObject({ type: "message", channel: "conversation:c1", reach: "members", payload: { id: "m1", conversation_id: "c1", sender_id: "ann", content: "hi" } });
    expect(renderStored(stored(APP_EVENT_TYPES.feedUpdate, { post_id: "p" }))).toMatchObject({ type: "feed_update", channel: "feed:updates", reach: "subscribers" });
    expect(renderStored(stored(APP_EVENT_TYPES.countUpdate, { n: 1 }))).toMatchObject({ type: "count_update", channel: "feed:updates" });
    expect(renderStored(stored(APP_EVENT_TYPES.countUpdate, { n: 1 }, { audience: { userId: "u" } }))).toMatchObject({ type: "count_update", channel: "notifications" });
    expect(renderStored(stored(WS_EVENT_TYPES.notificationRead, { notification_id: "n1" }, { metadata: { origin: "conn-1" } }))).toMatchObject({ type: "notification_read", channel: "notifications", origin: "conn-1" });
    expect(renderStored(stored(WS_EVENT_TYPES.readReceipt, { conversation_id: "c1", message_ids: ["m"] }))).toMatchObject({ type: "read_receipt", channel: "conversation:c1", reach: "members" });
  });

  it("does not render other protocols' events or edits seed 002 has no event for", () => {
    expect(renderStored(stored("order.created", {}))).toBeUndefined();
    expect(renderStored(stored(APP_EVENT_TYPES.messageUpdated, { conversationId: "c1", message: {} }))).toBeUndefined();
    expect(renderStored(stored(APP_EVENT_TYPES.messageNew, { message: {} }))).toBeUndefined();
  });

  it("shows busy (stored as away) and the other statuses", () => {
    expect(presencePayloadOf({ userId: "u", status: "away", metadata: { status: "busy" }, lastSeen: "x" })).toEqual({ user_id: "u", status: "busy", last_seen: "x" });
    expect(presencePayloadOf({ userId: "u", status: "away", lastSeen: null })).toEqual({ user_id: "u", status: "away", last_seen: null });
    expect(presencePayloadOf({ userId: "u", status: "online", metadata: { status: "busy" }, lastSeen: null }).status).toBe("online");
  });
});
