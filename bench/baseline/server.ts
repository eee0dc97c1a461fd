/**
 * Baseline: a minimal plain Socket.IO server doing the PF-2 job the bench drives, with nothing
 * else (no validation beyond what routing needs, no rate limits, no presence, no cluster).
 * HS256 JWT via jsonwebtoken with a KeyObject, tenant-scoped rooms, the same event names.
 * Durable publish and catch-up: `POST /api/events/publish` (a `service` token) appends to an
 * in-memory log per tenant (idempotent by eventId, like the product's embedded default) and pushes
 * `event` to the tenant's sockets; a socket connecting with `auth.lastEventId` gets every later
 * event, in order, right after `connected`.
 *   PORT, HOST, JWT_SECRET
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createSecretKey, randomUUID } from "node:crypto";
import jwt, { type JwtPayload } from "jsonwebtoken";
import { Server } from "socket.io";

const key = createSecretKey(Buffer.from(process.env.JWT_SECRET ?? "", "utf8"));
const verify = (token: unknown) => {
  const claims = jwt.verify(String(token), key, { algorithms: ["HS256"] }) as JwtPayload;
  if (typeof claims.tenantId !== "string" || typeof claims.userId !== "string") throw new Error("claims");
  return claims as JwtPayload & { tenantId: string; userId: string; role?: string };
};

interface LoggedEvent {
  eventId: string;
  position: string;
  [field: string]: unknown;
}
const logs = new Map<string, { events: LoggedEvent[]; byId: Map<string, string> }>();
const logOf = (tenantId: string) => {
  let log = logs.get(tenantId);
  if (!log) logs.set(tenantId, (log = { events: [], byId: new Map() }));
  return log;
};

function answer(res: ServerResponse, status: number, body: unknown) {
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}

function publish(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    try {
      const claims = verify(String(req.headers.authorization).replace(/^Bearer /, ""));
      if (claims.role !== "service") return answer(res, 403, { error: "service role required", code: "AUTHZ_FAILED" });
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      if (typeof body.eventType !== "string") return answer(res, 400, { error: "eventType required", code: "INVALID_REQUEST" });
      const log = logOf(claims.tenantId);
      const eventId = typeof body.eventId === "string" ? body.eventId : randomUUID();
      const seen = log.byId.get(eventId);
      if (seen) return answer(res, 200, { eventId, position: seen, duplicate: true });
      const event: LoggedEvent = {
        eventId,
        eventType: body.eventType,
        tenantId: claims.tenantId,
        timestamp: new Date().toISOString(),
        payload: body.payload ?? {},
        metadata: body.metadata ?? {},
        schemaVersion: "1.0",
        position: `b.${log.events.length}`
      };
      log.events.push(event);
      log.byId.set(eventId, event.position);
      io.to(`t:${claims.tenantId}`).emit("event", event);
      answer(res, 200, { eventId, position: event.position, duplicate: false });
    } catch {
      answer(res, 401, { error: "Invalid token", code: "AUTH_FAILED" });
    }
  });
}

const http = createServer((req, res) => {
  if (req.method === "POST" && req.url === "/api/events/publish") return publish(req, res);
  if (!req.url?.startsWith("/health")) return answer(res, 404, {});
  answer(res, 200, { status: "healthy", activeConnections: io.of("/").sockets.size });
});
const io = new Server(http, { pingInterval: 30_000, pingTimeout: 60_000 });

io.use((socket, next) => {
  try {
    const claims = verify(socket.handshake.auth?.token);
    socket.data = { tenantId: claims.tenantId, userId: claims.userId };
    next();
  } catch {
    next(Object.assign(new Error("Invalid token"), { data: { error: "Invalid token", code: "AUTH_FAILED" } }));
  }
});

io.on("connection", socket => {
  const { tenantId, userId } = socket.data as { tenantId: string; userId: string };
  const room = (id: unknown) => `t:${tenantId}:room:${String(id)}`;
  socket.join([`t:${tenantId}`, `t:${tenantId}:user:${userId}`]);
  const resumeFrom = socket.handshake.auth?.lastEventId;
  if (typeof resumeFrom === "string") {
    const events = logOf(tenantId).events;
    const from = Number(resumeFrom.slice(2)) + 1;
    socket.emit("connected", { connectionId: socket.id, serverTime: new Date().toISOString(), recovered: true });
    for (let i = from; i < events.length; i++) socket.emit("event", events[i]);
  } else {
    socket.emit("connected", { connectionId: socket.id, serverTime: new Date().toISOString() });
  }

  socket.on("join_room", (data: { roomId?: unknown }) => {
    if (typeof data?.roomId !== "string") {
      socket.emit("error", { error: "roomId required", code: "INVALID_REQUEST" });
    } else {
      socket.join(room(data.roomId));
      socket.emit("room_joined", { roomId: data.roomId });
    }
  });

  socket.on("message", (data: { type?: unknown; interactionClass?: unknown; roomId?: unknown; recipientId?: unknown; payload?: unknown }) => {
    const to = data?.roomId !== undefined ? room(data.roomId) : `t:${tenantId}:user:${String(data?.recipientId)}`;
    if (data?.roomId !== undefined && !socket.rooms.has(to)) {
      socket.emit("error", { error: "Join the room first", code: "AUTHZ_FAILED" });
      return;
    }
    const messageId = randomUUID();
    const target = data.roomId !== undefined ? { roomId: data.roomId } : { recipientId: data.recipientId };
    // The fields seed 000 requires of a received message (interactionClass included).
    const interactionClass = data.interactionClass ?? "CLASS_C";
    io.to(to).emit("message", { messageId, type: data.type, interactionClass, tenantId, senderId: userId, ...target, payload: data.payload, timestamp: new Date().toISOString() });
    socket.emit("message_ack", { messageId });
  });
});

http.listen(Number(process.env.PORT ?? 3100), process.env.HOST ?? "127.0.0.1");
process.on("SIGTERM", () => io.close(() => process.exit(0)));
