/**
 * A load-generator process (forked by the bench orchestrator, driven over IPC). It holds
 * socket.io-client connections (websocket transport, each bound to one of the 127.0.0.x source
 * addresses) and plays clients: connect, join a room, publish, send direct messages, count and
 * time deliveries. Latencies use the shared clock of ../lib/clock (publish stamp → receipt).
 */
import { Agent, request } from "node:http";
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import jwt from "jsonwebtoken";
import { now, sleep } from "../lib/clock";
import { Histogram } from "../lib/histogram";
import type {
  CatchupCommand,
  CatchupResult,
  CommandMessage,
  ConnectCommand,
  ConnectResult,
  CreditMessage,
  DirectCommand,
  ReachCommand,
  ReachResult,
  DirectResult,
  HttpPublishCommand,
  HttpPublishResult,
  ProgressMessage,
  PublishCommand,
  PublishResult,
  ReplyMessage,
  SnapshotResult,
  StatsResult
} from "../lib/protocol";

interface Client {
  socket: Socket;
  index: number;
  received: number;
  /** 1 + the highest publisher sequence number seen (volatile classes may drop some in between). */
  seen: number;
  /** Got the reachability check's direct message. */
  reached?: boolean;
}

interface Group {
  clients: Client[];
  received: number;
  latency: Histogram;
  recording: boolean;
  errors: Record<string, number>;
  disconnects: number;
  closing: boolean;
  progressTimer?: NodeJS.Timeout;
}

const groups = new Map<string, Group>();
let credit = 0;
let wakePublisher: (() => void) | undefined;

function group(name: string): Group {
  let g = groups.get(name);
  if (!g) {
    g = { clients: [], received: 0, latency: new Histogram(), recording: false, errors: {}, disconnects: 0, closing: false };
    groups.set(name, g);
  }
  return g;
}

const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);

function open(c: ConnectCommand, g: Group, index: number, token: string, latency: Histogram): Promise<Client> {
  return new Promise((resolve, reject) => {
    const started = now();
    const options = {
      transports: ["websocket"],
      auth: { token },
      reconnection: false,
      forceNew: true,
      timeout: c.timeoutMs,
      localAddress: c.localAddresses[index % c.localAddresses.length]
    } as Partial<ManagerOptions & SocketOptions>;
    const socket = io(c.urls[(index + (c.urlOffset ?? 0)) % c.urls.length], options);
    const client: Client = { socket, index, received: 0, seen: 0 };
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.close();
      reject(new Error(reason));
    };
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(client);
    };
    const timer = setTimeout(() => fail("timeout"), c.timeoutMs);
    socket.once("connect_error", (err: Error & { data?: { code?: string } }) => fail(`connect_error ${err.data?.code ?? err.message}`));
    socket.on("error", (body: { code?: string }) => {
      bump(g.errors, String(body?.code ?? "unknown"));
      if (!settled) fail(`error ${String(body?.code)}`);
    });
    socket.on("disconnect", () => {
      if (!g.closing) g.disconnects += 1;
    });
    socket.once("connected", () => {
      latency.record((now() - started) * 1000);
      if (c.room === undefined) return done();
      socket.once("room_joined", done);
      socket.emit("join_room", { roomId: c.room });
    });
  });
}

async function connect(c: ConnectCommand): Promise<ConnectResult> {
  const g = group(c.group);
  g.closing = false;
  // Tokens are signed before the clock starts: connection set-up measures the server.
  const tokens = Array.from({ length: c.count }, (_, k) =>
    jwt.sign({ tenantId: c.tenantId, userId: `${c.userPrefix}${c.from + k}` }, c.secret, { algorithm: "HS256", expiresIn: "2h" })
  );
  const latency = new Histogram();
  const errors: Record<string, number> = {};
  let connected = 0;
  let failed = 0;
  let next = 0;
  const firstStart = now();
  let lastDone = firstStart;
  const lane = async () => {
    while (next < c.count) {
      const k = next++;
      try {
        g.clients.push(await open(c, g, c.from + k, tokens[k], latency));
        connected += 1;
        lastDone = now();
      } catch (err) {
        failed += 1;
        bump(errors, (err as Error).message.slice(0, 80));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.count) }, lane));
  return { connected, failed, errors, firstStart, lastDone, latency: latency.toData() };
}

