import type { LoggerInstance } from "moleculer";
import type { Server as IOServer, Socket } from "socket.io";
import { ErrorCode } from "../lib/errors";
import type { EngineConnection } from "./outbound-guard";

/**
 * Graceful shutdown of a gateway (SIGTERM → broker.stop → the gateway's `stopped`):
 *
 * 1. the caller stops accepting the moment the node starts stopping: `/health/ready` answers 503,
 *    new handshakes are refused with `INTERNAL_ERROR`, `details.reason: "shutting_down"`, and
 *    logged (B/C) traffic is no longer emitted to local clients ({@link isLogged}): the other nodes
 *    stop relaying to this one at that moment, and a client must not receive later events of its
 *    own node while missing earlier ones of others (its cursor would skip them). It replays all of
 *    it from its cursor on the next node;
 * 2. every connected client is told to reconnect elsewhere (the PF-2 `error` event below);
 * 3. new client events are refused the same way, while events already being handled (appends,
 *    acknowledgements) finish: {@link InFlight} waits for them, up to half of SHUTDOWN_TIMEOUT_MS;
 * 4. the connections are closed (gracefully, then hard), and their clean-up (presence, rooms) is
 *    awaited within the remaining budget.
 *
 * The process itself exits at SHUTDOWN_TIMEOUT_MS at the latest (moleculer.config.ts).
 */

/** What the client is told when its gateway shuts down or sheds it. */
export const SHUTTING_DOWN = "shutting_down";
export const SLOW_CONSUMER = "slow_consumer";
/** The node's transporter came back after an outage: traffic from other nodes may have been missed. */
export const RESYNC = "resync";

/** A delivery of a logged event (class B/C message or bus event): it carries its log position. */
export function isLogged(delivery: { payload: unknown }): boolean {
  const payload = delivery.payload as { position?: unknown } | null;
  return typeof payload === "object" && payload !== null && typeof payload.position === "string";
}

/** Counts work in progress (client events being handled, disconnect clean-ups). */
export class InFlight {
  private active = 0;
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.active;
  }

  /** Counts the promise until it settles; returns it unchanged. */
  track<T>(work: Promise<T>): Promise<T> {
    this.active += 1;
    const done = () => {
      this.active -= 1;
      if (this.active === 0) for (const wake of this.waiters.splice(0)) wake();
    };
    work.then(done, done);
    return work;
  }

  /** Resolves true once nothing is in flight, false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise(resolve => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter(w => w !== wake);
        resolve(false);
      }, Math.max(0, timeoutMs));
      this.waiters.push(wake);
    });
  }
}

/**
 * A server notice in the shape of the socket's protocol: PF-2 (`/`) `{error, code, details}`,
 * the seed 004 feed `{code, message, details}`.
 */
export function emitNotice(socket: Socket, message: string, details: Record<string, unknown>): void {
  const body =
    socket.nsp.name === "/"
      ? { error: message, code: ErrorCode.INTERNAL_ERROR, details }
      : { code: ErrorCode.INTERNAL_ERROR, message, details };
  socket.emit("error", body);
}

/** The details of the shutdown notice: retry elsewhere, resuming with the rooms the connection was in. */
export function shutdownDetails(socket: Socket): Record<string, unknown> {
  const rooms = (socket.data as { rooms?: Set<string> } | undefined)?.rooms;
  return { reason: SHUTTING_DOWN, retryable: true, reconnect: true, ...(rooms ? { rooms: [...rooms] } : {}) };
}

function allSockets(io: IOServer): Socket[] {
  const sockets: Socket[] = [];
  // `_nsps` is Socket.IO's namespace map; every protocol has its namespace there.
  for (const nsp of (io as unknown as { _nsps: Map<string, { sockets: Map<string, Socket> }> })._nsps.values()) {
    for (const socket of nsp.sockets.values()) sockets.push(socket);
  }
  return sockets;
}

const delay = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

export interface DrainReport {
  clients: number;
  /** Client events still running when the wait ended (0 = all finished). */
  unfinished: number;
  /** Connections that had to be cut hard (they did not drain). */
  cut: number;
  elapsedMs: number;
}

/**
 * Steps 2-4 above. `budgetMs` is SHUTDOWN_TIMEOUT_MS; the caller has already stopped accepting.
 */
export async function drainGateway(io: IOServer, inFlight: InFlight, budgetMs: number, logger: LoggerInstance): Promise<DrainReport> {
  const started = Date.now();
  const sockets = allSockets(io);
  if (sockets.length === 0) {
    await inFlight.idle(Math.floor(budgetMs / 2));
    return { clients: 0, unfinished: inFlight.size, cut: 0, elapsedMs: Date.now() - started };
  }
  for (const socket of sockets) {
    if (socket.connected) emitNotice(socket, "Server is shutting down; reconnect to another node and resume from your last position", shutdownDetails(socket));
  }
  const finished = await inFlight.idle(Math.floor(budgetMs / 2));
  const unfinished = finished ? 0 : inFlight.size;
  if (!finished) logger.warn("Shutdown: client events still running after half the shutdown budget", { unfinished });

  // Close every connection; engine.io writes what is queued first, so the notice and the last
  // acknowledgements reach clients that read.
  const conns = new Set<EngineConnection>();
  for (const socket of allSockets(io)) conns.add(socket.conn as unknown as EngineConnection);
  for (const conn of conns) conn.close();
  const closeBy = started + Math.floor((budgetMs * 3) / 4);
  while ([...conns].some(c => c.readyState !== "closed") && Date.now() < closeBy) await delay(20);
  let cut = 0;
  for (const conn of conns) {
    if (conn.readyState === "closed") continue;
    cut += 1;
    const ws = conn.transport.socket;
    conn.close(true);
    ws?.terminate?.();
  }
  // Disconnect clean-ups (presence, rooms) were started by the closes; give them the rest.
  await inFlight.idle(Math.max(0, started + Math.floor((budgetMs * 7) / 8) - Date.now()));
  const report = { clients: sockets.length, unfinished, cut, elapsedMs: Date.now() - started };
  logger.info("Gateway drained", report);
  return report;
}
