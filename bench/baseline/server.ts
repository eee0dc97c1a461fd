/**
 * Baseline: a minimal plain Socket.IO server doing the PF-2 job the bench drives, with nothing
 * else (no validation beyond what routing needs, no rate limits, no presence, no cluster).
 * HS256 JWT via jsonwebtoken with a KeyObject, tenant-scoped rooms, the same event names.
 *   PORT, HOST, JWT_SECRET
 */
import { createServer } from "node:http";
import { createSecretKey, randomUUID } from "node:crypto";
import jwt, { type JwtPayload } from "jsonwebtoken";
import { Server } from "socket.io";

const key = createSecretKey(Buffer.from(process.env.JWT_SECRET ?? "", "utf8"));
const http = createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  if (!req.url?.startsWith("/health")) res.statusCode = 404;
  res.end(res.statusCode === 404 ? "{}" : JSON.stringify({ status: "healthy", activeConnections: io.of("/").sockets.size }));
});
const io = new Server(http, { pingInterval: 30_000, pingTimeout: 60_000 });

io.use((socket, next) => {
  try {
    const claims = jwt.verify(String(socket.handshake.auth?.token), key, { algorithms: ["HS256"] }) as JwtPayload;
    if (typeof claims.tenantId !== "string" || typeof claims.userId !== "string") throw new Error("claims");
    socket.data = { tenantId: claims.tenantId, userId: claims.userId };
    next();
  } catch {
    next(Object.assign(new Error("Invalid token"), { data: { error: "Invalid token", code: "AUTH_FAILED" } }));
  }
});

io.on("connection", socket => {
  const { tenantId, userId } = socket.data as { tenantId: string; userId: string };
  const room = (id: unknown) => `t:${tenantId}:room:${String(id)}`;
  socket.join(`t:${tenantId}:user:${userId}`);
  socket.emit("connected", { connectionId: socket.id, serverTime: new Date().toISOString() });

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