function arm(name: string, progress: boolean, eventName: "message" | "event" = "message"): number {
  const g = group(name);
  g.received = 0;
  for (const client of g.clients) {
    client.received = 0;
    client.seen = 0;
    client.socket.off(eventName);
    client.socket.on(eventName, (m: { payload?: { t?: unknown; s?: unknown } }) => {
      client.received += 1;
      g.received += 1;
      const s = m?.payload?.s;
      if (typeof s === "number" && s >= client.seen) client.seen = s + 1;
      if (g.recording) {
        const t = m?.payload?.t;
        if (typeof t === "number") g.latency.record((now() - t) * 1000);
      }
    });
  }
  if (g.progressTimer) clearInterval(g.progressTimer);
  if (progress) {
    let last = -1;
    g.progressTimer = setInterval(() => {
      let min = Infinity;
      for (const client of g.clients) if (client.seen < min) min = client.seen;
      if (min !== last && min !== Infinity) {
        last = min;
        const message: ProgressMessage = { event: "progress", group: name, min };
        process.send?.(message);
      }
    }, 5);
  }
  return g.clients.length;
}

function minReceived(g: Group): number {
  let min = Infinity;
  for (const client of g.clients) if (client.received < min) min = client.received;
  return min === Infinity ? 0 : min;
}

async function publish(c: PublishCommand): Promise<PublishResult> {
  const g = group(c.group);
  const client = g.clients[0];
  if (!client) throw new Error(`group ${c.group} has no publisher`);
  const errors: Record<string, number> = {};
  const onError = (body: { code?: string }) => bump(errors, String(body?.code ?? "unknown"));
  client.socket.on("error", onError);
  credit = c.initialCredit;
  let seq = 0;
  const extra = c.interactionClass ? { interactionClass: c.interactionClass } : {};
  const send = () => client.socket.emit("message", { type: "bench.fanout", roomId: c.roomId, ...extra, payload: { s: seq++, t: now() } });
  const startedAt = now();
  const end = startedAt + c.durationMs;
  if (c.mode === "credit") {
    while (now() < end) {
      while (seq < credit && now() < end) send();
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, 5);
        wakePublisher = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakePublisher = undefined;
    }
  } else {
    const interval = 1000 / c.rate;
    for (;;) {
      const t = now();
      if (t >= end) break;
      while (startedAt + seq * interval <= t) send();
      await sleep(Math.max(0, startedAt + seq * interval - now()));
    }
  }
  client.socket.off("error", onError);
  return { sent: seq, startedAt, endedAt: now(), errors };
}

async function direct(c: DirectCommand): Promise<DirectResult> {
  const g = group(c.group);
  const rtt = new Histogram();
  const errors: Record<string, number> = {};
  const startedAt = now();
  const measureFrom = startedAt + c.warmupMs;
  const end = startedAt + c.durationMs;
  let acks = 0;
  let sent = 0;
  let inFlight = 0;
  const cleanups: Array<() => void> = [];
  const extra = c.interactionClass ? { interactionClass: c.interactionClass } : {};
  let allDone: () => void = () => undefined;
  const finished = new Promise<void>(resolve => (allDone = resolve));

  const senders = g.clients.map(client => {
    const pending: number[] = [];
    const recipientId = `${c.recipientPrefix}${client.index}`;
    const send = () => {
      const t = now();
      pending.push(t);
      inFlight += 1;
      sent += 1;
      client.socket.emit("message", { type: "bench.direct", recipientId, ...extra, payload: { s: sent, t } });
    };
    const settle = (ok: boolean) => {
      const t0 = pending.shift();
      if (t0 === undefined) return;
      inFlight -= 1;
      const t = now();
      if (ok && t >= measureFrom && t <= end) {
        acks += 1;
        rtt.record((t - t0) * 1000);
      }
      if (c.mode === "closed" && t < end) send();
      else if (t >= end && inFlight === 0) allDone();
    };
    const onAck = () => settle(true);
    const onError = (body: { code?: string }) => {
      bump(errors, String(body?.code ?? "unknown"));
      settle(false);
    };
    client.socket.on("message_ack", onAck);
    client.socket.on("error", onError);
    cleanups.push(() => {
      client.socket.off("message_ack", onAck);
      client.socket.off("error", onError);
    });
    return send;
  });

  if (c.mode === "closed") {
    for (const send of senders) for (let w = 0; w < c.window; w++) send();
    await sleep(Math.max(0, end - now()));
  } else if (senders.length > 0) {
    const interval = 1000 / c.rate;
    let n = 0;
    for (;;) {
      const t = now();
      if (t >= end) break;
      while (startedAt + n * interval <= t) senders[n++ % senders.length]();
      await sleep(Math.max(0, startedAt + n * interval - now()));
    }
  }
  if (inFlight > 0) await Promise.race([finished, sleep(10_000)]);
  for (const cleanup of cleanups) cleanup();
  return { acks, windowMs: c.durationMs - c.warmupMs, sent, rtt: rtt.toData(), errors };
}

