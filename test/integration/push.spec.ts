import type { Service } from "moleculer";
import type { MembersRemovedNotice, PresenceNotice, PushNotice, PushSink } from "../../lib/push";
import { connect, eventually, nextEvent, recorder } from "../helpers/client";
import { startNode, type TestNode } from "../helpers/node";
import { tokenFor } from "../helpers/tokens";
import { fetchJson } from "../helpers/http";

/** The server push API and conversations over REST, and the notices every protocol adapter gets. */
describe("push API and conversations", () => {
  let node: TestNode;
  let notices: { push: PushNotice[]; presence: PresenceNotice[]; removed: MembersRemovedNotice[] };
  const backend = tokenFor("acme", "crm-backend", { role: "service" });

  async function post(path: string, body: unknown, token = backend, tenant = "acme") {
    return fetchJson(`${node.url}/api${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "x-tenant-id": tenant, "content-type": "application/json" },
      body: JSON.stringify(body)
    });
  }

  beforeAll(async () => {
    node = await startNode();
    notices = { push: [], presence: [], removed: [] };
    const sink: PushSink = {
      name: "test",
      push: n => notices.push.push(n),
      presence: n => notices.presence.push(n),
      membersRemoved: n => notices.removed.push(n)
    };
    (node.broker.getLocalService("gateway") as Service & { addPushSink(s: PushSink): void }).addPushSink(sink);
  });
  afterAll(() => node.stop());

  it("pushes a notification to one user, durably, and renders it for PF-2 sockets as `event`", async () => {
    const { socket: ann } = await connect(node.url, tokenFor("acme", "ann"));
    const { socket: bob } = await connect(node.url, tokenFor("acme", "bob"));
    const bobEvents = recorder(bob, "event");
    try {
      const seen = nextEvent(ann, "event");
      const res = await post("/push/notifications", { userId: "ann", eventKey: "task.assigned", notification: { id: "n1", title: "Review" } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ eventId: expect.any(String), position: expect.any(String), duplicate: false });
      const event = await seen;
      expect(event).toMatchObject({ eventType: "app.notification", payload: { eventKey: "task.assigned", notification: { id: "n1" } }, audience: { userId: "ann" }, position: res.body.position });
      await eventually(() => notices.push.some(n => n.stored.eventId === res.body.eventId), 2000, "sink notice");
      expect(bobEvents).toEqual([]);
      // Replaying the same eventId is not a second event.
      const again = await post("/push/notifications", { eventId: res.body.eventId, userId: "ann", eventKey: "task.assigned", notification: { id: "n1" } });
      expect(again.body).toMatchObject({ eventId: res.body.eventId, duplicate: true });
    } finally {
      ann.close();
      bob.close();
    }
  });

  it("addresses a conversation message to every recipient and the sender, visible to them on poll", async () => {
    const res = await post("/push/messages", { conversationId: "c1", message: { id: "m1", body: "hi" }, senderId: "ann", recipients: ["bob"] });
    expect(res.status).toBe(200);
    await eventually(() => notices.push.some(n => n.stored.eventId === res.body.eventId), 2000, "sink notice");
    const notice = notices.push.find(n => n.stored.eventId === res.body.eventId);
    expect(notice?.stored).toMatchObject({ eventType: "app.message.new", audience: { userIds: ["bob", "ann"], conversationId: "c1" }, payload: { conversationId: "c1", senderId: "ann", recipients: ["bob", "ann"] } });
    const poll = async (user: string) => {
      const r = await fetch(`${node.url}/api/events/poll?limit=100`, { headers: { authorization: `Bearer ${tokenFor("acme", user)}`, "x-tenant-id": "acme" } });
      return ((await r.json()) as { events: Array<{ eventId: string }> }).events.map(e => e.eventId);
    };
    expect(await poll("bob")).toContain(res.body.eventId);
    expect(await poll("carol")).not.toContain(res.body.eventId);
  });

  it("refuses pushes from user tokens, bad bodies and other tenants", async () => {
    expect((await post("/push/feed", { update: { type: "new_post" } }, tokenFor("acme", "ann"))).status).toBe(403);
    expect((await post("/push/messages", { conversationId: "c1", message: "not an object", senderId: "ann", recipients: [] })).body.code).toBe("INVALID_REQUEST");
    expect((await post("/push/counts", { tenantId: "globex", counts: { n: 1 } })).body.code).toBe("TENANT_VIOLATION");
    expect((await post("/push/counts", { counts: { new_posts_count: 5 } })).status).toBe(200);
  });

  it("declares conversations and announces removed members to every adapter", async () => {
    expect((await post("/conversations", { conversationId: "c9", members: ["ann", "bob"] })).body).toMatchObject({ created: true, members: ["ann", "bob"] });
    expect((await post("/conversations", { conversationId: "c9", members: ["x"] }, tokenFor("acme", "ann"))).status).toBe(403);
    expect((await post("/conversations/c9/members", { userIds: ["carol"] })).body).toMatchObject({ added: ["carol"] });
    expect(await node.broker.call("conversations.isMember", { tenantId: "acme", conversationId: "c9", userId: "carol" })).toEqual({ member: true });
    expect((await post("/conversations/c9/members/remove", { userIds: ["bob", "zed"] })).body).toMatchObject({ removed: ["bob"] });
    await eventually(() => notices.removed.length > 0, 2000, "removal notice");
    expect(notices.removed).toEqual([{ tenantId: "acme", conversationId: "c9", userIds: ["bob"] }]);
    expect((await post("/conversations/nope/members", { userIds: ["a"] })).status).toBe(404);
  });

  it("tells adapters about every presence change, including a second device", async () => {
    const { socket: one } = await connect(node.url, tokenFor("acme", "dora"));
    const { socket: two } = await connect(node.url, tokenFor("acme", "dora"));
    await eventually(() => notices.presence.filter(n => n.presence.userId === "dora" && n.reason === "connect").length === 2, 2000, "two connect notices");
    const [first, second] = notices.presence.filter(n => n.presence.userId === "dora");
    expect(first).toMatchObject({ tenantId: "acme", changed: true, presence: { status: "online", connections: 1 } });
    expect(second).toMatchObject({ changed: false, presence: { connections: 2 } });
    one.close();
    two.close();
    await eventually(() => notices.presence.some(n => n.presence.userId === "dora" && n.reason === "disconnect" && n.changed), 2000, "offline notice");
  });
});
