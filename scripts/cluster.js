#!/usr/bin/env node
// @ts-check
"use strict";
/**
 * `npm run cluster`: the Kubernetes topology (k8s/) on one machine, for development. Builds dist/
 * when the sources are newer, checks NATS (and Redis), then starts, as separate processes of the
 * Moleculer runner over the local NATS:
 *   - CLUSTER_GATEWAYS (2) gateway nodes on CLUSTER_BASE_PORT (3000), +1, ... (SERVICES=gateway)
 *   - one node with every other service found in dist/services (presence, rooms, eventbus, ...)
 * Each node's log lines are prefixed with its name. Ctrl-C (SIGINT) or SIGTERM sends SIGTERM to
 * every node and waits until all have stopped (they drain as in Kubernetes); a second Ctrl-C, or
 * CLUSTER_STOP_TIMEOUT_MS, kills what is left. If one node dies, the others are stopped too.
 *
 * Environment (everything else, JWT_SECRET included, is passed to the nodes unchanged):
 *   TRANSPORTER        nats://127.0.0.1:4222
 *   NAMESPACE          local (nodes of other namespaces on the same NATS are invisible)
 *   REDIS_URL          redis://127.0.0.1:6379; set it empty (REDIS_URL=) for in-process stores:
 *                      then presence, rooms and the event log live in the services node only,
 *                      rate limits are per gateway, and nothing survives a restart
 *   WS_HOST            127.0.0.1
 *   CLUSTER_BASE_PORT  3000          CLUSTER_GATEWAYS 2
 *   CLUSTER_SERVICES   the services node's SERVICES (default: all but gateway)
 *   LOG_FORMAT         text
 *   CLUSTER_STOP_TIMEOUT_MS  60000
 */
const { spawn, spawnSync } = require("node:child_process");
const { existsSync, readdirSync, statSync } = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const readline = require("node:readline");

const ROOT = path.resolve(__dirname, "..");
const DIST = path.join(ROOT, "dist");
const CONFIG = path.join(DIST, "moleculer.config.js");
const SERVICE_DIR = path.join(DIST, "services");
const RUNNER = path.join(ROOT, "node_modules/moleculer/bin/moleculer-runner.js");
const SOURCES = ["moleculer.config.ts", "lib", "mixins", "protocols", "services", "stores", "types", "tsconfig.json", "tsconfig.build.json"];

const env = process.env;

/** @param {string} name @param {number} fallback @param {number} min */
function intEnv(name, fallback, min) {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) fail(`${name} must be an integer >= ${min}, got "${raw}"`);
  return value;
}

/** @param {string} message @returns {never} */
function fail(message) {
  log(`error: ${message}`);
  process.exit(1);
}

/** @param {string} message */
function log(message) {
  process.stdout.write(`[cluster] ${message}\n`);
}

const settings = {
  transporter: env.TRANSPORTER && env.TRANSPORTER.trim() !== "" ? env.TRANSPORTER : "nats://127.0.0.1:4222",
  namespace: env.NAMESPACE && env.NAMESPACE.trim() !== "" ? env.NAMESPACE : "local",
  redisUrl: env.REDIS_URL === undefined ? "redis://127.0.0.1:6379" : env.REDIS_URL.trim(),
  host: env.WS_HOST && env.WS_HOST.trim() !== "" ? env.WS_HOST : "127.0.0.1",
  basePort: intEnv("CLUSTER_BASE_PORT", 3000, 1),
  gateways: intEnv("CLUSTER_GATEWAYS", 2, 1),
  stopTimeoutMs: intEnv("CLUSTER_STOP_TIMEOUT_MS", 60_000, 1000),
  readyTimeoutMs: intEnv("CLUSTER_READY_TIMEOUT_MS", 60_000, 1000)
};

/** Newest modification time under `p` (files and directories). @param {string} p @returns {number} */
function newestMtime(p) {
  if (!existsSync(p)) return 0;
  const stat = statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, name)));
  return newest;
}

