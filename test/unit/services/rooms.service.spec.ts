import type { ServiceBroker } from "moleculer";
import { createRoomsService } from "../../../services/rooms.service";
import { ISO_DATE, asClient, callAs, eventually, newBroker, rejectionOf, settle, stopAll, testConfig, violationRecorder, type TenantViolationRecord } from "./support";

interface Member {
  userId: string;
  connectionId: string;
}

const brokers: ServiceBroker[] = [];
let broker: ServiceBroker;
let violations: TenantViolationRecord[];

beforeEach(async () => {
  violations = [];
  broker = newBroker();
  brokers.push(broker);
  broker.createService(createRoomsService(testConfig()));
  broker.createService(violationRecorder(violations));
  await broker.start();
});

afterEach(() => stopAll(brokers));

const join = (tenantId: string, roomId: string, userId: string, connectionId: string, nodeId = "gw-1") =>
  callAs<{ roomId: string; joined: boolean }>(broker, "rooms.join", { tenantId, roomId, userId, connectionId, nodeId });
const members = (tenantId: string, roomId: string, opts?: { meta: object }) =>
  broker.call<{ roomId: string; members: Member[] }, { tenantId: string; roomId: string }>("rooms.members", { tenantId, roomId }, opts);
const ofUser = (tenantId: string, userId: string) => callAs<string[]>(broker, "rooms.ofUser", { tenantId, userId });
const ofConnection = (tenantId: string, connectionId: string) => callAs<string[]>(broker, "rooms.ofConnection", { tenantId, connectionId });

const byConnection = (a: Member, b: Member) => a.connectionId.localeCompare(b.connectionId);

describe("rooms.join / rooms.leave", () => {
  it("joins once per connection and lists members without their node", async () => {
    expect(await join("t1", "r1", "u1", "c1")).toEqual({ roomId: "r1", joined: true });
    expect(await join("t1", "r1", "u1", "c1")).toEqual({ roomId: "r1", joined: false });
    expect(await join("t1", "r1", "u2", "c2")).toEqual({ roomId: "r1", joined: true });

    const result = await members("t1", "r1");
    expect(result.roomId).toBe("r1");
    expect(result.members.sort(byConnection)).toEqual([
      { userId: "u1", connectionId: "c1" },
      { userId: "u2", connectionId: "c2" }
    ]);
  });

  it("leaves a room once; leaving a room never joined is not an error", async () => {
    await join("t1", "r1", "u1", "c1");
    expect(await broker.call("rooms.leave", { tenantId: "t1", roomId: "r1", connectionId: "c1" })).toEqual({ roomId: "r1", left: true });
    expect(await broker.call("rooms.leave", { tenantId: "t1", roomId: "r1", connectionId: "c1" })).toEqual({ roomId: "r1", left: false });
    expect(await members("t1", "r1")).toEqual({ roomId: "r1", members: [] });
    expect(await ofUser("t1", "u1")).toEqual([]);
  });

  it("keeps the same room id of two tenants apart", async () => {
    await join("t1", "r1", "u1", "c1");
    await join("t2", "r1", "u9", "c9");
    expect((await members("t1", "r1")).members).toEqual([{ userId: "u1", connectionId: "c1" }]);
    expect((await members("t2", "r1")).members).toEqual([{ userId: "u9", connectionId: "c9" }]);
    await broker.call("rooms.leave", { tenantId: "t2", roomId: "r1", connectionId: "c1" });
    expect((await members("t1", "r1")).members).toHaveLength(1);
    expect(await ofUser("t2", "u1")).toEqual([]);
  });
});

describe("rooms.ofUser / rooms.ofConnection", () => {
  it("answers the rooms of any device of a user, and of one connection", async () => {
    await join("t1", "r1", "u1", "phone");
    await join("t1", "r2", "u1", "laptop");
    await join("t1", "r2", "u1", "phone");
    await join("t1", "r3", "u2", "other");

    expect((await ofUser("t1", "u1")).sort()).toEqual(["r1", "r2"]);
    expect((await ofConnection("t1", "phone")).sort()).toEqual(["r1", "r2"]);
    expect(await ofConnection("t1", "laptop")).toEqual(["r2"]);
    expect(await ofUser("t1", "nobody")).toEqual([]);

    // r2 is still the user's while one device is in it
    await broker.call("rooms.leave", { tenantId: "t1", roomId: "r2", connectionId: "phone" });
    expect((await ofUser("t1", "u1")).sort()).toEqual(["r1", "r2"]);
    await broker.call("rooms.leave", { tenantId: "t1", roomId: "r2", connectionId: "laptop" });
    expect(await ofUser("t1", "u1")).toEqual(["r1"]);
  });
});

