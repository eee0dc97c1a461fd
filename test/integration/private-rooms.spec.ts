import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, recorder, request, settle } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";
import { REDIS_URL, dropPrefix, uniquePrefix } from "../helpers/redis";

/**
 * Private rooms end to end (seed 001 "role-based access control for rooms", seed 003 "the server
 * validates membership before honoring the request"): settings over REST, `join_room` over
 * Socket.IO with an unchanged socket.io-client. Runs on memory stores and on Redis stores.
 */
const backends = [
  { name: "memory stores", redis: false },
  { name: "Redis stores", redis: true }
];

for (const backend of backends) {
  describe(`private rooms (${backend.name})`, () => {
    let node: TestNode;
    const prefix = uniquePrefix("private-rooms");
    const sockets: Socket[] = [];
    let tenantSeq = 0;
    /** A tenant of its own per test, so settings never leak between tests. */
    const freshTenant = () => `pr-${process.pid}-${++tenantSeq}`;

    beforeAll(async () => {
      node = await startNode({ config: backend.redis ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {} });
    });
    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });
    afterAll(async () => {
      await node.stop();
      if (backend.redis) await dropPrefix(prefix);
    });

    async function client(tenantId: string, userId: string, role = "user", auth?: Record<string, unknown>) {
      const { socket, connected } = await connect(node.url, tokenFor(tenantId, userId, { role }), auth ? { auth } : {});
      sockets.push(socket);
      return { socket, connected };
    }

    async function rest(method: string, path: string, tenantId: string, userId: string, role: string, body?: unknown) {
      const res = await fetch(`${node.url}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${tokenFor(tenantId, userId, { role })}`,
          "X-Tenant-ID": tenantId,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {})
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {})
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    }

    it("refuses join_room on a private room for a non-member with AUTHZ_FAILED; members and allowed roles join", async () => {
      const t = freshTenant();
      const created = await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "vip", members: ["alice"], allowedRoles: ["moderator"] });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ roomId: "vip", private: true, members: ["alice"], allowedRoles: ["moderator"], createdBy: "boss" });

      const mallory = await client(t, "mallory");
      const errors = recorder(mallory.socket, "error");
      const refused = await request(mallory.socket, "join_room", { roomId: "vip" });
      expect(refused).toMatchObject({ code: "AUTHZ_FAILED", details: { roomId: "vip", reason: "private" } });
      expect(typeof refused.error).toBe("string");
      await settle(50);
      expect(errors).toEqual([refused]);

      const alice = await client(t, "alice");
      expect(await request(alice.socket, "join_room", { roomId: "vip" })).toEqual({ roomId: "vip" });
      const mod = await client(t, "mod", "moderator");
      expect(await request(mod.socket, "join_room", { roomId: "vip" })).toEqual({ roomId: "vip" });

      // Refused means refused everywhere: mallory cannot send to the room nor see who is in it.
      const sent = await request(mallory.socket, "message", { type: "chat", roomId: "vip", payload: "hi" });
      expect(sent.code).toBe("AUTHZ_FAILED");
      const listing = await rest("GET", "/api/rooms/vip/members", t, "mallory", "user");
      expect(listing.status).toBe(403);
      const members = await rest("GET", "/api/rooms/vip/members", t, "boss", "admin");
      expect(members.body.members.map((m: { userId: string }) => m.userId).sort()).toEqual(["alice", "mod"]);

      // Room traffic reaches the admitted members only.
      const seenByMallory = recorder(mallory.socket, "message");
      const seenByMod = recorder(mod.socket, "message");
      await request(alice.socket, "message", { type: "chat", roomId: "vip", payload: "secret" });
      await settle(100);
      expect(seenByMod.map(m => m.payload)).toEqual(["secret"]);
      expect(seenByMallory).toEqual([]);
    });

    it("keeps rooms that were never created public, and public rooms created with private: false", async () => {
      const t = freshTenant();
      const anyone = await client(t, "anyone");
      expect(await request(anyone.socket, "join_room", { roomId: "lobby" })).toEqual({ roomId: "lobby" });
      expect((await rest("POST", "/api/rooms", t, "svc", "service", { roomId: "town-square", private: false })).status).toBe(201);
      expect(await request(anyone.socket, "join_room", { roomId: "town-square" })).toEqual({ roomId: "town-square" });
    });

    it("PATCH /api/rooms/:roomId admits a new member at once; removed members are refused at their next join", async () => {
      const t = freshTenant();
      await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "team", members: ["alice"] });
      const bob = await client(t, "bob");
      expect((await request(bob.socket, "join_room", { roomId: "team" })).code).toBe("AUTHZ_FAILED");

      const patched = await rest("PATCH", "/api/rooms/team", t, "boss", "admin", { addMembers: ["bob"], removeMembers: ["alice"] });
      expect(patched.status).toBe(200);
      expect(patched.body.members).toEqual(["bob"]);
      expect(await request(bob.socket, "join_room", { roomId: "team" })).toEqual({ roomId: "team" });
      const alice = await client(t, "alice");
      expect((await request(alice.socket, "join_room", { roomId: "team" })).code).toBe("AUTHZ_FAILED");

      const read = await rest("GET", "/api/rooms/team", t, "bob", "user");
      expect(read).toMatchObject({ status: 200, body: { roomId: "team", private: true, members: ["bob"] } });
      expect((await rest("GET", "/api/rooms/team", t, "alice", "user")).status).toBe(403);

      // Both changes are administrative actions in the tenant's audit chain.
      type AuditRecord = { action: string; actor: { userId: string; role: string }; target: string; details: Record<string, unknown> };
      let changes: AuditRecord[] = [];
      await eventually(async () => {
        const all = (await node.broker.call<{ records: AuditRecord[] }, object>("audit.query", { tenantId: t, limit: 100 })).records;
        changes = all.filter(r => r.action.startsWith("rooms."));
        return changes.length === 2;
      }, 3000, "two room audit records");
      expect(changes).toMatchObject([
        { action: "rooms.create", actor: { userId: "boss", role: "admin" }, target: "room:team", details: { private: true, members: 1 } },
        { action: "rooms.update", actor: { userId: "boss", role: "admin" }, target: "room:team", details: { addMembers: 1, removeMembers: 1 } }
      ]);
    });

    it("answers REST errors with the seed's codes", async () => {
      const t = freshTenant();
      expect(await rest("POST", "/api/rooms", t, "user1", "user", { roomId: "grab" })).toMatchObject({ status: 403, body: { code: "AUTHZ_FAILED" } });
      expect((await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "once" })).status).toBe(201);
      expect(await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "once" })).toMatchObject({ status: 400, body: { code: "INVALID_REQUEST", details: { reason: "exists" } } });
      expect(await rest("PATCH", "/api/rooms/nope", t, "boss", "admin", { private: true })).toMatchObject({ status: 404, body: { code: "NOT_FOUND" } });
      expect(await rest("GET", "/api/rooms/nope", t, "boss", "admin")).toMatchObject({ status: 404, body: { code: "NOT_FOUND" } });
      expect(await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "x", members: "alice" })).toMatchObject({ status: 400, body: { code: "INVALID_REQUEST" } });
      // The body may restate the tenant, never name another one.
      expect(await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "y", tenantId: "someone-else" })).toMatchObject({ status: 403, body: { code: "TENANT_VIOLATION" } });
    });

    it("leaves a private room out when a client resumes with it in auth.rooms, and keeps the others", async () => {
      const t = freshTenant();
      await rest("POST", "/api/rooms", t, "boss", "admin", { roomId: "vip", members: [] });
      const { connected } = await client(t, "mallory", "user", { rooms: ["vip", "lobby"] });
      expect(connected.rooms).toEqual(["lobby"]);
    });
  });
}