const DURABLE_TYPE = "bench.durable";

async function httpPublish(c: HttpPublishCommand): Promise<HttpPublishResult> {
  const token = jwt.sign({ tenantId: c.tenantId, userId: "bench-publisher", role: "service" }, c.secret, { algorithm: "HS256", expiresIn: "2h" });
  const { hostname, port } = new URL(c.url);
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, c.concurrency) });
  const rtt = new Histogram();
  const errors: Record<string, number> = {};
  const startedAt = now();
  const measureFrom = startedAt + c.warmupMs;
  const end = startedAt + c.durationMs;
  let acks = 0;
  let acked = 0;
  let sent = 0;
  let lastPosition: string | undefined;
  const limitReached = () => c.maxPublishes > 0 && acked >= c.maxPublishes;
  const publishOne = (): Promise<void> =>
    new Promise(resolve => {
      const t0 = now();
      const body = JSON.stringify({ eventType: DURABLE_TYPE, payload: { s: sent++, t: t0 } });
      const req = request(
        {
          agent,
          host: hostname,
          port: Number(port),
          method: "POST",
          path: "/api/events/publish",
          headers: { authorization: `Bearer ${token}`, "x-tenant-id": c.tenantId, "content-type": "application/json", "content-length": Buffer.byteLength(body) }
        },
        res => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const t = now();
            if (res.statusCode === 200) {
              acked += 1;
              const answer = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { position?: string };
              if (typeof answer.position === "string") lastPosition = answer.position;
              if (t >= measureFrom && t <= end) {
                acks += 1;
                rtt.record((t - t0) * 1000);
              }
            } else {
              bump(errors, `http ${res.statusCode}`);
            }
            resolve();
          });
        }
      );
      req.on("error", err => {
        bump(errors, err.message.slice(0, 60));
        resolve();
      });
      req.end(body);
    });
  if (c.mode === "closed") {
    const lane = async () => {
      while (now() < end && !limitReached()) await publishOne();
    };
    await Promise.all(Array.from({ length: c.concurrency }, lane));
  } else {
    const interval = 1000 / c.rate;
    const inFlight = new Set<Promise<void>>();
    let n = 0;
    for (;;) {
      const t = now();
      if (t >= end) break;
      while (startedAt + n * interval <= t) {
        n += 1;
        const p = publishOne().then(() => void inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(Math.max(0, startedAt + n * interval - now()));
    }
    await Promise.all(inFlight);
  }
  agent.destroy();
  return { acks, windowMs: c.durationMs - c.warmupMs, acked, sent, rtt: rtt.toData(), errors, ...(lastPosition ? { lastPosition } : {}) };
}

/** The log offset of a position (`<epoch>.<offset>` in the product, `b.<n>` in the baseline). */
const offsetOf = (position: unknown) => (typeof position === "string" ? Number(position.slice(position.lastIndexOf(".") + 1)) : Number.NaN);

function catchup(c: CatchupCommand): Promise<CatchupResult> {
  const token = jwt.sign({ tenantId: c.tenantId, userId: c.userId }, c.secret, { algorithm: "HS256", expiresIn: "2h" });
  return new Promise((resolve, reject) => {
    const started = now();
    const socket = io(c.url, {
      transports: ["websocket"],
      auth: { token, lastEventId: c.lastEventId },
      reconnection: false,
      forceNew: true,
      timeout: c.timeoutMs,
      localAddress: c.localAddress
    } as Partial<ManagerOptions & SocketOptions>);
    let received = 0;
    let outOfOrder = 0;
    let last = offsetOf(c.lastEventId);
    let connectedMs = Number.NaN;
    let recovered = false;
    const finish = (error?: string) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.close();
      if (error) reject(new Error(`catch-up: ${error} after ${received}/${c.expect} events`));
      else resolve({ received, recovered, connectedMs, doneMs: now() - started, outOfOrder });
    };
    const timer = setTimeout(() => finish("timeout"), c.timeoutMs);
    socket.once("connect_error", (err: Error & { data?: { code?: string } }) => finish(`connect_error ${err.data?.code ?? err.message}`));
    socket.on("error", (body: { code?: string }) => finish(`error ${String(body?.code)}`));
    socket.once("connected", (body: { recovered?: boolean }) => {
      connectedMs = now() - started;
      recovered = body?.recovered === true;
      if (!recovered) finish("not recovered");
    });
    socket.on("event", (event: { eventType?: unknown; position?: unknown }) => {
      if (event?.eventType !== DURABLE_TYPE) return;
      const offset = offsetOf(event.position);
      if (!(offset > last)) outOfOrder += 1;
      last = offset;
      if (++received >= c.expect) finish();
    });
  });
}

