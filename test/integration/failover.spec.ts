import { NATS_URL, startNode, type TestNode } from "../helpers/node";
import { eventually } from "../helpers/client";
import { spawnNode } from "../helpers/process-node";
import { REDIS_URL } from "../helpers/redis";
import { LoadClient, loadRun, Publisher, RestPublisher, account, allDelivered, logReport, type LoadReport } from "../helpers/load";
import { tokenFor } from "../helpers/tokens";
import { brokerOptions } from "../../moleculer.config";

/**
 * A node dies (SIGKILL) while clients publish and receive class B/C traffic: clients reconnect to
 * another gateway, resume from their cursor, and end with every acknowledged event exactly once
 * and in order per publisher. Class B/C durability across node death needs the log in Redis
 * (REDIS_URL), so these clusters run with Redis. The in-test brokers use the product's broker
 * timings (moleculer.config.ts), so the fail-fast bounds measured here are the product's.
 */
const product = brokerOptions();
const HEARTBEAT_TIMEOUT_MS = (product.heartbeatTimeout as number) * 1000;
const REQUEST_TIMEOUT_MS = product.requestTimeout as number;
/** A dead node is declared gone within two heartbeat-check periods (README "Failure handling"). */
const DETECTION_BOUND_MS = 2 * HEARTBEAT_TIMEOUT_MS + 2000;

const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

async function health(url: string): Promise<{ status: string; degradedBy?: string[] }> {
  const res = await fetch(`${url}/health`);
  return (await res.json()) as { status: string; degradedBy?: string[] };
}

function expectNoLoss(report: LoadReport) {
  expect(report.acknowledged).toBeGreaterThan(0);
  for (const r of report.receivers.filter(r => r.mode === "settled")) {
    expect({ name: r.name, lost: r.lost, orderViolations: r.orderViolations, historyLost: r.historyLost }).toEqual({
      name: r.name,
      lost: 0,
      orderViolations: 0,
      historyLost: 0
    });
  }
}

