import { randomUUID } from "node:crypto";
import { ServiceBroker, type Middleware } from "moleculer";
import { loadConfig } from "../../lib/config";
import { NodeHealthMiddleware } from "../../lib/node-health";
import { brokerOptions } from "../../moleculer.config";
import { NATS_URL } from "../helpers/node";
import { eventually } from "../helpers/client";

/** Probes of nodes without the gateway (HEALTH_PORT): what Kubernetes sees of presence, rooms, ... */
describe("node health probes (HEALTH_PORT)", () => {
  const brokers: ServiceBroker[] = [];

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map(b => b.stop().catch(() => undefined)));
  });

  function nodeWith(health: NodeHealthMiddleware, extra: Partial<ConstructorParameters<typeof ServiceBroker>[0]> = {}) {
    const broker = new ServiceBroker({ logger: false, transporter: null, middlewares: [health as Middleware], ...extra });
    brokers.push(broker);
    return broker;
  }

  async function probe(health: NodeHealthMiddleware, path: string, method = "GET") {
    const address = health.address();
    if (!address) throw new Error("health server is not listening");
    const res = await fetch(`http://127.0.0.1:${address.port}${path}`, { method });
    return { status: res.status, body: method === "HEAD" ? null : ((await res.json()) as Record<string, unknown>) };
  }

  type NodeHealthMiddleware = ReturnType<typeof NodeHealthMiddleware>;

  it("answers live and ready once the broker started, and nothing else", async () => {
    const health = NodeHealthMiddleware({ port: 0, host: "127.0.0.1" });
    const broker = nodeWith(health, { nodeID: "health-a" });
    broker.createService({ name: "probe-target" });
    expect(health.address()).toBeNull();
    await broker.start();

    expect(await probe(health, "/health/live")).toEqual({ status: 200, body: expect.objectContaining({ status: "ok", nodeID: "health-a" }) });
    expect(await probe(health, "/health/ready")).toEqual({
      status: 200,
      body: expect.objectContaining({ status: "ready", nodeID: "health-a", transporter: "none", services: ["probe-target"] })
    });
    expect((await probe(health, "/health/ready?x=1")).status).toBe(200);
    expect((await probe(health, "/health/ready", "HEAD")).status).toBe(200);
    expect((await probe(health, "/health")).status).toBe(404);
    expect((await probe(health, "/api/presence/u1")).status).toBe(404);
    expect((await probe(health, "/health/ready", "POST")).status).toBe(405);
  });

  it("is live but not ready while services are still starting", async () => {
    const health = NodeHealthMiddleware({ port: 0, host: "127.0.0.1" });
    const broker = nodeWith(health);
    let release!: () => void;
    const gate = new Promise<void>(resolve => (release = resolve));
    broker.createService({ name: "slow-start", started: () => gate });
    const starting = broker.start();
    try {
      await eventually(() => health.address() !== null, 5000, "health server listening");
      expect((await probe(health, "/health/live")).status).toBe(200);
      expect(await probe(health, "/health/ready")).toEqual({ status: 503, body: expect.objectContaining({ status: "not_ready" }) });
    } finally {
      release();
      await starting;
    }
    expect((await probe(health, "/health/ready")).status).toBe(200);
  });

  it("turns not ready as soon as the node begins to stop, and closes the port once stopped", async () => {
    const health = NodeHealthMiddleware({ port: 0, host: "127.0.0.1" });
    const broker = nodeWith(health);
    let release!: () => void;
    const gate = new Promise<void>(resolve => (release = resolve));
    broker.createService({ name: "slow-stop", stopped: () => gate });
    await broker.start();
    const { port } = health.address()!;
    expect((await probe(health, "/health/ready")).status).toBe(200);

    const stopping = broker.stop();
    try {
      await eventually(async () => (await probe(health, "/health/ready")).status === 503, 5000, "not ready while stopping");
      expect((await probe(health, "/health/live")).status).toBe(200);
    } finally {
      release();
      await stopping;
    }
    expect(health.address()).toBeNull();
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
  });

  it("reports the transporter: ready only while connected to NATS", async () => {
    const health = NodeHealthMiddleware({ port: 0, host: "127.0.0.1" });
    const broker = nodeWith(health, { transporter: NATS_URL, namespace: `health-${randomUUID().slice(0, 8)}` });
    await broker.start();
    expect(await probe(health, "/health/ready")).toEqual({ status: 200, body: expect.objectContaining({ transporter: "connected" }) });
  });

  it("is refused as a configuration it cannot serve, and is off unless HEALTH_PORT is set", () => {
    expect(loadConfig({}).healthPort).toBeUndefined();
    expect(loadConfig({ HEALTH_PORT: "3100" }).healthPort).toBe(3100);
    expect(() => loadConfig({ HEALTH_PORT: "http" })).toThrow(/HEALTH_PORT/);
    expect(() => loadConfig({ HEALTH_PORT: "70000" })).toThrow(/HEALTH_PORT/);
  });

  it("is added to the runner's broker options by HEALTH_PORT", () => {
    const names = (options: ReturnType<typeof brokerOptions>) => (options.middlewares ?? []).map(m => (m as { name?: string }).name);
    const before = process.env.HEALTH_PORT;
    try {
      delete process.env.HEALTH_PORT;
      expect(names(brokerOptions())).not.toContain("NodeHealth");
      process.env.HEALTH_PORT = "0";
      expect(names(brokerOptions())).toContain("NodeHealth");
    } finally {
      if (before === undefined) delete process.env.HEALTH_PORT;
      else process.env.HEALTH_PORT = before;
    }
  });
});
