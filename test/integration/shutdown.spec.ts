import { randomUUID } from "node:crypto";
import type { Middleware } from "moleculer";
import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { connect, eventually, nextEvent, recorder, refusal } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { freePort, spawnNode, type ProcessNode } from "../helpers/process-node";
import { REDIS_URL } from "../helpers/redis";
import { LoadClient, loadRun, Publisher, RestPublisher, account, allDelivered, logReport, type LoadReport } from "../helpers/load";
import { brokerOptions } from "../../moleculer.config";

/**
 * Graceful shutdown (SIGTERM → broker.stop → the gateway's drain, protocols/shutdown.ts) and a
 * rolling restart of every node under load.
 */
const product = brokerOptions();
const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** A graceful stop leaves no reordering window: every client loses nothing, whatever cursor it keeps. */
function expectNoLoss(report: LoadReport) {
  expect(report.acknowledged).toBeGreaterThan(0);
  for (const r of report.receivers) {
    expect({ name: r.name, lost: r.lost, orderViolations: r.orderViolations, historyLost: r.historyLost }).toEqual({ name: r.name, lost: 0, orderViolations: 0, historyLost: 0 });
  }
}

describe("graceful shutdown of a gateway: the drain sequence", () => {
  const namespace = `test-${randomUUID().slice(0, 8)}`;
  let bus: TestNode;
  let gateway: TestNode;
  /** While set, appends on the eventbus node wait for it: an append is in flight when the gateway stops. */
  let hold: Promise<void> | undefined;
  let appendStarted: () => void = () => undefined;

  const slowAppend = {
    localAction(next: (ctx: unknown) => Promise<unknown>, action: { name: string }) {
      // A gateway without a local event bus batches its appends into eventbus.appendMany.
      if (action.name !== "eventbus.append" && action.name !== "eventbus.appendMany") return next;
      return async (ctx: unknown) => {
        if (hold) {
          appendStarted();
          await hold;
        }
        return next(ctx);
      };
    }
  } as unknown as Middleware;

  beforeAll(async () => {
    // Two brokers in this process over Moleculer's in-memory transporter: the gateway has no
    // Redis, so its class C appends go to the eventbus node (appendMany), where they can be held.
    bus = await startNode({ services: ["eventbus"], broker: { transporter: "Fake", namespace, nodeID: `bus-${namespace}`, middlewares: [slowAppend] } });
    gateway = await startNode({
      services: ["gateway", "presence", "rooms"],
      config: { shutdownTimeoutMs: 8000 },
      broker: { transporter: "Fake", namespace, nodeID: `gw-${namespace}` }
    });
    await gateway.broker.waitForServices(["eventbus"], 10_000);
  });

  afterAll(async () => {
    await gateway?.stop().catch(() => undefined);
    await bus?.stop();
  });

  it("tells clients, refuses new work, finishes the in-flight append and its ack, then closes, within the bound", async () => {
    const { socket: alice } = await connect(gateway.url, tokenFor("t1", "alice"));
    const { socket: bob } = await connect(gateway.url, tokenFor("t1", "bob"));
    await alice.timeout(3000).emitWithAck("join_room", { roomId: "r" });
    const bobMessages = recorder(bob, "message");
    const aliceNotices = recorder(alice, "error");
    let release: () => void = () => undefined;
    hold = new Promise<void>(resolve => (release = resolve));
    const started = new Promise<void>(resolve => (appendStarted = resolve));
    const firstAck = alice.timeout(10_000).emitWithAck("message", { messageId: "m-1", type: "chat", recipientId: "bob", payload: "in flight" });
    await started;

    const disconnected = Promise.all([nextEvent(alice, "disconnect", 10_000), nextEvent(bob, "disconnect", 10_000)]);
    const stopStarted = Date.now();
    const stopping = gateway.broker.stop();
    const notice = await nextEvent(bob, "error", 5000);
    expect(notice).toMatchObject({ code: "INTERNAL_ERROR", details: { reason: "shutting_down", retryable: true, reconnect: true, rooms: [] } });
    await eventually(() => aliceNotices.some(n => n.details?.reason === "shutting_down" && Array.isArray(n.details.rooms) && n.details.rooms[0] === "r"), 3000, "alice's notice naming her rooms");

    // While the append is held: not ready, handshakes refused, new messages refused.
    const ready = await fetch(`${gateway.url}/health/ready`);
    expect(ready.status).toBe(503);
    const refused = await refusal(gateway.url, tokenFor("t1", "carol"));
    expect(refused.data).toMatchObject({ code: "INTERNAL_ERROR", details: { reason: "shutting_down" } });
    const second = await alice.timeout(3000).emitWithAck("message", { messageId: "m-2", type: "chat", recipientId: "bob", payload: "too late" });
    expect(second).toMatchObject({ code: "INTERNAL_ERROR", details: { reason: "shutting_down", retryable: true } });

    // The in-flight message completes: stored and acknowledged before the close. Logged traffic
    // is no longer emitted to this node's clients once it stops (the other nodes stopped relaying
    // to it): bob replays it from the log on his next node.
    await delay(300);
    hold = undefined;
    release();
    const ack = await firstAck;
    expect(ack).toMatchObject({ messageId: "m-1", position: expect.any(String) });
    await disconnected;
    expect(bobMessages).toEqual([]);
    const stored = await bus.broker.call<{ events: Array<{ eventId: string; position: string }> }, object>("eventbus.read", { tenantId: "t1", userId: "bob" });
    expect(stored.events.map(e => [e.eventId, e.position])).toEqual([["m-1", ack.position]]);
    await stopping;
    expect(Date.now() - stopStarted).toBeLessThan(8000);
    alice.close();
    bob.close();
  }, 30_000);
});

