import type { Socket } from "socket.io";

/**
 * Slow consumers: a client that stops reading must not make the server buffer without bound.
 *
 * Socket.IO queues every server→client packet of a connection in its engine.io socket
 * (`conn.writeBuffer`) while the transport is busy writing, and a WebSocket transport holds the
 * batch being written (`bufferedAmount`) until the kernel takes it. When the client stops reading,
 * the kernel buffers fill, the write never completes and the queue grows with every message.
 *
 * - Class A traffic goes out as Socket.IO *volatile* packets, which Socket.IO drops whenever the
 *   transport is not writable: as soon as anything waits, class A is shed, class B/C are queued.
 * - {@link outboundGuard} counts what waits on each connection as it grows; past
 *   WS_MAX_BUFFERED_MESSAGES packets or WS_MAX_BUFFERED_BYTES bytes the connection is closed with
 *   reason `slow_consumer` ({@link closeSlowConsumer}): what waits is dropped, the notice takes its
 *   place, then the connection closes. Nothing class B/C is lost by that: it is in the log, and
 *   the client resumes from its last position when it reconnects.
 *
 * The engine.io internals used here (`writeBuffer`, `sendPacket`,
 * `transport.writable`, the `ws` socket's `bufferedAmount`) are those of engine.io 6.
 */

export interface OutboundLimits {
  /** Packets that may wait to be written. */
  maxMessages: number;
  /** Bytes that may wait (queued packets plus the write in progress). */
  maxBytes: number;
}

export interface OutboundBacklog {
  messages: number;
  bytes: number;
}

/** After a slow consumer is told and closed gracefully, it is cut hard this much later. */
export const SLOW_CONSUMER_GRACE_MS = 5000;

/** The parts of an engine.io socket the guard reads. */
export interface EngineConnection {
  readyState: string;
  writeBuffer: Array<{ data?: unknown }>;
  /** Send callbacks of the packets in `writeBuffer` (engine.io keeps them beside it). */
  packetsFn?: unknown[];
  transport: { writable: boolean; name?: string; socket?: { bufferedAmount?: number; terminate?: () => void }; once(event: string, listener: () => void): unknown; off?(event: string, listener: () => void): unknown };
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
  close(discard?: boolean): unknown;
  sendPacket(type: string, data?: unknown, options?: unknown, callback?: unknown): unknown;
}

interface GuardState {
  /** Bytes of the packets in `writeBuffer` (reset when engine.io flushes it to the transport). */
  queuedBytes: number;
  tripped: boolean;
  /** The connection's own sendPacket, which the guarded one calls. */
  readonly send: EngineConnection["sendPacket"];
  readonly guard: Guard;
}

interface Guard {
  readonly limits: OutboundLimits;
  readonly onOverflow: (conn: EngineConnection, backlog: OutboundBacklog) => void;
}

/**
 * The guard's state lives on the connection itself: the guarded sendPacket reads it on every
 * packet, and a property is cheaper to read than a WeakMap and costs no map entry.
 */
const GUARD = Symbol("outboundGuard");
type Guarded = EngineConnection & { [GUARD]?: GuardState };