function buildIfNeeded() {
  const built = existsSync(CONFIG) ? statSync(CONFIG).mtimeMs : 0;
  const changed = Math.max(...SOURCES.map(s => newestMtime(path.join(ROOT, s))));
  if (built > 0 && changed <= built) return;
  log(built === 0 ? "dist/ is missing: building" : "sources changed since the last build: building");
  const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", path.join(ROOT, "tsconfig.build.json")], { cwd: ROOT, stdio: "inherit" });
  if (result.status !== 0) fail("the build failed (npm run build)");
}

/** @param {string} host @param {number} port @returns {Promise<boolean>} */
function reachable(host, port, timeoutMs = 2000) {
  return new Promise(resolve => {
    const socket = net.connect({ host, port });
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** @param {string} host @param {number} port @returns {Promise<boolean>} */
function portFree(host, port) {
  return new Promise(resolve => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** host and port of the first URL of a (comma-separated) list. @param {string} urls @param {number} defaultPort */
function hostPort(urls, defaultPort) {
  const url = new URL(urls.split(",")[0].trim());
  return { host: url.hostname || "127.0.0.1", port: url.port ? Number(url.port) : defaultPort };
}

async function preflight() {
  if (/^nats:\/\//.test(settings.transporter)) {
    const { host, port } = hostPort(settings.transporter, 4222);
    if (!(await reachable(host, port))) {
      fail(`NATS is not reachable at ${host}:${port} (TRANSPORTER=${settings.transporter}); start it first, e.g. \`nats-server -a 127.0.0.1 -p 4222\``);
    }
  }
  if (settings.redisUrl !== "") {
    const { host, port } = hostPort(settings.redisUrl, 6379);
    if (!(await reachable(host, port))) {
      fail(`Redis is not reachable at ${host}:${port} (REDIS_URL=${settings.redisUrl}); start it, or run with REDIS_URL= (empty) for in-process stores`);
    }
  } else {
    log("REDIS_URL is empty: in-process stores. Presence, rooms and the event log live in the services node only, rate limits are per gateway, nothing survives a restart.");
  }
  for (let i = 0; i < settings.gateways; i++) {
    const port = settings.basePort + i;
    if (!(await portFree(settings.host, port))) fail(`port ${settings.host}:${port} is in use (set CLUSTER_BASE_PORT)`);
  }
}

function serviceNodeServices() {
  if (env.CLUSTER_SERVICES && env.CLUSTER_SERVICES.trim() !== "") return env.CLUSTER_SERVICES.trim();
  const names = readdirSync(SERVICE_DIR)
    .filter(f => f.endsWith(".service.js"))
    .map(f => f.slice(0, -".service.js".length))
    .filter(name => name !== "gateway")
    .sort();
  if (names.length === 0) fail(`no services besides the gateway in ${SERVICE_DIR}`);
  return names.join(",");
}

/**
 * @typedef {{ name: string, child: import("node:child_process").ChildProcess, port?: number, exited: Promise<void>, code: number | null, signal: NodeJS.Signals | null, done: boolean }} Node
 */

/** @type {Node[]} */
const nodes = [];
let stopping = false;
let unexpected = false;

/** @param {string} name @param {Record<string, string>} nodeEnv @param {number} [port] */
function startNode(name, nodeEnv, port) {
  const child = spawn(process.execPath, [RUNNER, "--config", CONFIG, SERVICE_DIR], {
    cwd: ROOT,
    env: {
      ...env,
      LOG_FORMAT: env.LOG_FORMAT || "text",
      TRANSPORTER: settings.transporter,
      NAMESPACE: settings.namespace,
      REDIS_URL: settings.redisUrl,
      WS_HOST: settings.host,
      NODEID: name,
      ...nodeEnv
    },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: a terminal's Ctrl-C reaches this script only, which stops the nodes
    // with one SIGTERM each, as Kubernetes does.
    detached: true
  });
  const prefix = `[${name}]`.padEnd(14);
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    readline.createInterface({ input: stream }).on("line", line => process.stdout.write(`${prefix} ${line}\n`));
  }
  /** @type {Node} */
  const node = { name, child, port, code: null, signal: null, done: false, exited: Promise.resolve() };
  node.exited = new Promise(resolve => {
    // "close": the process exited and its output is flushed.
    child.once("close", (code, signal) => {
      node.code = code;
      node.signal = signal;
      node.done = true;
      log(`${name} exited (${signal ?? `code ${code}`})`);
      if (!stopping) {
        unexpected = true;
        log(`${name} stopped unexpectedly: stopping the cluster`);
        stop();
      }
      resolve();
    });
  });
  child.once("error", err => log(`${name} could not start: ${err.message}`));
  nodes.push(node);
  log(`${name} started (pid ${child.pid}): SERVICES=${nodeEnv.SERVICES}${port ? ` http://${settings.host}:${port}` : ""}`);
  return node;
}

/** @param {NodeJS.Signals} signal */
function signalAll(signal) {
  for (const node of nodes) {
    if (node.done || node.child.pid === undefined) continue;
    try {
      process.kill(node.child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** @type {NodeJS.Timeout | undefined} */
let killTimer;

function stop() {
  if (stopping) return;
  stopping = true;
  const running = nodes.filter(n => !n.done).length;
  log(`stopping: SIGTERM to ${running} node(s); Ctrl-C again to kill`);
  signalAll("SIGTERM");
  killTimer = setTimeout(() => {
    log(`nodes still running after ${settings.stopTimeoutMs} ms: killing them`);
    signalAll("SIGKILL");
  }, settings.stopTimeoutMs);
  killTimer.unref();
  Promise.all(nodes.map(n => n.exited)).then(() => {
    if (killTimer) clearTimeout(killTimer);
    const failed = nodes.filter(n => n.code !== 0);
    log(failed.length === 0 && !unexpected ? "all nodes stopped" : `stopped; ${failed.map(n => `${n.name}: ${n.signal ?? `code ${n.code}`}`).join(", ") || "a node died"}`);
    process.exit(failed.length === 0 && !unexpected ? 0 : 1);
  });
}

for (const signal of /** @type {NodeJS.Signals[]} */ (["SIGINT", "SIGTERM", "SIGHUP"])) {
  process.on(signal, () => {
    if (!stopping) stop();
    else {
      log(`${signal} again: killing the nodes`);
      signalAll("SIGKILL");
    }
  });
}
// Last resort if this script dies with nodes still running (they are in their own groups).
process.on("exit", () => signalAll("SIGKILL"));

/** @param {number} port @param {string} route */
async function fetchJson(port, route) {
  const res = await fetch(`http://${settings.host === "0.0.0.0" ? "127.0.0.1" : settings.host}:${port}${route}`);
  return { ok: res.ok, body: /** @type {Record<string, any>} */ (await res.json()) };
}

/** @param {Node[]} gateways */
async function waitUntilReady(gateways) {
  const deadline = Date.now() + settings.readyTimeoutMs;
  while (!stopping && Date.now() < deadline) {
    const states = await Promise.all(
      gateways.map(async node => {
        try {
          const ready = await fetchJson(/** @type {number} */ (node.port), "/health/ready");
          const health = await fetchJson(/** @type {number} */ (node.port), "/health");
          return ready.ok && health.body.status === "healthy";
        } catch {
          return false;
        }
      })
    );
    if (states.every(Boolean)) {
      log(`ready: ${gateways.map(n => `${n.name} http://${settings.host}:${n.port}`).join(", ")} (namespace ${settings.namespace}); Ctrl-C stops`);
      return;
    }
    await new Promise(r => setTimeout(r, 250));
  }
  if (!stopping) log(`not every gateway reports healthy after ${settings.readyTimeoutMs} ms; see the logs above (GET /health)`);
}

async function main() {
  buildIfNeeded();
  await preflight();
  if (stopping) return;
  const services = serviceNodeServices();
  startNode("services-1", { SERVICES: services });
  const gateways = [];
  for (let i = 0; i < settings.gateways; i++) {
    const port = settings.basePort + i;
    gateways.push(startNode(`gateway-${i + 1}`, { SERVICES: "gateway", WS_PORT: String(port) }, port));
  }
  await waitUntilReady(gateways);
}

main().catch(err => {
  log(`error: ${err instanceof Error ? err.message : String(err)}`);
  unexpected = true;
  stop();
});