describe("graceful shutdown of a gateway process (SIGTERM) under load", () => {
  const { namespace, prefix, processes, clients, also } = loadRun("shutdown");
  const env = { TRANSPORTER: NATS_URL, NAMESPACE: namespace, REDIS_URL, REDIS_KEY_PREFIX: prefix, WS_MESSAGE_RATE_LIMIT: "1000000", SHUTDOWN_TIMEOUT_MS: "10000" };
  let services: TestNode | undefined;
  also(() => services?.stop());

  it("its clients are told, move to the other gateway and resume; it exits 0 within SHUTDOWN_TIMEOUT_MS; nothing acknowledged is lost", async () => {
    services = await startNode({
      services: ["presence", "rooms", "eventbus"],
      config: { redisUrl: REDIS_URL, redisKeyPrefix: prefix },
      broker: { transporter: NATS_URL, namespace, nodeID: `services-${namespace}`, heartbeatInterval: product.heartbeatInterval, heartbeatTimeout: product.heartbeatTimeout }
    });
    const [gw1, gw2] = await Promise.all([
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw1-${namespace}` }),
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw2-${namespace}` })
    ]);
    processes.push(gw1, gw2);
    await eventually(() => services!.broker.registry.getNodeList({ onlyAvailable: true }).length === 3, 15_000, "3 nodes");
    let live = [gw1.url, gw2.url];
    const urls = () => live;
    const tenantId = "t-drain";
    const room = { roomId: "load" };
    const p1 = new Publisher({ name: "p1", tenantId, userId: "p1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const p2 = new Publisher({ name: "p2", tenantId, userId: "p2", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const r1 = new LoadClient({ name: "r1", tenantId, userId: "r1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const r2 = new LoadClient({ name: "r2", tenantId, userId: "r2", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const r3 = new LoadClient({ name: "r3", tenantId, userId: "r3", rooms: ["load"], urls, cursorMode: "newest", first: 0 });
    const everyone = [p1, p2, r1, r2, r3];
    clients.push(...everyone);
    await Promise.all(everyone.map(c => c.start()));
    const rest = new RestPublisher("rest1", tenantId, urls);
    p1.run(room, "CLASS_C");
    p2.run(room, "CLASS_B");
    rest.run(room);
    await eventually(() => everyone.every(c => c.seen.size >= 3), 15_000, "traffic reaching every client");
    await delay(2500);

    const ackedAtStop = p1.acked.length;
    const signalled = Date.now();
    live = [gw2.url];
    await gw1.kill("SIGTERM");
    const exitedAfterMs = Date.now() - signalled;
    expect(gw1.child.exitCode).toBe(0);
    expect(exitedAfterMs).toBeLessThan(10_000);
    for (const c of [p1, r1, r3]) expect(c.notices).toContain("shutting_down");

    await eventually(() => p1.acked.length > ackedAtStop + 20, 15_000, "publishing through the other gateway");
    await Promise.all([p1.halt(), p2.halt(), rest.halt()]);
    const publishers = [p1, p2, rest];
    const complete = await allDelivered(publishers, everyone, 15_000);
    const report = account(publishers, everyone);
    logReport("gateway SIGTERM", report, { exitedAfterMs });
    expect(complete).toBe(true);
    expectNoLoss(report);
    for (const c of [p1, r1, r3]) expect(c.reconnects).toBeGreaterThanOrEqual(1);
  }, 90_000);
});

describe("rolling restart of every node under load", () => {
  const { namespace, prefix, processes, clients, also } = loadRun("rolling");
  const env = { TRANSPORTER: NATS_URL, NAMESPACE: namespace, REDIS_URL, REDIS_KEY_PREFIX: prefix, WS_MESSAGE_RATE_LIMIT: "1000000", SHUTDOWN_TIMEOUT_MS: "10000" };
  let observer: TestNode | undefined;
  also(() => observer?.stop());

  it("restarts services nodes and gateways one by one (SIGTERM, start again) and loses nothing acknowledged", async () => {
    observer = await startNode({ services: [], broker: { transporter: NATS_URL, namespace, nodeID: `observer-${namespace}`, heartbeatInterval: product.heartbeatInterval, heartbeatTimeout: product.heartbeatTimeout } });
    const [port1, port2] = [await freePort(), await freePort()];
    const specs = [
      { key: "s1", env: { ...env, SERVICES: "presence,rooms,eventbus", NODEID: `s1-${namespace}` } },
      { key: "s2", env: { ...env, SERVICES: "presence,rooms,eventbus", NODEID: `s2-${namespace}` } },
      { key: "g1", env: { ...env, SERVICES: "gateway", NODEID: `g1-${namespace}`, WS_PORT: String(port1) } },
      { key: "g2", env: { ...env, SERVICES: "gateway", NODEID: `g2-${namespace}`, WS_PORT: String(port2) } }
    ];
    const running = new Map<string, ProcessNode>();
    const nodeUp = async (nodeID: string) =>
      eventually(() => observer!.broker.registry.getNodeList({ onlyAvailable: true }).some((n: { id: string }) => n.id === nodeID), 20_000, `${nodeID} in the cluster`);
    await Promise.all(
      specs.map(async spec => {
        const node = await spawnNode(spec.env);
        processes.push(node);
        running.set(spec.key, node);
        await nodeUp(spec.env.NODEID);
      })
    );
    const urls = () => [`http://127.0.0.1:${port1}`, `http://127.0.0.1:${port2}`];
    const tenantId = "t-rolling";
    const room = { roomId: "load" };
    const p1 = new Publisher({ name: "p1", tenantId, userId: "p1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const p2 = new Publisher({ name: "p2", tenantId, userId: "p2", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const receivers = [
      new LoadClient({ name: "r1", tenantId, userId: "r1", rooms: ["load"], urls, cursorMode: "settled", first: 0 }),
      new LoadClient({ name: "r2", tenantId, userId: "r2", rooms: ["load"], urls, cursorMode: "settled", first: 1 }),
      new LoadClient({ name: "r3", tenantId, userId: "r3", rooms: ["load"], urls, cursorMode: "newest", first: 0 }),
      new LoadClient({ name: "r4", tenantId, userId: "r4", rooms: ["load"], urls, cursorMode: "newest", first: 1 })
    ];
    const everyone = [p1, p2, ...receivers];
    clients.push(...everyone);
    await Promise.all(everyone.map(c => c.start()));
    const rest = new RestPublisher("rest1", tenantId, urls);
    p1.run(room, "CLASS_C");
    p2.run(room, "CLASS_B");
    rest.run(room);
    await eventually(() => everyone.every(c => c.seen.size >= 3), 15_000, "traffic reaching every client");
    await delay(2500);

    const exits: Record<string, { code: number | null; ms: number }> = {};
    for (const spec of specs) {
      const node = running.get(spec.key)!;
      const before = p1.acked.length + p2.acked.length;
      const signalled = Date.now();
      await node.kill("SIGTERM");
      exits[spec.key] = { code: node.child.exitCode, ms: Date.now() - signalled };
      if (node.child.exitCode !== 0) console.log(`[resilience] ${spec.key} exited with ${node.child.exitCode}:\n${node.output().slice(-4000)}`);
      const again = await spawnNode(spec.env);
      processes.push(again);
      running.set(spec.key, again);
      await nodeUp(spec.env.NODEID);
      // Traffic flows again before the next node goes.
      await eventually(() => p1.acked.length + p2.acked.length > before + 20, 20_000, `traffic after restarting ${spec.key}`);
      await delay(1000);
    }
    await Promise.all([p1.halt(), p2.halt(), rest.halt()]);
    const publishers = [p1, p2, rest];
    const complete = await allDelivered(publishers, everyone, 20_000);
    const report = account(publishers, everyone);
    logReport("rolling restart", report, { exits });
    expect(complete).toBe(true);
    expectNoLoss(report);
    for (const spec of specs) expect(exits[spec.key].code).toBe(0);
  }, 180_000);
});
