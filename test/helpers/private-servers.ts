import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { freePort } from "./process-node";

/**
 * Private Redis and NATS servers for outage tests: each test starts its own on a free port, then
 * kills, pauses or restarts it. The shared servers on 6379/4222 are never touched. A missing binary
 * fails the test (it never skips).
 */
export interface PrivateServer {
  readonly port: number;
  readonly url: string;
  /** Whether the process is running (it may be paused). */
  running(): boolean;
  /** Kills the server (SIGKILL by default) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (a fresh, empty server). */
  start(): Promise<void>;
  /** SIGSTOP: the process hangs with its connections open, like a network partition. */
  pause(): void;
  /** SIGCONT after pause. */
  resume(): void;
}

function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin", "/sbin", "/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} is not installed (looked in PATH and /usr/sbin): the outage tests need it (.ci/run installs it)`);
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function privateServer(label: string, binary: string, args: (port: number) => string[], url: (port: number) => string, port: number): PrivateServer {
  let child: ChildProcess | undefined;
  let output = "";
  const server: PrivateServer = {
    port,
    url: url(port),
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async start() {
      if (server.running()) throw new Error(`${label} is already running`);
      output = "";
      child = spawn(binary, args(port), { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.on("data", chunk => (output += chunk));
      child.stderr?.on("data", chunk => (output += chunk));
      const deadline = Date.now() + 10_000;
      while (!(await portAccepts(port))) {
        if (!server.running()) throw new Error(`${label} exited at start:\n${output}`);
        if (Date.now() > deadline) throw new Error(`${label} did not listen on ${port}:\n${output}`);
        await new Promise(r => setTimeout(r, 50));
      }
    },
    async stop(signal: NodeJS.Signals = "SIGKILL") {
      const current = child;
      if (!current || !server.running()) return;
      const exited = new Promise<void>(resolve => current.once("exit", () => resolve()));
      if (signal !== "SIGCONT") current.kill("SIGCONT");
      current.kill(signal);
      await exited;
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    }
  };
  return server;
}

/** A Redis without persistence on a free port: a restart comes back empty, as after a crash. */
export async function startPrivateRedis(): Promise<PrivateServer> {
  const binary = findBinary("redis-server");
  const port = await freePort();
  const server = privateServer(
    "redis-server",
    binary,
    p => ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
    p => `redis://127.0.0.1:${p}`,
    port
  );
  await server.start();
  return server;
}

/** A core NATS server (no JetStream: Moleculer needs none) on a free port. */
export async function startPrivateNats(): Promise<PrivateServer> {
  const binary = findBinary("nats-server");
  const port = await freePort();
  const server = privateServer("nats-server", binary, p => ["-a", "127.0.0.1", "-p", String(p)], p => `nats://127.0.0.1:${p}`, port);
  await server.start();
  return server;
}
