import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { sleep } from "./clock";
import type { BenchConfig } from "./config";

/**
 * The servers under test, each a separate process: the product through the Moleculer runner on
 * the compiled dist/ (exactly as operators start it), or the plain Socket.IO baseline.
 */
const ROOT = path.resolve(__dirname, "../../..");
const RUNNER = path.join(ROOT, "node_modules/moleculer/bin/moleculer-runner.js");
/** The product build under test: dist/ (BENCH_PRODUCT_DIST points at another build, e.g. a patched copy inside the repo). */
const DIST = path.resolve(ROOT, process.env.BENCH_PRODUCT_DIST ?? "dist");
const CONFIG = path.join(DIST, "moleculer.config.js");
/** The build of the `product-alt` target (BENCH_ALT_DIST), for A/B runs of a change against dist/. */
export const ALT_DIST = process.env.BENCH_ALT_DIST ? path.resolve(ROOT, process.env.BENCH_ALT_DIST) : undefined;
const BASELINE = path.join(__dirname, "../baseline/server.js");
const MEMPROBE = path.join(__dirname, "memprobe.js");
export const PROFILE_DIR = path.join(ROOT, "bench/results/profiles");

export interface ServerProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  url?: string;
  output(): string;
  /** Full GC in the process, then its memory usage (see memprobe.ts). */
  memory(): Promise<MemoryProbe>;
  stop(): Promise<void>;
}

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** One probe's answer: the memory usage, and the heap snapshot written with it (BENCH_HEAP_SNAPSHOT_DIR, see memprobe.ts). */
export type MemoryProbe = MemoryUsage & { snapshot?: string };

export interface RunningTarget {
  /** Socket.IO URLs of the gateways (clients are spread over them round-robin). */
  urls: string[];
  /** Processes holding sockets (RSS per connection is measured on them). */
  gateways: ServerProcess[];
  /** Other processes of the target (the presence/rooms node). */
  others: ServerProcess[];
  pids(): number[];
  /** Sockets currently held, summed over gateways. */
  activeConnections(): Promise<number>;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Environment of every product node: limits opened up so the bench measures the data path. */
function productEnv(config: BenchConfig, port: number, extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    NODE_ENV: "production",
    JWT_SECRET: config.secret,
    WS_HOST: "127.0.0.1",
    WS_PORT: String(port),
    LOGLEVEL: "warn",
    // The product's per-connection limits (100 messages/min, 50 000 sockets) would cut the load.
    WS_MESSAGE_RATE_LIMIT: "100000000",
    WS_MAX_CONNECTIONS: "1000000",
    // 1 000 publishes/s per tenant and 600 REST requests/min per user would cut the durable publish load.
    EVENT_BUS_PUBLISH_RATE_LIMIT: "100000000",
    API_RATE_LIMIT: "100000000",
    ...config.productEnv,
    ...extra
  };
}

function start(name: string, args: string[], env: Record<string, string>, config: BenchConfig): ServerProcess {
  const nodeArgs: string[] = ["--expose-gc", "-r", MEMPROBE];
  if (config.cpuProf) {
    mkdirSync(PROFILE_DIR, { recursive: true });
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", PROFILE_DIR, "--cpu-prof-name", `${name}-${Date.now()}.cpuprofile`);
  }
  let output = "";
  let probes = 0;
  const snapshots = process.env.BENCH_HEAP_SNAPSHOT_DIR ? { BENCH_HEAP_SNAPSHOT_DIR: process.env.BENCH_HEAP_SNAPSHOT_DIR } : {};
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, env: { ...env, ...snapshots }, stdio: ["ignore", "pipe", "pipe"] });
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>(resolve => child.once("exit", () => resolve()));
  return {
    name,
    pid: child.pid ?? -1,
    child,
    output: () => output,
    async memory() {
      probes += 1;
      const wanted = probes;
      child.kill("SIGUSR2");
      const deadline = Date.now() + 30_000;
      for (;;) {
        const lines = output.match(/BENCH_MEMORY (\{.*\})/g) ?? [];
        for (const line of lines.reverse()) {
          const parsed = JSON.parse(line.slice("BENCH_MEMORY ".length)) as MemoryProbe & { probe: number };
          if (parsed.probe >= wanted) return parsed;
        }
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${name}: no memory probe answer`);
        await sleep(20);
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!killed) {
        child.kill("SIGKILL");
        await exited;
      }
    }
  };
}

async function health(url: string): Promise<Record<string, any> | undefined> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as Record<string, any>;
  } catch {
    return undefined;
  }
}

/** Waits until a gateway reports healthy (for the product: presence and rooms reachable too) and ready. */
async function waitHealthy(proc: ServerProcess, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited with ${proc.child.exitCode}:\n${proc.output()}`);
    const body = await health(url);
    // Healthy, and ready: with a transporter a gateway takes clients one heartbeat after joining.
    if (body?.status === "healthy" && (await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) }).then(r => r.ok, () => false))) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} not healthy after ${timeoutMs} ms (last: ${JSON.stringify(body)}):\n${proc.output()}`);
    await sleep(100);
  }
}

function target(gateways: ServerProcess[], others: ServerProcess[]): RunningTarget {
  const all = [...gateways, ...others];
  return {
    urls: gateways.map(g => g.url as string),
    gateways,
    others,
    pids: () => all.map(p => p.pid),
    async activeConnections() {
      let total = 0;
      for (const g of gateways) {
        const body = await health(g.url as string);
        total += Number(body?.services?.websocket?.activeConnections ?? body?.activeConnections ?? Number.NaN);
      }
      return total;
    },
    async stop() {
      // Gateways first, so the presence node does not churn through their disconnects.
      await Promise.all(gateways.map(g => g.stop()));
      await Promise.all(others.map(o => o.stop()));
    }
  };
}

/** The product in one process: SERVICES unset (all services), no transporter, in-memory stores. */
export async function startProductSingle(config: BenchConfig, dist = DIST, name = "product", extraEnv: Record<string, string> = {}): Promise<RunningTarget> {
  const configFile = path.join(dist, "moleculer.config.js");
  if (!existsSync(configFile)) throw new Error(`${configFile} is missing: run \`npm run build\` first (npm run bench does)`);
  const port = await freePort();
  const proc = start(name, [RUNNER, "--config", configFile], productEnv(config, port, { ...extraEnv, NODEID: `bench-${name}-${process.pid}` }), config);
  proc.url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(proc, proc.url);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return target([proc], []);
}

