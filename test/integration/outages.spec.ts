import type { Socket } from "socket.io-client";
import { connect, eventually, nextEvent, recorder, socketTo } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { spawnNode, type ProcessNode } from "../helpers/process-node";
import { startPrivateNats, startPrivateRedis, type PrivateServer } from "../helpers/private-servers";
import { REDIS_URL } from "../helpers/redis";
import { LoadClient, loadRun, Publisher, account, allDelivered, logReport } from "../helpers/load";

/**
 * Dependencies go away and come back, with real nodes (runner processes) and private Redis / NATS
 * servers started by the test (the shared ones are never touched). The issue asks for 30 s
 * outages; the default suite uses OUTAGE_SECONDS=5 to stay short, and `OUTAGE_SECONDS=30 npx jest
 * test/integration/outages.spec.ts` runs the full length (README "Guarantees" has both results).
 */
const OUTAGE_MS = Number(process.env.OUTAGE_SECONDS ?? 5) * 1000;
/** Everything works again this soon after the dependency returns (the bound). */
const RECOVERY_MS = 5000;
const delay = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

interface Health {
  status: string;
  degradedBy?: string[];
  services: Record<string, { status: string; activeConnections?: number }>;
}

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

async function presenceOf(url: string, tenantId: string, userId: string): Promise<{ status: number; body: { status?: string } }> {
  const res = await fetch(`${url}/api/presence/${userId}`, { headers: { Authorization: `Bearer ${tokenFor(tenantId, "observer")}`, "X-Tenant-ID": tenantId } });
  return { status: res.status, body: (await res.json()) as { status?: string } };
}

function send(socket: Socket, message: Record<string, unknown>): Promise<{ messageId?: string; position?: string; code?: string; details?: { reason?: string; retryable?: boolean } }> {
  return socket.timeout(8000).emitWithAck("message", message);
}

/** The node must not have crashed, nor logged an unhandled error. */
function expectAlive(node: ProcessNode) {
  expect(node.child.exitCode).toBeNull();
  expect(node.child.signalCode).toBeNull();
  expect(node.output()).not.toMatch(/Unhandled|uncaught|FATAL/i);
}

interface LogLine {
  ts: number;
  nodeID: string;
  msg: string;
}