const REACH_TYPE = "bench.reach";

async function reach(c: ReachCommand): Promise<ReachResult> {
  const g = group(c.group);
  const errors: Record<string, number> = {};
  if (c.phase === "arm") {
    for (const client of g.clients) {
      client.reached = false;
      client.socket.on("message", (m: { type?: unknown }) => {
        if (m?.type === REACH_TYPE) client.reached = true;
      });
    }
  }
  let sent = 0;
  let acked = 0;
  if (c.phase === "send") {
    const total = c.total ?? 1;
    // A few in flight per worker, each retried with its messageId (idempotent): this checks that
    // every connection can be reached, not how large a burst the cluster absorbs.
    const sendOne = (client: Client, attempt: number): Promise<boolean> =>
      new Promise(resolve => {
        const timer = setTimeout(() => settle(false, "timeout"), c.timeoutMs ?? 30_000);
        const onAck = () => settle(true);
        const onError = (body: { code?: string }) => settle(false, String(body?.code ?? "unknown"));
        function settle(ok: boolean, error?: string) {
          clearTimeout(timer);
          client.socket.off("message_ack", onAck);
          client.socket.off("error", onError);
          if (error) bump(errors, `${error} (attempt ${attempt})`);
          resolve(ok);
        }
        client.socket.once("message_ack", onAck);
        client.socket.once("error", onError);
        const recipientId = `${c.recipientPrefix ?? ""}${(client.index + (c.offset ?? 1)) % total}`;
        client.socket.emit("message", { messageId: `reach-${client.index}`, type: REACH_TYPE, recipientId, payload: { from: client.index } });
      });
    let next = 0;
    const lane = async () => {
      while (next < g.clients.length) {
        const client = g.clients[next++];
        sent += 1;
        for (let attempt = 1; attempt <= 3; attempt++) {
          if (await sendOne(client, attempt)) {
            acked += 1;
            break;
          }
          await sleep(200 * attempt);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(c.concurrency ?? 20, g.clients.length) }, lane));
  }
  return { clients: g.clients.length, sent, acked, reached: g.clients.filter(client => client.reached).length, errors };
}

async function close(name: string): Promise<number> {
  const g = group(name);
  g.closing = true;
  if (g.progressTimer) clearInterval(g.progressTimer);
  const n = g.clients.length;
  for (const client of g.clients) {
    client.socket.removeAllListeners();
    client.socket.close();
  }
  groups.delete(name);
  return n;
}

async function handle(msg: CommandMessage): Promise<unknown> {
  switch (msg.cmd) {
    case "connect":
      return connect(msg);
    case "arm":
      return arm(msg.group, msg.progress, msg.eventName);
    case "record": {
      const g = group(msg.group);
      if (msg.on) g.latency.reset();
      g.recording = msg.on;
      return true;
    }
    case "snapshot": {
      const result: SnapshotResult = { at: now(), received: group(msg.group).received };
      return result;
    }
    case "stats": {
      const g = group(msg.group);
      const result: StatsResult = { received: g.received, minReceived: minReceived(g), latency: g.latency.toData(), errors: g.errors, disconnects: g.disconnects };
      return result;
    }
    case "publish":
      return publish(msg);
    case "direct":
      return direct(msg);
    case "reach":
      return reach(msg);
    case "http-publish":
      return httpPublish(msg);
    case "catchup":
      return catchup(msg);
    case "close":
      return close(msg.group);
  }
}

process.on("message", (msg: CommandMessage | CreditMessage) => {
  if (msg.cmd === "credit") {
    if (msg.upTo > credit) {
      credit = msg.upTo;
      wakePublisher?.();
    }
    return;
  }
  handle(msg).then(
    result => process.send?.({ id: msg.id, ok: true, result } satisfies ReplyMessage),
    (err: Error) => process.send?.({ id: msg.id, ok: false, error: err.stack ?? err.message } satisfies ReplyMessage)
  );
});

// The orchestrator owns this process: when it goes, so does the load.
process.on("disconnect", () => process.exit(0));