describe("rooms.leaveAll", () => {
  it("removes one connection from every room and returns them", async () => {
    await join("t1", "r1", "u1", "c1");
    await join("t1", "r2", "u1", "c1");
    await join("t1", "r2", "u2", "c2");

    const { roomIds } = await callAs<{ roomIds: string[] }>(broker, "rooms.leaveAll", { tenantId: "t1", connectionId: "c1" });
    expect(roomIds.sort()).toEqual(["r1", "r2"]);
    expect(await ofConnection("t1", "c1")).toEqual([]);
    expect(await ofUser("t1", "u1")).toEqual([]);
    expect((await members("t1", "r2")).members).toEqual([{ userId: "u2", connectionId: "c2" }]);
    expect(await broker.call("rooms.leaveAll", { tenantId: "t1", connectionId: "c1" })).toEqual({ roomIds: [] });
  });
});

describe("rooms.removeNode", () => {
  it("drops every membership held by the node, in every tenant, and nothing else", async () => {
    await join("t1", "r1", "u1", "c1", "gw-x");
    await join("t1", "r2", "u1", "c1", "gw-x");
    await join("t2", "r1", "u3", "c3", "gw-x");
    await join("t1", "r1", "u2", "c2", "gw-y");

    expect(await broker.call("rooms.removeNode", { nodeId: "gw-x" })).toEqual({ removed: 3 });
    expect(await ofUser("t1", "u1")).toEqual([]);
    expect(await ofUser("t2", "u3")).toEqual([]);
    expect((await members("t1", "r1")).members).toEqual([{ userId: "u2", connectionId: "c2" }]);
    expect(await broker.call("rooms.removeNode", { nodeId: "gw-x" })).toEqual({ removed: 0 });
  });
});

describe("rooms.members authorization", () => {
  beforeEach(async () => {
    await join("t1", "r1", "member", "c-member");
    await join("t1", "r2", "outsider", "c-outsider");
  });

  it("refuses a normal user who is in none of the room's connections", async () => {
    const err = await rejectionOf(members("t1", "r1", asClient("t1", "outsider", "user")));
    expect(err).toMatchObject({ type: "AUTHZ_FAILED", code: 403 });
    expect(err.data).toEqual({ roomId: "r1" });
  });

  it("lets a member user list the room", async () => {
    expect(await members("t1", "r1", asClient("t1", "member", "user"))).toEqual({ roomId: "r1", members: [{ userId: "member", connectionId: "c-member" }] });
  });

  it.each(["admin", "service", "super_admin"])("lets role %s list any room of its tenant without membership", async role => {
    expect((await members("t1", "r1", asClient("t1", "boss", role))).members).toEqual([{ userId: "member", connectionId: "c-member" }]);
  });

  it("lets internal callers (no meta.auth) list any room", async () => {
    expect((await members("t1", "r1")).members).toHaveLength(1);
  });

  it("refuses a user whose membership is in the same room id of another tenant", async () => {
    await join("t2", "r1", "outsider", "c-elsewhere");
    expect((await rejectionOf(members("t1", "r1", asClient("t1", "outsider")))).type).toBe("AUTHZ_FAILED");
  });
});

describe("tenant guard", () => {
  it("refuses a client of t1 listing a room of t2 and reports it", async () => {
    await join("t2", "r1", "u1", "c1");
    const err = await rejectionOf(members("t2", "r1", asClient("t1", "u", "user")));
    expect(err).toMatchObject({ type: "TENANT_VIOLATION", code: 403 });
    await eventually(() => violations.length === 1, 1000, "violation event");
    expect(violations[0]).toMatchObject({ tenantId: "t1", userId: "u", requestedTenantId: "t2", action: "rooms.members" });
  });

  it("refuses even an admin of t1 in t2 (roles never cross tenants)", async () => {
    expect((await rejectionOf(members("t2", "r1", asClient("t1", "boss", "admin")))).type).toBe("TENANT_VIOLATION");
  });

  it("refuses a client of t1 joining a room of t2, which stays untouched", async () => {
    const err = await rejectionOf(broker.call("rooms.join", { tenantId: "t2", roomId: "r1", userId: "u", connectionId: "c", nodeId: "n" }, asClient("t1", "u")));
    expect(err.type).toBe("TENANT_VIOLATION");
    expect(await members("t2", "r1")).toEqual({ roomId: "r1", members: [] });
  });

  it("lets a client of t1 act in t1", async () => {
    await expect(broker.call("rooms.join", { tenantId: "t1", roomId: "r1", userId: "u", connectionId: "c", nodeId: "n" }, asClient("t1", "u"))).resolves.toEqual({ roomId: "r1", joined: true });
    await expect(members("t1", "r1", asClient("t1", "u"))).resolves.toMatchObject({ members: [{ userId: "u", connectionId: "c" }] });
    await settle();
    expect(violations).toEqual([]);
  });
});