function logLines(node: ProcessNode): LogLine[] {
  return node
    .output()
    .split("\n")
    .flatMap(line => {
      try {
        const parsed = JSON.parse(line) as Partial<LogLine>;
        return typeof parsed.ts === "number" && typeof parsed.nodeID === "string" && typeof parsed.msg === "string" ? [parsed as LogLine] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Evictions ("Node 'x' disconnected unexpectedly") made more than half a second after both the evicting
 * and the evicted node had reconnected: by then each has the other's INFO, so it is a node that
 * was alive being declared gone. Lists "evicter evicted evicted-at-ms-after-both-reconnected".
 */
function evictedAfterReturn(nodes: ProcessNode[]): string[] {
  const lines = nodes.flatMap(logLines);
  const reconnectedAt = new Map<string, number>();
  for (const line of lines) if (line.msg.startsWith("Transporter reconnected; re-announcing")) reconnectedAt.set(line.nodeID, line.ts);
  const late: string[] = [];
  for (const line of lines) {
    const evicted = /^Node '([^']+)' disconnected unexpectedly/.exec(line.msg)?.[1];
    const since = evicted ? Math.max(reconnectedAt.get(line.nodeID) ?? Infinity, reconnectedAt.get(evicted) ?? Infinity) : Infinity;
    if (evicted && line.ts - since > 500) late.push(`${line.nodeID} ${evicted} ${line.ts - since}`);
  }
  return late;
}

for (const mode of ["restart", "partition"] as const) {
  describe(`Redis down for ${OUTAGE_MS / 1000} s, then back (${mode === "restart" ? "killed and restarted empty" : "SIGSTOP/SIGCONT: a partition, data kept"})`, () => {
    let redis: PrivateServer | undefined;
    let node: ProcessNode | undefined;
    const sockets: Socket[] = [];

    afterAll(async () => {
      for (const s of sockets) s.close();
      await node?.kill("SIGKILL");
      redis?.resume();
      await redis?.stop();
    });

    it("degrades without crashing, refuses what it cannot make durable, and recovers within 5 s", async () => {
      redis = await startPrivateRedis();
      node = await spawnNode({ REDIS_URL: redis.url, WS_MESSAGE_RATE_LIMIT: "1000000" });
      const tenantId = "t-redis";
      const { socket: alice } = await connect(node.url, tokenFor(tenantId, "alice"));
      const { socket: bob } = await connect(node.url, tokenFor(tenantId, "bob"));
      sockets.push(alice, bob);
      await alice.timeout(3000).emitWithAck("join_room", { roomId: "r" });
      await bob.timeout(3000).emitWithAck("join_room", { roomId: "r" });
      const bobGot = recorder(bob, "message");
      const acked: string[] = [];
      for (let i = 0; i < 5; i++) {
        const answer = await send(alice, { messageId: `a-${i}`, type: "chat", roomId: "r", payload: i });
        expect(answer.position).toEqual(expect.any(String));
        acked.push(answer.messageId!);
      }
      await eventually(() => bobGot.length === 5, 3000, "bob's messages");
      const bobCursor = bobGot[4].position as string;
      bob.close();
      expect((await health(node.url)).status).toBe("healthy");

      if (mode === "restart") await redis.stop("SIGKILL");
      else redis.pause();
      const downAt = Date.now();

      // While it is down: degraded, naming Redis; nothing acknowledged that is not durable.
      await eventually(async () => {
        const h = await health(node!.url);
        return h.status === "degraded" && (h.degradedBy ?? []).includes("redis");
      }, 5000, "/health degraded by redis");
      const degradedAfterMs = Date.now() - downAt;
      let seq = 5;
      let refused = 0;
      const pending = () => ({ messageId: `a-${seq}`, type: "chat", roomId: "r", payload: seq });
      const attempt = async () => {
        const answer = await send(alice, pending());
        expect(answer.position).toBeUndefined();
        expect(answer).toMatchObject({ code: "INTERNAL_ERROR", details: { retryable: true } });
        refused += 1;
      };
      await attempt();
      const joinRefused = await alice.timeout(8000).emitWithAck("join_room", { roomId: "other" });
      expect(joinRefused).toMatchObject({ code: "INTERNAL_ERROR" });
      expect((await presenceOf(node.url, tenantId, "alice")).status).toBe(503);
      alice.emit("presence_update", { status: "away" }); // class A: may fail, must not break anything
      do {
        await attempt();
        await delay(250);
      } while (Date.now() - downAt < OUTAGE_MS);
      expectAlive(node);

      if (mode === "restart") await redis.start();
      else redis.resume();
      const backAt = Date.now();

      // Within 5 s: publishing (the pending message, resent with its id), rooms, presence, health.
      await eventually(
        async () => {
          const answer = await send(alice, pending());
          if (!answer.position) return false;
          acked.push(answer.messageId!);
          seq += 1;
          return true;
        },
        RECOVERY_MS,
        "a publish acknowledged again"
      );
      await eventually(async () => (await alice.timeout(3000).emitWithAck("join_room", { roomId: "after" }))?.roomId === "after", RECOVERY_MS - (Date.now() - backAt), "join_room again");
      // Online again (after a restart her connection is registered anew; after a partition her
      // `away` sent meanwhile may have been applied late: either way she is present).
      await eventually(
        async () => ["online", "away"].includes((await presenceOf(node!.url, tenantId, "alice")).body.status ?? ""),
        RECOVERY_MS - (Date.now() - backAt),
        "alice's presence again"
      );
      await eventually(async () => (await health(node!.url)).status === "healthy", RECOVERY_MS - (Date.now() - backAt), "healthy again");
      const recoveredAfterMs = Date.now() - backAt;
      expect(recoveredAfterMs).toBeLessThanOrEqual(RECOVERY_MS);
      for (let i = 0; i < 3; i++, seq++) acked.push((await send(alice, pending())).messageId!);

      // Bob comes back with his cursor from before the outage.
      const resumed = socketTo(node.url, tokenFor(tenantId, "bob"), { auth: { lastEventId: bobCursor, rooms: ["r"] } });
      sockets.push(resumed);
      const replayed = recorder(resumed, "message");
      const connected = await nextEvent(resumed, "connected", 5000);
      if (mode === "restart") {
        // The log died with Redis: said so, never a silent gap; the new cursor serves what follows.
        expect(connected).toMatchObject({ recovered: false, lastEventId: expect.any(String) });
      } else {
        // The log survived: everything acknowledged after the cursor, exactly once, in order.
        expect(connected.recovered).toBe(true);
        const expected = acked.slice(5);
        await eventually(() => replayed.length >= expected.length, 5000, "bob's replay");
        await delay(200);
        expect(replayed.map(m => m.messageId)).toEqual(expected);
      }
      expectAlive(node);
      // eslint-disable-next-line no-console
      console.log(`[resilience] Redis ${mode}: ${JSON.stringify({ outageMs: OUTAGE_MS, degradedAfterMs, publishesRefusedWhileDown: refused, acknowledged: acked.length, recoveredAfterMs, resumedRecovered: connected.recovered, replayed: replayed.length })}`);
    }, OUTAGE_MS + 60_000);
  });
}

describe(`NATS down for ${OUTAGE_MS / 1000} s, then back`, () => {
  const { namespace, prefix, processes, clients, also } = loadRun("nats-outage");
  let nats: PrivateServer | undefined;
  also(() => nats?.stop());

  it("nodes survive and reconnect, the cluster re-forms, in-flight calls fail cleanly, nothing acknowledged is lost", async () => {
    nats = await startPrivateNats();
    // Info logs: the reconnects and evictions that `evictedAfterReturn` reads.
    const env = { TRANSPORTER: nats.url, NAMESPACE: namespace, REDIS_URL, REDIS_KEY_PREFIX: prefix, WS_MESSAGE_RATE_LIMIT: "1000000", LOGLEVEL: "info" };
    const services = await spawnNode({ ...env, SERVICES: "presence,rooms,eventbus", NODEID: `s-${namespace}` });
    processes.push(services);
    const [gw1, gw2] = await Promise.all([
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw1-${namespace}` }),
      spawnNode({ ...env, SERVICES: "gateway", NODEID: `gw2-${namespace}` })
    ]);
    processes.push(gw1, gw2);
    for (const gw of [gw1, gw2]) await eventually(async () => (await health(gw.url)).status === "healthy", 20_000, "a healthy gateway");

    const urls = () => [gw1.url, gw2.url];
    const tenantId = "t-nats";
    const p1 = new Publisher({ name: "p1", tenantId, userId: "p1", rooms: ["load"], urls, cursorMode: "settled", first: 0 });
    const r1 = new LoadClient({ name: "r1", tenantId, userId: "r1", rooms: ["load"], urls, cursorMode: "settled", first: 1 });
    const r2 = new LoadClient({ name: "r2", tenantId, userId: "r2", rooms: ["load"], urls, cursorMode: "newest", first: 0 });
    const everyone = [p1, r1, r2];
    clients.push(...everyone);
    await Promise.all(everyone.map(c => c.start()));
    p1.run({ roomId: "load" }, "CLASS_C", 20);
    await eventually(() => everyone.every(c => c.seen.size >= 5), 15_000, "traffic across the gateways");
    await delay(2500);

    // A long poll is in flight from gateway 1 to the services node when NATS goes.
    const pollStarted = Date.now();
    const poll = fetch(`${gw1.url}/api/events/poll?wait=25`, { headers: { Authorization: `Bearer ${tokenFor("t-poll", "poller")}`, "X-Tenant-ID": "t-poll" } }).then(
      async res => ({ status: res.status, body: (await res.json()) as { code?: string }, ms: Date.now() - pollStarted }),
      (err: Error) => ({ status: 0, body: { code: err.message }, ms: Date.now() - pollStarted })
    );
    await delay(500);
    const ackedBefore = p1.acked.length;
    await nats.stop("SIGKILL");
    const downAt = Date.now();

    await eventually(async () => {
      const h = await health(gw1.url);
      return h.status === "degraded" && (h.degradedBy ?? []).includes("transporter");
    }, 5000, "/health degraded by the transporter");
    const degradedAfterMs = Date.now() - downAt;
    const polled = await poll;
    expect(polled.status).toBe(503);
    expect(polled.ms).toBeGreaterThanOrEqual(400); // it was in flight when NATS went, not refused before
    expect(polled.body).toMatchObject({ code: "INTERNAL_ERROR" });
    const inFlightFailedAfterMs = polled.ms - (downAt - pollStarted);
    expect(inFlightFailedAfterMs).toBeLessThan(5000);
    await delay(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
    const ackedWhileDown = p1.acked.length - ackedBefore;
    for (const p of processes) expectAlive(p);

    await nats.start();
    const backAt = Date.now();
    let lastHealth: Health[] = [];
    await eventually(
      async () => {
        lastHealth = await Promise.all([health(gw1.url), health(gw2.url)]);
        return lastHealth.every(h => h.status === "healthy");
      },
      RECOVERY_MS,
      "both gateways healthy again"
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last /health: ${JSON.stringify(lastHealth)}`);
    });
    // Cross-gateway traffic flows again: a message acknowledged now reaches the other gateway's client.
    const target = p1.acked.length + 1;
    await eventually(() => p1.acked.length >= target && r1.seen.has(p1.acked[target - 1]), RECOVERY_MS - (Date.now() - backAt), "a new message across the gateways");
    const recoveredAfterMs = Date.now() - backAt;
    expect(recoveredAfterMs).toBeLessThanOrEqual(RECOVERY_MS);
    // One heartbeat later the gateways ask their clients to resume: traffic may have been missed.
    await eventually(() => everyone.every(c => c.notices.includes("resync") && c.reconnects >= 1), 10_000, "every client resynchronised");
    await delay(1000);
    await p1.halt();
    const complete = await allDelivered([p1], everyone.filter(c => c.options.cursorMode === "settled"), 15_000);
    const report = account([p1], everyone);
    logReport("NATS outage", report, { outageMs: OUTAGE_MS, degradedAfterMs, inFlightCallFailedAfterMs: inFlightFailedAfterMs, ackedWhileDown, recoveredAfterMs });
    expect(complete).toBe(true);
    // Once nodes are back and have re-announced themselves, none declares another gone (a stale
    // heartbeat clock from before the outage must not evict a node that has just come back).
    expect(evictedAfterReturn(processes)).toEqual([]);
    for (const r of report.receivers.filter(r => r.mode === "settled")) expect({ name: r.name, lost: r.lost, orderViolations: r.orderViolations }).toEqual({ name: r.name, lost: 0, orderViolations: 0 });
    // Class C was refused while the node was cut off (it could not reach the other gateway live).
    expect(p1.refusals.transporter_unavailable ?? 0).toBeGreaterThan(0);
    for (const p of processes) expectAlive(p);
  }, OUTAGE_MS + 90_000);
});