describe("failover: a gateway process killed with SIGKILL under load", () => {
  const { namespace, prefix, processes, clients, also } = loadRun("failover-gw");
  const env = { TRANSPORTER: NATS_URL, NAMESPACE: namespace, REDIS_URL, REDIS_KEY_PREFIX: prefix, WS_MESSAGE_RATE_LIMIT: "1000000" };
  let services: TestNode | undefined;
  also(() => services?.stop());

  it("moves every client to the surviving gateway and loses no acknowledged event", async () => {
    services = await startNode({
      services: ["presence", "rooms", "eventbus"],
      config: { redisUrl: REDIS_URL, redisKeyPrefix: prefix },
      broker: { transporter: NATS_URL, namespace, nodeID: `services-${namespace}`, heartbeatInterval: product.heartbeatInterval, heartbeatTimeout: product.heartbeatTimeout, requestTimeout: REQUEST_TIMEOUT_MS }
    });
    const [gw1, gw2] = await Promise.all([
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw1-${namespace}` }),
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw2-${namespace}` })
    ]);
    processes.push(gw1, gw2);
    for (const gw of [gw1, gw2]) await eventually(async () => (await health(gw.url)).status === "healthy", 15_000, "a healthy gateway");
    await eventually(() => services!.broker.registry.getNodeList({ onlyAvailable: true }).length === 3, 10_000, "3 nodes");

    let live = [gw1.url, gw2.url];
    const urls = () => live;
    const tenantId = "t-failover";
    const room = { roomId: "load" };
    const p1 = new Publisher({ name: "p1", tenantId, userId: "p1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const p2 = new Publisher({ name: "p2", tenantId, userId: "p2", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const receivers = [
      new LoadClient({ name: "r1", tenantId, userId: "r1", rooms: ["load"], urls, cursorMode: "settled", first: 0 }),
      new LoadClient({ name: "r2", tenantId, userId: "r2", rooms: ["load"], urls, cursorMode: "settled", first: 1 }),
      new LoadClient({ name: "r3", tenantId, userId: "r3", rooms: ["load"], urls, cursorMode: "newest", first: 0 }),
      new LoadClient({ name: "r4", tenantId, userId: "r4", rooms: ["load"], urls, cursorMode: "newest", first: 1 })
    ];
    clients.push(p1, p2, ...receivers);
    await Promise.all(clients.map(c => c.start()));
    const rest = new RestPublisher("rest1", tenantId, urls);
    p1.run(room, "CLASS_C");
    p2.run(room, "CLASS_B");
    rest.run(room);
    const everyone = [p1, p2, ...receivers];
    await eventually(() => everyone.every(c => c.seen.size >= 3), 15_000, "traffic reaching every client");
    await delay(3000);

    const ackedAtKill = { p1: p1.acked.length, p2: p2.acked.length, rest: rest.acked.length };
    await gw1.kill("SIGKILL");
    const killedAt = Date.now();
    live = [gw2.url];

    // A call in flight to the dead node fails when it is declared gone, at most after the request
    // timeout; once it is gone, calls to it fail at once.
    const gw1NodeID = `gw1-${namespace}`;
    const inFlight = services.broker.call("gateway.connections", {}, { nodeID: gw1NodeID, timeout: 0 }).then(
      () => ({ ok: true, ms: Date.now() - killedAt }),
      (err: Error & { type?: string }) => ({ ok: false, type: err.type ?? err.name, ms: Date.now() - killedAt })
    );
    const inFlightOutcome = await inFlight;
    expect(inFlightOutcome).toMatchObject({ ok: false });
    expect(inFlightOutcome.ms).toBeLessThanOrEqual(DETECTION_BOUND_MS);
    const afterGone = Date.now();
    await expect(services.broker.call("gateway.connections", {}, { nodeID: gw1NodeID })).rejects.toMatchObject({ type: expect.stringMatching(/SERVICE_NOT_(AVAILABLE|FOUND)/) });
    const failFastMs = Date.now() - afterGone;
    expect(failFastMs).toBeLessThan(3000); // at once, not after the request timeout

    await delay(1500);
    await Promise.all([p1.halt(), p2.halt(), rest.halt()]);
    const publishers = [p1, p2, rest];
    const complete = await allDelivered(publishers, everyone.filter(c => c.options.cursorMode === "settled"), 15_000);
    const report = account(publishers, everyone);
    logReport("gateway SIGKILL", report, { inFlightCallFailedAfterMs: inFlightOutcome.ms, callAfterDetectionFailedInMs: failFastMs });
    expect(complete).toBe(true);
    expectNoLoss(report);
    // Publishing went on after the kill, through the surviving gateway.
    expect(p1.acked.length).toBeGreaterThan(ackedAtKill.p1);
    expect(p2.acked.length).toBeGreaterThan(ackedAtKill.p2);
    expect(rest.acked.length).toBeGreaterThan(ackedAtKill.rest);
    // Those on the dead gateway reconnected (r1, r3 and p1 started there).
    for (const c of [p1, receivers[0], receivers[2]]) expect(c.reconnects).toBeGreaterThanOrEqual(1);
    expect(gw2.child.exitCode).toBeNull();
  }, 90_000);
});

