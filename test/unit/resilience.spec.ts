import { EventEmitter } from "node:events";
import { ServiceBroker } from "moleculer";
import { closeSlowConsumer, outboundBacklog, outboundGuard, type EngineConnection } from "../../protocols/outbound-guard";
import { InFlight, isLogged } from "../../protocols/shutdown";
import { ExitDeadlineMiddleware } from "../../lib/exit-deadline";
import { flushTransporter, flushTransporterSoon, transporterStatus } from "../../lib/transporter-status";

/** An engine.io connection reduced to what the guard reads, driven like engine.io drives it. */
class FakeConnection extends EventEmitter implements EngineConnection {
  readyState = "open";
  writeBuffer: Array<{ data?: unknown }> = [];
  packetsFn: unknown[] = [];
  transport = Object.assign(new EventEmitter(), { writable: true, socket: { bufferedAmount: 0, terminate: jest.fn() } });
  closes: Array<boolean | undefined> = [];

  /** engine.io's `write`: through `sendPacket`, which the guard wraps. */
  send(data: string) {
    this.sendPacket("message", data);
  }

  /** engine.io's sendPacket: packetCreate, queue, flush when writable. */
  sendPacket(_type: string, data?: unknown) {
    if (this.readyState !== "open") return;
    this.emit("packetCreate", { data });
    this.writeBuffer.push({ data });
    if (this.transport.writable) this.flush();
  }

  flush() {
    this.emit("flush", this.writeBuffer);
    this.writeBuffer = [];
  }

  close(discard?: boolean) {
    this.closes.push(discard);
    if (discard || this.writeBuffer.length === 0) {
      this.readyState = "closed";
      this.emit("close");
    } else this.readyState = "closing";
  }
}

const tick = () => new Promise(resolve => setImmediate(resolve));

