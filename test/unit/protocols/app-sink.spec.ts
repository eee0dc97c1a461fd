import { APP_EVENT_TYPES, type PresenceNotice } from "../../../lib/push";
import { conversationChannel, tenantChannel, userChannel } from "../../../lib/keys";
import { appEventOf, presenceSnapshotOf } from "../../../protocols/app/app-sink";
import { parseConversation, payloadBytes } from "../../../protocols/app/app-schemas";
import type { StoredEvent } from "../../../stores/event-log";

const stored = (over: Partial<StoredEvent>): StoredEvent => ({
  eventId: "e1",
  eventType: "x",
  tenantId: "acme",
  timestamp: "2026-01-01T00:00:00.000Z",
  payload: {},
  metadata: {},
  schemaVersion: "1.0",
  position: "1.1",
  ...over
});

describe("appEventOf (seed 003 rendering of logged events)", () => {
  it("renders a notification to its user's room", () => {
    const event = stored({ eventType: APP_EVENT_TYPES.notification, payload: { eventKey: "k", notification: { id: 1 } }, audience: { userId: "ann" } });
    expect(appEventOf(event)).toEqual({ event: "notifications:new", payload: { eventKey: "k", notification: { id: 1 } }, rooms: [userChannel("acme", "ann")] });
  });

  it("renders messages to the recipients' rooms and the conversation's room", () => {
    const payload = { conversationId: "c1", message: { id: "m" }, senderId: "ann", recipients: ["bob", "ann"] };
    for (const [type, name] of [
      [APP_EVENT_TYPES.messageNew, "messages:new"],
      [APP_EVENT_TYPES.messageUpdated, "messages:updated"],
      [APP_EVENT_TYPES.messageDeleted, "messages:deleted"]
    ]) {
      expect(appEventOf(stored({ eventType: type, payload, audience: { userIds: ["bob", "ann"], conversationId: "c1" } }))).toEqual({
        event: name,
        payload,
        rooms: [userChannel("acme", "bob"), userChannel("acme", "ann"), conversationChannel("acme", "c1")]
      });
    }
  });

  it("never widens the audience: the conversation room only when the audience names it", () => {
    const payload = { conversationId: "c1", message: {}, senderId: "a", recipients: ["b"] };
    expect(appEventOf(stored({ eventType: APP_EVENT_TYPES.messageNew, payload, audience: { userId: "b" } }))?.rooms).toEqual([userChannel("acme", "b")]);
    expect(appEventOf(stored({ eventType: APP_EVENT_TYPES.messageNew, payload, audience: { roomId: "r" } }))).toBeUndefined();
    expect(appEventOf(stored({ eventType: APP_EVENT_TYPES.messageNew, payload }))?.rooms).toEqual([tenantChannel("acme")]);
  });

  it("does not render other event types or malformed payloads", () => {
    expect(appEventOf(stored({ eventType: "order.placed", payload: { a: 1 } }))).toBeUndefined();
    expect(appEventOf(stored({ eventType: APP_EVENT_TYPES.feedUpdate, payload: { a: 1 } }))).toBeUndefined();
    expect(appEventOf(stored({ eventType: APP_EVENT_TYPES.notification, payload: "text", audience: { userId: "a" } }))).toBeUndefined();
  });
});

describe("presenceSnapshotOf", () => {
  const notice = (status: "online" | "away" | "offline", connections: number, devices: PresenceNotice["devices"]): PresenceNotice => ({
    tenantId: "acme",
    reason: "connect",
    changed: true,
    presence: { userId: "ann", status, lastSeen: new Date(5000).toISOString(), connections },
    devices
  });
  const devices = [
    { connectionId: "s1", nodeId: "n1", connectedAt: 1000, lastSeen: 9000, userAgent: "UA", ip: "10.0.0.1" },
    { connectionId: "s2", nodeId: "n2", connectedAt: 2000, lastSeen: 3000 }
  ];

  it("lists devices, with addresses for the user's own devices only", () => {
    const own = presenceSnapshotOf(notice("online", 2, devices), true);
    expect(own).toEqual({
      userId: "ann",
      isOnline: true,
      lastSeen: 9000,
      sockets: [
        { socketId: "s1", connectedAt: 1000, lastSeen: 9000, userAgent: "UA", ip: "10.0.0.1" },
        { socketId: "s2", connectedAt: 2000, lastSeen: 3000, userAgent: null, ip: null }
      ]
    });
    expect(presenceSnapshotOf(notice("online", 2, devices), false).sockets.map(s => s.ip)).toEqual([null, null]);
    expect(presenceSnapshotOf(notice("away", 2, devices), false).isOnline).toBe(true);
  });

  it("shows offline users, and users appearing offline, without devices to others", () => {
    expect(presenceSnapshotOf(notice("offline", 0, []), false)).toEqual({ userId: "ann", isOnline: false, lastSeen: 5000, sockets: [] });
    expect(presenceSnapshotOf(notice("offline", 2, devices), false)).toEqual({ userId: "ann", isOnline: false, lastSeen: 5000, sockets: [] });
    expect(presenceSnapshotOf(notice("offline", 2, devices), true).sockets).toHaveLength(2);
    const never: PresenceNotice = { ...notice("offline", 0, []), presence: { userId: "ann", status: "offline", lastSeen: null, connections: 0 } };
    expect(presenceSnapshotOf(never, false).lastSeen).toBeNull();
  });
});

describe("payloadBytes / parseConversation", () => {
  it("counts JSON bytes and binary attachments by their length", () => {
    expect(payloadBytes([{ a: "é" }])).toBe(Buffer.byteLength(JSON.stringify([{ a: "é" }])));
    expect(payloadBytes([Buffer.alloc(10_000)])).toBeGreaterThanOrEqual(10_000);
    expect(payloadBytes([Buffer.alloc(10_000)])).toBeLessThan(10_100);
    expect(payloadBytes([{ nested: new Uint8Array(6000) }])).toBeGreaterThanOrEqual(6000);
    expect(payloadBytes([])).toBe(2);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(payloadBytes([cycle])).toBe(Number.POSITIVE_INFINITY);
  });

  it("accepts {conversationId} and refuses anything else with INVALID_REQUEST", () => {
    expect(parseConversation("conversations:join", { conversationId: "c1" })).toEqual({ conversationId: "c1" });
    expect(parseConversation("conversations:join", { conversationId: "c1", tenantId: "t" })).toEqual({ conversationId: "c1", tenantId: "t" });
    for (const bad of [undefined, null, "c1", ["c1"], {}, { conversationId: "" }, { conversationId: 1 }, { conversationId: "x".repeat(129) }, { conversationId: "a\nb" }]) {
      expect(() => parseConversation("conversations:join", bad)).toThrow(expect.objectContaining({ type: "INVALID_REQUEST" }));
    }
  });
});