describe("failover: the node running eventbus killed with SIGKILL under load", () => {
  const { namespace, prefix, processes, clients, also } = loadRun("failover-bus");
  const env = { TRANSPORTER: NATS_URL, NAMESPACE: namespace, REDIS_URL, REDIS_KEY_PREFIX: prefix };
  const nodes: TestNode[] = [];
  also(async () => {
    for (const n of nodes) await n.stop();
  });

  it("refuses publishes at once while no eventbus node lives, loses nothing acknowledged, and recovers on restart", async () => {
    const busNodeID = `bus-${namespace}`;
    const bus = await spawnNode({ ...env, SERVICES: "presence,rooms,eventbus", NODEID: busNodeID });
    processes.push(bus);
    const brokerOf = (nodeID: string) => ({
      transporter: NATS_URL,
      namespace,
      nodeID: `${nodeID}-${namespace}`,
      heartbeatInterval: product.heartbeatInterval,
      heartbeatTimeout: product.heartbeatTimeout,
      requestTimeout: REQUEST_TIMEOUT_MS
    });
    const storeConfig = { redisUrl: REDIS_URL, redisKeyPrefix: prefix, wsMessageRateLimit: 1_000_000 };
    // Presence and rooms survive on a second node; eventbus lives only on the process.
    nodes.push(await startNode({ services: ["presence", "rooms"], config: storeConfig, broker: brokerOf("services2") }));
    const gw1 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOf("gw1") });
    const gw2 = await startNode({ services: ["gateway"], config: storeConfig, broker: brokerOf("gw2") });
    nodes.push(gw1, gw2);
    for (const gw of [gw1, gw2]) await gw.broker.waitForServices(["eventbus", "presence", "rooms"], 20_000);
    await eventually(() => gw1.broker.registry.getNodeList({ onlyAvailable: true }).length === 4, 10_000, "4 nodes");

    const urls = () => [gw1.url, gw2.url];
    const tenantId = "t-bus";
    const room = { roomId: "load" };
    const p1 = new Publisher({ name: "p1", tenantId, userId: "p1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const p2 = new Publisher({ name: "p2", tenantId, userId: "p2", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const receivers = [
      new LoadClient({ name: "r1", tenantId, userId: "r1", rooms: ["load"], urls, cursorMode: "settled", first: 0 }),
      new LoadClient({ name: "r2", tenantId, userId: "r2", rooms: ["load"], urls, cursorMode: "settled", first: 1 })
    ];
    clients.push(p1, p2, ...receivers);
    await Promise.all(clients.map(c => c.start()));
    const rest = new RestPublisher("rest1", tenantId, urls);
    p1.run(room, "CLASS_C");
    p2.run(room, "CLASS_B");
    rest.run(room);
    const everyone = [p1, p2, ...receivers];
    await eventually(() => everyone.every(c => c.seen.size >= 3), 15_000, "traffic reaching every client");
    await delay(1500);

    // A long poll is in flight on the eventbus node when it dies.
    const auth = { tenantId: "t-poll", userId: "poller", role: "user" };
    const startedPoll = Date.now();
    const poll = gw1.broker.call("eventbus.poll", { tenantId: "t-poll", wait: 30 }, { meta: { auth }, timeout: 0 }).then(
      () => ({ ok: true, ms: 0 }),
      (err: Error & { type?: string }) => ({ ok: false, type: err.type ?? err.name, ms: Date.now() - startedPoll })
    );
    await delay(300);
    const socketAckedAtKill = p1.acked.length + p2.acked.length;
    const restAckedAtKill = rest.acked.length;
    await bus.kill("SIGKILL");
    const killedAt = Date.now();

    const pollOutcome = await poll;
    expect(pollOutcome).toMatchObject({ ok: false });
    expect(pollOutcome.ms).toBeLessThanOrEqual(DETECTION_BOUND_MS + 300);
    // Each node detects the death on its own heartbeat clock: wait until both gateways have.
    const eventbusKnownTo = (node: TestNode) => node.broker.registry.getServiceList({ onlyAvailable: true }).some((s: { name: string }) => s.name === "eventbus");
    await eventually(() => !eventbusKnownTo(gw1) && !eventbusKnownTo(gw2), DETECTION_BOUND_MS, "eventbus gone on both gateways");
    const goneAt = Date.now();
    // With no eventbus node, a publish is refused at once (503), not after a timeout.
    const refusedStarted = Date.now();
    const refused = await fetch(`${gw2.url}/api/events/publish`, {
      method: "POST",
      headers: { Authorization: `Bearer ${tokenFor(tenantId, "svc", { role: "service" })}`, "X-Tenant-ID": tenantId, "Content-Type": "application/json" },
      body: JSON.stringify({ eventType: "probe" })
    });
    const refusedMs = Date.now() - refusedStarted;
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: "INTERNAL_ERROR", details: { retryable: true } });
    expect(refusedMs).toBeLessThan(3000); // far below the 10 s request timeout: refused, not timed out
    await delay(1000);
    // Class B/C over sockets went on: the gateways append to Redis themselves.
    expect(p1.acked.length + p2.acked.length).toBeGreaterThan(socketAckedAtKill);
    const restAckedWhileDown = rest.acked.length - restAckedAtKill;

    const restarted = await spawnNode({ ...env, SERVICES: "presence,rooms,eventbus", NODEID: busNodeID });
    processes.push(restarted);
    await gw1.broker.waitForServices(["eventbus"], 20_000);
    await eventually(() => rest.acked.length > restAckedAtKill + restAckedWhileDown + 3, 20_000, "REST publishes after the restart");
    await Promise.all([p1.halt(), p2.halt(), rest.halt()]);
    const publishers = [p1, p2, rest];
    const complete = await allDelivered(publishers, everyone, 15_000);
    const report = account(publishers, everyone);
    logReport("eventbus node SIGKILL", report, {
      inFlightCallFailedAfterMs: pollOutcome.ms,
      eventbusDeclaredGoneAfterMs: goneAt - killedAt,
      publishRefusedWithoutEventbusInMs: refusedMs,
      restRefusalLatencyMaxMs: Math.max(0, ...rest.refusalLatencies)
    });
    expect(complete).toBe(true);
    expectNoLoss(report);
    // No REST refusal took longer than it takes to declare the node gone.
    expect(Math.max(0, ...rest.refusalLatencies)).toBeLessThanOrEqual(DETECTION_BOUND_MS + 1000);
  }, 120_000);
});