describe("validation", () => {
  it.each([
    ["rooms.join", { tenantId: "t1", roomId: "r1", userId: "u1", connectionId: "c1" }],
    ["rooms.join", { tenantId: "t1", roomId: "", userId: "u1", connectionId: "c1", nodeId: "n" }],
    ["rooms.join", { tenantId: "t1", roomId: "r".repeat(129), userId: "u1", connectionId: "c1", nodeId: "n" }],
    ["rooms.leave", { tenantId: "t1", roomId: "r1" }],
    ["rooms.leaveAll", { connectionId: "c1" }],
    ["rooms.members", { tenantId: "t1", roomId: 7 }],
    ["rooms.ofUser", { tenantId: "t1" }],
    ["rooms.ofConnection", { tenantId: "t1" }],
    ["rooms.removeNode", {}]
  ])("%s refuses %j", async (action, params) => {
    const err = await rejectionOf(broker.call(action, params));
    expect(err).toMatchObject({ type: "VALIDATION_ERROR", code: 422 });
  });
});

describe("private rooms (rooms.create / rooms.update / rooms.get, enforced by rooms.join)", () => {
  const joinAs = (roomId: string, userId: string, role = "user", tenantId = "t1") =>
    broker.call<{ roomId: string; joined: boolean }, object>("rooms.join", { tenantId, roomId, userId, connectionId: `c-${userId}-${role}`, nodeId: "gw-1" }, asClient(tenantId, userId, role));
  const create = (params: object, opts?: { meta: object }) => broker.call<Record<string, unknown>, object>("rooms.create", { tenantId: "t1", ...params }, opts);
  const update = (params: object, opts?: { meta: object }) => broker.call<Record<string, unknown>, object>("rooms.update", { tenantId: "t1", ...params }, opts);
  const get = (roomId: string, opts?: { meta: object }) => broker.call<Record<string, unknown>, object>("rooms.get", { tenantId: "t1", roomId }, opts);
  const admin = asClient("t1", "boss", "admin");

  it("leaves rooms that were never created public (anyone of the tenant joins)", async () => {
    expect(await joinAs("lobby", "anyone")).toEqual({ roomId: "lobby", joined: true });
    expect((await rejectionOf(get("lobby", admin))).type).toBe("NOT_FOUND");
  });

  it("creates a private room by default and answers its settings", async () => {
    const room = await create({ roomId: "vip", members: ["alice", "alice"], allowedRoles: ["moderator"] }, admin);
    expect(room).toEqual({
      roomId: "vip",
      private: true,
      members: ["alice"],
      allowedRoles: ["moderator"],
      createdBy: "boss",
      createdAt: expect.stringMatching(ISO_DATE),
      updatedAt: room.createdAt
    });
    expect(await get("vip", admin)).toEqual(room);
  });

  it("admits listed members and holders of an allowed role, refuses everyone else with AUTHZ_FAILED", async () => {
    await create({ roomId: "vip", members: ["alice"], allowedRoles: ["moderator"] }, admin);
    expect(await joinAs("vip", "alice")).toEqual({ roomId: "vip", joined: true });
    expect(await joinAs("vip", "mod", "moderator")).toEqual({ roomId: "vip", joined: true });
    const err = await rejectionOf(joinAs("vip", "mallory"));
    expect(err).toMatchObject({ type: "AUTHZ_FAILED", code: 403, data: { roomId: "vip", reason: "private" } });
    // No implicit bypass: an admin is admitted only when listed.
    expect((await rejectionOf(joinAs("vip", "boss", "admin"))).type).toBe("AUTHZ_FAILED");
    const roomMembers = (await members("t1", "vip")).members.map(m => m.userId).sort();
    expect(roomMembers).toEqual(["alice", "mod"]);
  });

  it("lets internal callers (gateway heartbeats re-registering a connection) join without the check", async () => {
    await create({ roomId: "vip", members: [] }, admin);
    expect(await join("t1", "vip", "anyone", "c1")).toEqual({ roomId: "vip", joined: true });
  });

  it("refuses a client joining on behalf of another user", async () => {
    const err = await rejectionOf(broker.call("rooms.join", { tenantId: "t1", roomId: "lobby", userId: "victim", connectionId: "c", nodeId: "n" }, asClient("t1", "mallory")));
    expect(err.type).toBe("AUTHZ_FAILED");
  });

  it("a room created with private: false stays public", async () => {
    await create({ roomId: "open", private: false, members: ["x"] }, admin);
    expect(await joinAs("open", "anyone")).toMatchObject({ joined: true });
  });

  it("updates: making a room private, adding and removing members, changing roles", async () => {
    await create({ roomId: "r", private: false }, admin);
    expect(await joinAs("r", "bob")).toMatchObject({ joined: true });
    const priv = await update({ roomId: "r", private: true, addMembers: ["carol"] }, admin);
    expect(priv).toMatchObject({ private: true, members: ["carol"], allowedRoles: [] });
    expect((await rejectionOf(joinAs("r", "dave"))).type).toBe("AUTHZ_FAILED");
    expect(await joinAs("r", "carol")).toMatchObject({ joined: true });
    await update({ roomId: "r", addMembers: ["dave"], removeMembers: ["carol"], allowedRoles: ["auditor"] }, admin);
    expect(await joinAs("r", "dave")).toMatchObject({ joined: true });
    expect((await rejectionOf(joinAs("r", "carol", "user"))).type).toBe("AUTHZ_FAILED");
    expect(await joinAs("r", "eve", "auditor")).toMatchObject({ joined: true });
    expect((await get("r", admin)).updatedAt).not.toBe(undefined);
  });

  it.each(["admin", "service", "super_admin"])("lets role %s create and update rooms", async role => {
    const as = asClient("t1", "op", role);
    await expect(create({ roomId: `by-${role}` }, as)).resolves.toMatchObject({ createdBy: "op" });
    await expect(update({ roomId: `by-${role}`, private: false }, as)).resolves.toMatchObject({ private: false });
  });

  it.each(["user", "moderator"])("refuses role %s creating or updating rooms with AUTHZ_FAILED", async role => {
    const as = asClient("t1", "someone", role);
    expect(await rejectionOf(create({ roomId: "grab" }, as))).toMatchObject({ type: "AUTHZ_FAILED", code: 403 });
    await create({ roomId: "taken" }, admin);
    expect((await rejectionOf(update({ roomId: "taken", members: ["someone"] }, as))).type).toBe("AUTHZ_FAILED");
    expect((await rejectionOf(joinAs("taken", "someone", role))).type).toBe("AUTHZ_FAILED");
  });

  it("refuses creating an existing room and updating an unknown one", async () => {
    await create({ roomId: "once" }, admin);
    expect(await rejectionOf(create({ roomId: "once", private: false }, admin))).toMatchObject({ type: "INVALID_REQUEST", data: { roomId: "once", reason: "exists" } });
    expect((await get("once", admin)).private).toBe(true);
    expect(await rejectionOf(update({ roomId: "never", private: true }, admin))).toMatchObject({ type: "NOT_FOUND", code: 404 });
    expect((await rejectionOf(update({ roomId: "once" }, admin))).type).toBe("INVALID_REQUEST");
  });

  it("shows settings to room admins and admitted users only", async () => {
    await create({ roomId: "vip", members: ["alice"], allowedRoles: ["moderator"] }, admin);
    await create({ roomId: "open", private: false }, admin);
    expect((await get("vip", asClient("t1", "alice"))).members).toEqual(["alice"]);
    expect((await get("vip", asClient("t1", "m", "moderator"))).roomId).toBe("vip");
    expect((await rejectionOf(get("vip", asClient("t1", "mallory")))).type).toBe("AUTHZ_FAILED");
    expect((await get("open", asClient("t1", "mallory"))).private).toBe(false);
  });

  it("keeps room settings per tenant: t2's room of the same id is unrelated", async () => {
    await create({ roomId: "vip", members: ["alice"] }, admin);
    expect(await joinAs("vip", "mallory", "user", "t2")).toMatchObject({ joined: true });
    expect((await rejectionOf(broker.call("rooms.create", { tenantId: "t2", roomId: "x" }, admin))).type).toBe("TENANT_VIOLATION");
  });

  it.each([
    [{ roomId: "" }],
    [{ roomId: "a\u0000b" }],
    [{ roomId: "r", private: "yes" }],
    [{ roomId: "r", members: "alice" }],
    [{ roomId: "r", members: [""] }],
    [{ roomId: "r", members: ["ok", 7] }],
    [{ roomId: "r", members: ["bad\nid"] }],
    [{ roomId: "r", allowedRoles: Array.from({ length: 33 }, (_, i) => `r${i}`) }],
    [{ roomId: "r", members: Array.from({ length: 10_001 }, (_, i) => `u${i}`) }]
  ])("refuses invalid settings %j", async params => {
    expect((await rejectionOf(create(params, admin))).type).toBe("VALIDATION_ERROR");
  });
});