/**
 * SERVICES of the non-gateway node: BENCH_NATS_SERVICES, or every service of the build but the
 * gateway (presence,rooms when the issue was written; the event bus joined them since).
 */
export function nonGatewayServices(config: BenchConfig): string {
  if (config.natsServices) return config.natsServices;
  return readdirSync(path.join(DIST, "services"))
    .map(f => /^(.+)\.service\.js$/.exec(f)?.[1])
    .filter((name): name is string => name !== undefined && name !== "gateway")
    .sort()
    .join(",");
}

/**
 * The product as a cluster over the real NATS server: one node with the non-gateway services
 * and `gateways` nodes with `SERVICES=gateway`, in a fresh namespace.
 */
export async function startProductCluster(config: BenchConfig, gatewayCount: number): Promise<RunningTarget> {
  if (!existsSync(CONFIG)) throw new Error(`${CONFIG} is missing: run \`npm run build\` first (npm run bench does)`);
  const namespace = `bench-${randomUUID().slice(0, 8)}`;
  const common = { TRANSPORTER: config.natsUrl, NAMESPACE: namespace };
  const services = start(
    "product-services",
    [RUNNER, "--config", CONFIG],
    productEnv(config, 0, { ...common, SERVICES: nonGatewayServices(config), NODEID: `${namespace}-services` }),
    config
  );
  const gateways: ServerProcess[] = [];
  try {
    for (let i = 0; i < gatewayCount; i++) {
      const port = await freePort();
      const gw = start(`product-gateway-${i + 1}`, [RUNNER, "--config", CONFIG], productEnv(config, port, { ...common, SERVICES: "gateway", NODEID: `${namespace}-gw${i + 1}` }), config);
      gw.url = `http://127.0.0.1:${port}`;
      gateways.push(gw);
    }
    await Promise.all(gateways.map(g => waitHealthy(g, g.url as string)));
  } catch (err) {
    await Promise.all([...gateways, services].map(p => p.stop()));
    throw err;
  }
  return target(gateways, [services]);
}

/** `count` independent baseline processes (a plain Socket.IO server cannot share rooms across processes). */
export async function startBaseline(config: BenchConfig, count = 1): Promise<RunningTarget> {
  if (!existsSync(BASELINE)) throw new Error(`${BASELINE} is missing: compile the bench first`);
  const procs: ServerProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const proc = start(
        count === 1 ? "baseline" : `baseline-${i + 1}`,
        [BASELINE],
        { PATH: process.env.PATH ?? "", NODE_ENV: "production", JWT_SECRET: config.secret, HOST: "127.0.0.1", PORT: String(port) },
        config
      );
      proc.url = `http://127.0.0.1:${port}`;
      procs.push(proc);
    }
    await Promise.all(procs.map(p => waitHealthy(p, p.url as string)));
  } catch (err) {
    await Promise.all(procs.map(p => p.stop()));
    throw err;
  }
  return target(procs, []);
}
