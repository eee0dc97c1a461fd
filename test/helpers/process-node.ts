import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { TEST_SECRET } from "./tokens";

const ROOT = path.resolve(__dirname, "../..");
const RUNNER = path.join(ROOT, "node_modules/moleculer/bin/moleculer-runner.js");
const CONFIG = path.join(ROOT, "dist/moleculer.config.js");

export interface ProcessNode {
  child: ChildProcess;
  port: number;
  url: string;
  output(): string;
  /** Sends a signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released). */
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

/**
 * Starts a node exactly as operators do: the Moleculer runner on the compiled build with the
 * product's environment variables (SERVICES, TRANSPORTER, NODEID, NAMESPACE, WS_PORT, ...).
 * Needs `npm run build` first (`npm test` runs it). `nodeOptions` go to node before the runner.
 */
export async function spawnNode(env: Record<string, string>, readyTimeoutMs = 20_000, nodeOptions: string[] = []): Promise<ProcessNode> {
  if (!existsSync(CONFIG)) throw new Error("dist/ is missing: run `npm run build` before the process-level tests");
  const port = env.WS_PORT ? Number(env.WS_PORT) : await freePort();
  let output = "";
  // A fresh data directory (audit files, audit spool) unless the test names one; removed on kill.
  const ownDataDir = env.DATA_DIR === undefined ? mkdtempSync(path.join(tmpdir(), "pf2-proc-")) : undefined;
  const child = spawn(process.execPath, [...nodeOptions, RUNNER, "--config", CONFIG], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", JWT_SECRET: TEST_SECRET, WS_HOST: "127.0.0.1", WS_PORT: String(port), LOGLEVEL: "warn", ...(ownDataDir ? { DATA_DIR: ownDataDir } : {}), ...env },
    stdio: ["ignore", "pipe", "pipe"]
  });
  child.stdout?.on("data", chunk => (output += chunk));
  child.stderr?.on("data", chunk => (output += chunk));
  const exited = new Promise<void>(resolve => child.once("exit", () => resolve()));
  const node: ProcessNode = {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
      if (ownDataDir) rmSync(ownDataDir, { recursive: true, force: true });
    }
  };
  const runsGateway = !env.SERVICES || env.SERVICES.split(",").includes("gateway");
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${output}`);
    if (runsGateway) {
      const ready = await fetch(`${node.url}/health/ready`).then(r => r.ok).catch(() => false);
      if (ready) return node;
    } else {
      // Nodes without HTTP are awaited by the caller (broker.waitForServices over the transporter).
      return node;
    }
    if (Date.now() > deadline) {
      await node.kill("SIGKILL");
      throw new Error(`node did not become ready:\n${output}`);
    }
    await new Promise(r => setTimeout(r, 100));
  }
}