describe("outbound guard (slow consumers)", () => {
  it("ignores traffic to a client that keeps up, however much", async () => {
    const conn = new FakeConnection();
    const overflow = jest.fn();
    outboundGuard({ maxMessages: 3, maxBytes: 10 }, (_conn, backlog) => overflow(backlog))(conn);
    for (let i = 0; i < 100; i++) conn.send("0123456789abcdef");
    await tick();
    expect(overflow).not.toHaveBeenCalled();
  });

  it("trips once past the message limit while the transport is busy, and counts what waits", async () => {
    const conn = new FakeConnection();
    const overflow = jest.fn();
    outboundGuard({ maxMessages: 3, maxBytes: 1_000_000 }, (_conn, backlog) => overflow(backlog))(conn);
    conn.transport.writable = false;
    conn.send("a");
    conn.send("b");
    conn.send("c");
    await tick();
    expect(overflow).not.toHaveBeenCalled();
    expect(outboundBacklog(conn)).toEqual({ messages: 3, bytes: 3 });
    conn.send("d");
    conn.send("e");
    await tick();
    expect(overflow).toHaveBeenCalledTimes(1);
    expect(overflow.mock.calls[0][0]).toEqual({ messages: 4, bytes: 4 });
  });

  it("counts the bytes of queued packets plus the write in progress against the byte limit", async () => {
    const conn = new FakeConnection();
    const overflow = jest.fn();
    outboundGuard({ maxMessages: 1000, maxBytes: 100 }, (_conn, backlog) => overflow(backlog))(conn);
    conn.transport.writable = false;
    conn.transport.socket.bufferedAmount = 60;
    conn.send("x".repeat(30));
    await tick();
    expect(overflow).not.toHaveBeenCalled();
    conn.send("x".repeat(30));
    await tick();
    expect(overflow).toHaveBeenCalledWith({ messages: 2, bytes: 120 });
  });

  it("forgets the queued bytes once engine.io flushes them to the transport", async () => {
    const conn = new FakeConnection();
    outboundGuard({ maxMessages: 1000, maxBytes: 1000 }, jest.fn())(conn);
    conn.transport.writable = false;
    conn.send("x".repeat(50));
    expect(outboundBacklog(conn).bytes).toBe(50);
    conn.flush();
    expect(outboundBacklog(conn)).toEqual({ messages: 0, bytes: 0 });
  });

  it("closing a slow consumer drops what waits, queues the notice in its place, then cuts it hard after the grace", async () => {
    jest.useFakeTimers();
    try {
      const conn = new FakeConnection();
      conn.transport.writable = false;
      conn.send("old-1");
      conn.send("old-2");
      closeSlowConsumer(conn, () => conn.send("notice"), 5000);
      expect(conn.writeBuffer.map(p => p.data)).toEqual(["notice"]);
      expect(conn.readyState).toBe("closing");
      conn.send("after close");
      expect(conn.writeBuffer.map(p => p.data)).toEqual(["notice"]);
      jest.advanceTimersByTime(5000);
      expect(conn.closes).toEqual([undefined, true]);
      expect(conn.transport.socket.terminate).toHaveBeenCalled();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe("InFlight", () => {
  it("resolves idle at once when nothing runs, and once the last tracked work settles", async () => {
    const inFlight = new InFlight();
    expect(await inFlight.idle(10)).toBe(true);
    let finish: () => void = () => undefined;
    let fail: (err: Error) => void = () => undefined;
    inFlight.track(new Promise<void>(resolve => (finish = resolve)));
    inFlight.track(new Promise<void>((_, reject) => (fail = reject))).catch(() => undefined);
    expect(inFlight.size).toBe(2);
    const idle = inFlight.idle(5000);
    finish();
    fail(new Error("failed work counts as done"));
    expect(await idle).toBe(true);
    expect(inFlight.size).toBe(0);
  });

  it("gives up waiting after the timeout", async () => {
    const inFlight = new InFlight();
    inFlight.track(new Promise(() => undefined));
    expect(await inFlight.idle(20)).toBe(false);
  });
});

describe("shutdown helpers", () => {
  it("tells logged deliveries (they carry a position) from the rest", () => {
    expect(isLogged({ payload: { messageId: "m", position: "e.1" } })).toBe(true);
    expect(isLogged({ payload: { messageId: "m" } })).toBe(false);
    expect(isLogged({ payload: null })).toBe(false);
    expect(isLogged({ payload: "text" })).toBe(false);
  });

  it("the exit deadline exits with 1 only when the stop takes longer than SHUTDOWN_TIMEOUT_MS", async () => {
    const quick = jest.fn();
    const broker = new ServiceBroker({ logger: false, middlewares: [ExitDeadlineMiddleware(50, quick)] });
    await broker.start();
    await broker.stop();
    await new Promise(resolve => setTimeout(resolve, 100));
    expect(quick).not.toHaveBeenCalled();

    const exit = jest.fn();
    const stuck = new ServiceBroker({ logger: false, middlewares: [ExitDeadlineMiddleware(50, exit)] });
    stuck.createService({ name: "slow", stopped: () => new Promise(resolve => setTimeout(resolve, 300)) });
    await stuck.start();
    const stopping = stuck.stop();
    await new Promise(resolve => setTimeout(resolve, 200));
    expect(exit).toHaveBeenCalledWith(1);
    await stopping;
  });

  it("without a transporter, the status is undefined and a flush resolves at once", async () => {
    const broker = new ServiceBroker({ logger: false });
    await broker.start();
    expect(transporterStatus(broker)).toBeUndefined();
    await expect(flushTransporter(broker, 10)).resolves.toBeUndefined();
    await broker.stop();
  });
});

describe("flushTransporterSoon", () => {
  it("shares one flush among the callers of one event-loop turn, and flushes again for the next turn", async () => {
    let flushes = 0;
    const client = { flush: async () => void (flushes += 1), status: () => ({ [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => undefined) }) }), isClosed: () => false, closed: () => new Promise(() => undefined) };
    const broker = { transit: { tx: { client }, connected: true }, nodeID: "n1" } as unknown as ServiceBroker;
    const turn = [flushTransporterSoon(broker, 1000), flushTransporterSoon(broker, 1000), flushTransporterSoon(broker, 1000)];
    expect(turn[1]).toBe(turn[0]);
    expect(turn[2]).toBe(turn[0]);
    await Promise.all(turn);
    expect(flushes).toBe(1);
    await flushTransporterSoon(broker, 1000);
    expect(flushes).toBe(2);
  });
});
