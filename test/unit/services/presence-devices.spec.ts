import type { Context, ServiceBroker } from "moleculer";
import type { PresenceNotice, PresenceNotices } from "../../../lib/push";
import { createPresenceService } from "../../../services/presence.service";
import { createRoomsService } from "../../../services/rooms.service";
import { asClient, eventually, newBroker, rejectionOf, stopAll, testConfig } from "./support";

/** The presence service tells gateways about every change with the user's live devices (seed 003 snapshots). */
describe("presence notices with devices", () => {
  let broker: ServiceBroker;
  let notices: PresenceNotice[];
  let broadcasts: number;

  beforeEach(async () => {
    notices = [];
    broadcasts = 0;
    broker = newBroker();
    broker.createService(createPresenceService(testConfig()));
    broker.createService(createRoomsService(testConfig()));
    broker.createService({ name: "gateway", events: {
        "gateway.presence": (ctx: Context<PresenceNotices>) => {
          broadcasts += 1;
          notices.push(...ctx.params.notices);
        }
      }
    });
    await broker.start();
  });
  afterEach(() => stopAll([broker]));

  const of = (userId: string, reason: string) => notices.filter(n => n.presence.userId === userId && n.reason === reason);

  it("lists every device with its info on connect, refreshes it on touch, and empties it when offline", async () => {
    await broker.call("presence.connect", { tenantId: "t1", userId: "u1", connectionId: "c1", nodeId: "gw-1", device: { connectedAt: 1000, userAgent: "Desk", ip: "10.0.0.1" } });
    await broker.call("presence.connect", { tenantId: "t1", userId: "u1", connectionId: "c2", nodeId: "gw-2" });
    await eventually(() => of("u1", "connect").length === 2, 2000, "two connect notices");
    const second = of("u1", "connect").find(n => n.devices?.length === 2);
    expect(second).toMatchObject({ tenantId: "t1", changed: false, presence: { status: "online", connections: 2 } });
    expect(second?.devices).toEqual([
      { connectionId: "c1", nodeId: "gw-1", connectedAt: 1000, lastSeen: expect.any(Number), userAgent: "Desk", ip: "10.0.0.1" },
      { connectionId: "c2", nodeId: "gw-2", connectedAt: expect.any(Number), lastSeen: expect.any(Number) }
    ]);

    const before = second?.devices?.[1].lastSeen ?? 0;
    await new Promise(r => setTimeout(r, 5));
    expect(await broker.call("presence.touch", { tenantId: "t1", userId: "u1", connectionId: "c2" })).toMatchObject({ known: true });
    await eventually(() => of("u1", "heartbeat").length === 1, 2000, "heartbeat notice");
    expect(of("u1", "heartbeat")[0].devices?.[1].lastSeen).toBeGreaterThan(before);

    await broker.call("presence.disconnect", { tenantId: "t1", userId: "u1", connectionId: "c1" });
    await broker.call("presence.disconnect", { tenantId: "t1", userId: "u1", connectionId: "c2" });
    await eventually(() => of("u1", "disconnect").length === 2, 2000, "two disconnect notices");
    expect(of("u1", "disconnect").map(n => [n.changed, n.devices?.map(d => d.connectionId)])).toEqual([
      [false, ["c2"]],
      [true, []]
    ]);
  });

  it("applies a gateway's batch of connects and disconnects in order, answers per op, and tells the gateways once", async () => {
    const outcomes = await broker.call<Array<{ ok?: true; error?: unknown }>, object>("presence.applyMany", {
      ops: [
        { op: "connect", tenantId: "t1", userId: "u1", connectionId: "c1", nodeId: "gw-1", device: { userAgent: "Desk" } },
        { op: "connect", tenantId: "t2", userId: "u1", connectionId: "c9", nodeId: "gw-1" },
        { op: "disconnect", tenantId: "t1", userId: "u1", connectionId: "c1" },
        { op: "connect", tenantId: "t1", userId: "u1", connectionId: "c2", nodeId: "gw-1" }
      ]
    });
    expect(outcomes).toEqual([{ ok: true }, { ok: true }, { ok: true }, { ok: true }]);
    await eventually(() => notices.length === 4, 2000, "four notices");
    expect(broadcasts).toBe(1);
    expect(notices.map(n => [n.tenantId, n.reason, n.changed, n.devices?.map(d => d.connectionId)])).toEqual([
      ["t1", "connect", true, ["c2"]],
      ["t2", "connect", true, ["c9"]],
      ["t1", "disconnect", true, []],
      ["t1", "connect", true, ["c2"]]
    ]);
    expect(await broker.call("presence.get", { tenantId: "t1", userId: "u1" })).toMatchObject({ status: "online" });
  });

  it("keeps a caller with a principal inside its tenant", async () => {
    const ops = [{ op: "connect", tenantId: "t2", userId: "u1", connectionId: "c1", nodeId: "gw-1" }];
    expect((await rejectionOf(broker.call("presence.applyMany", { ops }, asClient("t1")))).type).toBe("TENANT_VIOLATION");
    expect(await broker.call("presence.get", { tenantId: "t2", userId: "u1" })).toMatchObject({ status: "offline" });
  });

  it("refuses a connect op without the gateway's node", async () => {
    const error = await rejectionOf(broker.call("presence.applyMany", { ops: [{ op: "connect", tenantId: "t1", userId: "u1", connectionId: "c1" }] }));
    expect(error.type).toBe("INVALID_REQUEST");
  });

  it("sends notices only to gateways that did not say they render none (announced, or with a heartbeat)", async () => {
    const connect = (connectionId: string) => broker.call("presence.connect", { tenantId: "t1", userId: "u1", connectionId, nodeId: "gw-1" });
    await connect("c1");
    await eventually(() => notices.length === 1, 2000, "a notice before anything was said");
    await broker.broadcast("presence.noticeInterest", { nodeId: broker.nodeID, wants: false }, "presence");
    await connect("c2");
    await new Promise(resolve => setTimeout(resolve, 50));
    expect(notices).toHaveLength(1);
    await broker.call("presence.heartbeat", { connections: [], nodeId: broker.nodeID, wantsNotices: true });
    await connect("c3");
    await eventually(() => notices.length === 2, 2000, "notices again after the heartbeat said so");
    expect(notices[1].devices?.map(d => d.connectionId)).toEqual(["c1", "c2", "c3"]);
  });

  it("refuses malformed device info", async () => {
    const error = await rejectionOf(broker.call("presence.connect", { tenantId: "t1", userId: "u1", connectionId: "c1", nodeId: "gw-1", device: { userAgent: "x".repeat(600) } }));
    expect(error.type).toBe("VALIDATION_ERROR");
  });
});
