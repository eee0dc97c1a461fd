import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { inspect } from "node:util";
import jwt from "jsonwebtoken";
import { Loggers } from "moleculer";
import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, refusal, request, socketTo, firstEvent } from "../helpers/client";
import { TEST_SECRET, expiredToken, tokenFor, unsignedToken } from "../helpers/tokens";

/**
 * "Tokens are never logged" (issue #5, DESIGN.md habits), proven twice: every log line of a node
 * at trace level, while clients send valid, forged, expired and cross-tenant tokens over REST and
 * Socket.IO, contains none of them; and no logger call in the source passes a token, an
 * Authorization header or a whole header set.
 */

/** Keeps every log call of the broker, at every level, as text. */
class CapturingLogger extends Loggers.Base {
  readonly lines: string[] = [];
  getLogHandler(bindings?: { mod?: string }) {
    return (type: string, args: unknown[]) => {
      this.lines.push(`${type} ${bindings?.mod ?? ""} ${args.map(a => (typeof a === "string" ? a : inspect(a, { depth: 8, breakLength: Infinity }))).join(" ")}`);
    };
  }
}

describe("tokens never reach the logs", () => {
  let node: TestNode;
  const logger = new CapturingLogger({ level: "trace" });
  const sockets: Socket[] = [];

  beforeAll(async () => {
    node = await startNode({ broker: { logger, logLevel: "trace" } });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await node.stop();
  });

  it("logs no token sent over REST or Socket.IO, valid or refused", async () => {
    const tokens = {
      valid: tokenFor("t1", "alice"),
      admin: tokenFor("t1", "boss", { role: "admin" }),
      expired: expiredToken("t1", "alice"),
      forged: jwt.sign({ tenantId: "t1", userId: "mallory" }, "not-the-secret"),
      unsigned: unsignedToken("t1", "mallory"),
      otherTenant: tokenFor("t2", "eve"),
      claimless: jwt.sign({ userId: "nobody" }, TEST_SECRET)
    };
    const rest = (path: string, token: string, init: RequestInit = {}, tenant = "t1") =>
      fetch(`${node.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, "X-Tenant-ID": tenant, "Content-Type": "application/json", ...(init.headers ?? {}) } });

    for (const token of Object.values(tokens)) {
      await rest("/api/presence/u1", token);
      await rest("/api/events/poll", token);
      await rest("/api/rooms", token, { method: "POST", body: "{bad json" });
      await fetch(`${node.url}/api/events`, { headers: { "X-User-Token": token, "X-TENANT-ID": "t1" } });
    }
    await rest("/api/presence/u1", tokens.valid, {}, "t2");
    await rest("/api/rooms", tokens.admin, { method: "POST", body: JSON.stringify({ roomId: "vip", members: [] }) });

    for (const token of [tokens.expired, tokens.forged, tokens.unsigned, tokens.claimless]) await refusal(node.url, token);
    const { socket } = await connect(node.url, tokens.valid);
    sockets.push(socket);
    await request(socket, "join_room", { roomId: "vip" });
    await request(socket, "message", { type: "x", roomId: "r", tenantId: "t2", payload: tokens.valid });
    await request(socket, "join_room", { roomId: tokens.valid });
    await request(socket, "no_such_event", { token: tokens.valid });
    const feed = socketTo(`${node.url}/events`, tokens.valid, { auth: { tenantId: "t2" } });
    sockets.push(feed);
    await firstEvent(feed, ["connect_error", "snapshot"]);

    expect(logger.lines.length).toBeGreaterThan(20);
    const leaks: string[] = [];
    for (const [name, token] of Object.entries(tokens)) {
      const [header, payload, signature] = token.split(".");
      for (const line of logger.lines) {
        if (line.includes(token) || (signature && line.includes(signature)) || line.includes(`${header}.${payload}`)) leaks.push(`${name}: ${line.slice(0, 200)}`);
      }
    }
    expect(leaks).toEqual([]);
  });
});

describe("no logger call passes a token or headers (source scan)", () => {
  const root = join(__dirname, "../..");
  const dirs = ["lib", "services", "protocols", "mixins", "stores", "moleculer.config.ts"];

  function files(path: string): string[] {
    const full = join(root, path);
    if (statSync(full).isFile()) return full.endsWith(".ts") ? [full] : [];
    return readdirSync(full).flatMap(entry => files(join(path, entry)));
  }

  /** The text of each `logger.<level>(…)` call, with its string literals blanked. */
  function loggerCalls(source: string): string[] {
    const calls: string[] = [];
    const pattern = /\blogger\s*(?:\?\.)?\s*\.\s*(?:fatal|error|warn|info|debug|trace)\s*\(/g;
    for (let match = pattern.exec(source); match; match = pattern.exec(source)) {
      let depth = 0;
      let end = match.index + match[0].length - 1;
      for (; end < source.length; end++) {
        if (source[end] === "(") depth++;
        else if (source[end] === ")" && --depth === 0) break;
      }
      calls.push(source.slice(match.index, end + 1));
    }
    return calls.map(call => call.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""').replace(/`(?:[^`\\]|\\.)*`/g, m => m.replace(/[^$]*?(\$\{[^}]*\})?/g, "$1")));
  }

  /**
   * A token or JWT by name, an Authorization header, a whole header set (`req.headers`, but not
   * one named header `headers["x"]` / `headers?.[NAME]`), or the handshake beyond its address.
   */
  const SUSPECT = /\b(tokens?|jwt|bearer|authorization)\b|\bheaders\b(?!\s*(\?\.)?\s*\[)|\bhandshake\b(?!\s*\.\s*(address|time|issued|secure|xdomain)\b)/i;

  it("flags what it should (the pattern can fail)", () => {
    expect(SUSPECT.test('logger.debug("x", { token })')).toBe(true);
    expect(SUSPECT.test('logger.info("x", req.headers)')).toBe(true);
    expect(SUSPECT.test('logger.info("x", { auth: socket.handshake.auth })')).toBe(true);
    expect(SUSPECT.test('logger.warn("x", { a: req.headers.authorization })')).toBe(true);
    expect(SUSPECT.test('logger.warn("x", { address: socket.handshake.address, error: headers?.[ERROR_HEADER] })')).toBe(false);
  });

  it("finds the logger calls (the scan is not empty)", () => {
    const count = dirs.flatMap(files).reduce((n, file) => n + loggerCalls(readFileSync(file, "utf8")).length, 0);
    expect(count).toBeGreaterThan(30);
  });

  it("none of them names a token, an Authorization header, headers or the handshake auth", () => {
    const offenders: string[] = [];
    for (const file of dirs.flatMap(files)) {
      for (const call of loggerCalls(readFileSync(file, "utf8"))) {
        if (SUSPECT.test(call)) offenders.push(`${relative(root, file)}: ${call.replace(/\s+/g, " ").slice(0, 160)}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
