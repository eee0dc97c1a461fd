import type { ServiceBroker } from "moleculer";
import { createRoomsService } from "../../../services/rooms.service";
import { asClient, callAs, eventually, newBroker, rejectionOf, settle, stopAll, testConfig, violationRecorder, type TenantViolationRecord } from "./support";

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
