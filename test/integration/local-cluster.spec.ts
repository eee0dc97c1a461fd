import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Socket } from "socket.io-client";
import { connect, recorder, request } from "../helpers/client";
import { freePort } from "../helpers/process-node";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";
import { TEST_SECRET, tokenFor } from "../helpers/tokens";

/**
 * `npm run cluster` (scripts/cluster.js): the k8s/ topology as local processes over the real NATS
 * and Redis. It must bring up two gateways and a services node that work as one cluster, and on
 * SIGTERM stop every node it started and exit 0.
 */
const ROOT = path.resolve(__dirname, "../..");
const SCRIPT = path.join(ROOT, "scripts/cluster.js");

interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runCluster(env: Record<string, string>): Run {
  let output = "";
  const child = spawn(process.execPath, [SCRIPT], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", JWT_SECRET: TEST_SECRET, LOGLEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  });
  child.stdout?.on("data", chunk => (output += chunk));
  child.stderr?.on("data", chunk => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, output: () => output, exited };
}

/** Two consecutive free ports on 127.0.0.1 (the script takes a base port and counts up). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    const next = await new Promise<boolean>(resolve => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port + 1, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (next && port + 1 < 65536) return port;
  }
  throw new Error("no two consecutive free ports");
}

/** Polls `predicate` every 200 ms (the nodes log every probe they cannot serve yet). */
async function until(predicate: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const startedPids = (output: string) => [...output.matchAll(/\[cluster\] (\S+) started \(pid (\d+)\)/g)].map(m => ({ name: m[1], pid: Number(m[2]) }));

describe("npm run cluster (scripts/cluster.js)", () => {
  const prefix = uniquePrefix("local-cluster");
  const dataDir = mkdtempSync(path.join(tmpdir(), "pf2-cluster-"));
  const runs: Run[] = [];
  const sockets: Socket[] = [];

  afterAll(async () => {
    for (const s of sockets) s.close();
    for (const run of runs) {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGKILL");
      for (const { pid } of startedPids(run.output())) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    await dropPrefix(prefix);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts two gateways and a services node that work as one cluster, and stops them all on SIGTERM", async () => {
    const base = await freePortPair();
    const namespace = `cluster-${randomUUID().slice(0, 8)}`;
    const run = runCluster({
      CLUSTER_BASE_PORT: String(base),
      NAMESPACE: namespace,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      DATA_DIR: dataDir,
      // Bounds the gateways' drain (graceful shutdown) so the stop below stays short.
      SHUTDOWN_TIMEOUT_MS: "5000",
      LOGLEVEL: "info"
    });
    runs.push(run);
    const urls = [`http://127.0.0.1:${base}`, `http://127.0.0.1:${base + 1}`];

    const ready = (url: string) => fetch(`${url}/health/ready`).then(r => r.ok, () => false);
    try {
      await until(async () => (await Promise.all(urls.map(ready))).every(Boolean), 90_000, "both gateways ready");
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${run.output()}`);
    }
    const nodes = startedPids(run.output());
    expect(nodes.map(n => n.name).sort()).toEqual(["gateway-1", "gateway-2", "services-1"]);
    expect(run.output()).toMatch(/services-1 started \(pid \d+\): SERVICES=\S*eventbus\S*/);
    expect(run.output()).toMatch(/SERVICES=\S*presence\S*rooms/);

    // One cluster: each gateway sees the services node, and a message crosses from gateway 1 to gateway 2.
    await until(
      async () => {
        const health = await Promise.all(urls.map(url => fetch(`${url}/health`).then(r => r.json() as Promise<{ status: string }>)));
        return health.every(h => h.status === "healthy");
      },
      30_000,
      "both gateways healthy (presence, rooms, eventbus reachable)"
    );
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    const { socket: alice } = await connect(urls[0], tokenFor(tenant, "alice"));
    const { socket: bob } = await connect(urls[1], tokenFor(tenant, "bob"));
    sockets.push(alice, bob);
    // Nodes discover each other over NATS within about a second of starting; until gateway 1 knows
    // gateway 2, its broadcasts do not reach it. Once they do, messages cross.
    const received = recorder(bob, "message");
    const sent: string[] = [];
    await until(
      async () => {
        const { messageId } = await request(alice, "message", { type: "chat.message", recipientId: "bob", payload: { text: "via NATS" } });
        sent.push(messageId);
        await new Promise(r => setTimeout(r, 300));
        return received.length > 0;
      },
      15_000,
      `a message from gateway 1 to gateway 2\n${run.output()}`
    );
    expect(received[0]).toMatchObject({ senderId: "alice", recipientId: "bob", payload: { text: "via NATS" } });
    expect(sent).toContain(received[0].messageId);
    for (const s of sockets.splice(0)) s.close();

    run.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`cluster did not stop:\n${run.output()}`)), 45_000)));
    const exit = await Promise.race([run.exited, timeout]).finally(() => clearTimeout(timer));
    expect(exit).toEqual({ code: 0, signal: null });
    for (const { name, pid } of nodes) expect({ name, alive: alive(pid) }).toEqual({ name, alive: false });
    for (const name of ["gateway-1", "gateway-2", "services-1"]) expect(run.output()).toContain(`[cluster] ${name} exited (code 0)`);
    expect(run.output()).toContain("[cluster] all nodes stopped");
    // Each node's log lines are prefixed with its name.
    expect(run.output()).toMatch(/^\[gateway-1\] +\S/m);
  }, 150_000);

  it("refuses to start without NATS, and starts nothing", async () => {
    const closed = await freePort();
    const run = runCluster({ TRANSPORTER: `nats://127.0.0.1:${closed}`, REDIS_URL, CLUSTER_BASE_PORT: String(await freePortPair()) });
    runs.push(run);
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(run.output()).toContain(`NATS is not reachable at 127.0.0.1:${closed}`);
    expect(startedPids(run.output())).toEqual([]);
  }, 60_000);
});