function sizeOf(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/** Bytes of the write in progress on the transport (the `ws` socket's buffer). */
function inFlightBytes(conn: EngineConnection): number {
  const inFlight = conn.transport.socket?.bufferedAmount ?? 0;
  return typeof inFlight === "number" ? inFlight : 0;
}

/** What waits on a connection right now: queued packets, and their bytes plus the write in progress. */
export function outboundBacklog(conn: EngineConnection): OutboundBacklog {
  const state = (conn as Guarded)[GUARD];
  if (conn.writeBuffer.length === 0) return { messages: 0, bytes: inFlightBytes(conn) };
  const queuedBytes = state ? state.queuedBytes : conn.writeBuffer.reduce((sum, p) => sum + sizeOf(p.data), 0);
  return { messages: conn.writeBuffer.length, bytes: queuedBytes + inFlightBytes(conn) };
}

/**
 * A guard for engine.io connections: the returned function watches one connection and calls
 * `onOverflow` once, when a new packet would make more than `limits` wait. Idempotent per
 * connection (several namespaces share one connection). Every watched connection shares one
 * guarded sendPacket, so a connection costs its small state object and no closures.
 */
export function outboundGuard(limits: OutboundLimits, onOverflow: (conn: EngineConnection, backlog: OutboundBacklog) => void): (conn: EngineConnection) => void {
  const guard: Guard = { limits, onOverflow };
  return (conn: Guarded) => {
    if (conn[GUARD]) return;
    conn[GUARD] = { queuedBytes: 0, tripped: false, send: conn.sendPacket, guard };
    conn.sendPacket = guardedSendPacket;
  };
}

/**
 * Replaces the connection's own sendPacket rather than listening to `packetCreate`: it runs for
 * every packet of every connection, and a direct call costs less than an event with a listener.
 * The common case (nothing waiting, transport writable: the packet goes out at once) returns
 * first. engine.io 6's sendPacket(type, data, options, callback) is passed on as is: no rest
 * array per packet.
 */
function guardedSendPacket(this: Guarded, type: string, data?: unknown, options?: unknown, callback?: unknown): unknown {
  const state = this[GUARD] as GuardState;
  if (this.writeBuffer.length === 0) {
    state.queuedBytes = 0;
    if (this.transport.writable) return state.send.call(this, type, data, options, callback);
  }
  if (!state.tripped) {
    state.queuedBytes += sizeOf(data);
    const messages = this.writeBuffer.length + 1;
    const { limits, onOverflow } = state.guard;
    if (messages > limits.maxMessages || state.queuedBytes + inFlightBytes(this) > limits.maxBytes) {
      state.tripped = true;
      const backlog = { messages, bytes: state.queuedBytes + inFlightBytes(this) };
      // After this packet is queued, so that the drop includes it.
      queueMicrotask(() => onOverflow(this, backlog));
    }
  }
  return state.send.call(this, type, data, options, callback);
}

/**
 * Closes a slow consumer's connection. The packets still waiting are dropped (class B/C ones are
 * replayed from the log on resume) and `notify` queues the notice in their place, so the client
 * reads it right after the write already in progress. Then the connection closes gracefully:
 * engine.io accepts no new packet from now on, and a client that is merely slow still reads the
 * notice; one that does not drain within {@link SLOW_CONSUMER_GRACE_MS} is cut hard.
 */
export function closeSlowConsumer(conn: EngineConnection, notify: () => void = () => undefined, graceMs = SLOW_CONSUMER_GRACE_MS): void {
  if (conn.readyState !== "open") return;
  conn.writeBuffer.splice(0);
  if (conn.packetsFn) conn.packetsFn.splice(0);
  const state = (conn as Guarded)[GUARD];
  if (state) state.queuedBytes = 0;
  notify();
  conn.close();
  if ((conn.readyState as string) === "closed") return;
  const timer = setTimeout(() => {
    if (conn.readyState === "closed") return;
    const ws = conn.transport.socket;
    conn.close(true);
    // The ws library would wait 30 s for the peer's close frame while holding its write buffer.
    ws?.terminate?.();
  }, graceMs);
  timer.unref();
  conn.once("close", () => clearTimeout(timer));
}

/**
 * Resolves once at most `maxMessages` packets wait on the socket's connection, or after
 * `timeoutMs` (then false), or when the connection closes (false). Used to pace a replay so a
 * reader that keeps up is never mistaken for a slow consumer.
 */
export async function whenBacklogBelow(socket: Socket, maxMessages: number, timeoutMs: number): Promise<boolean> {
  const conn = socket.conn as unknown as EngineConnection;
  const deadline = Date.now() + timeoutMs;
  while (outboundBacklog(conn).messages > maxMessages) {
    if (conn.readyState !== "open" || !socket.connected) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise<void>(resolve => {
      const done = () => {
        clearTimeout(timer);
        conn.off("drain", done);
        conn.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(left, 50));
      conn.on("drain", done);
      conn.on("close", done);
    });
  }
  return true;
}
