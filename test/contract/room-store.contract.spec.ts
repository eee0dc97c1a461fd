import { createRoomStore } from "../../stores/rooms";
import type { RoomInfo, RoomMember, RoomStore } from "../../stores/rooms/room-store";
import { MemoryRoomStore } from "../../stores/rooms/room-store.memory";
import { RedisRoomStore } from "../../stores/rooms/room-store.redis";
import { releaseRedis } from "../../stores/redis-connection";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";
import { backends, keysUnder, requireRedis, useStore } from "./backends";

const sorted = (values: string[]) => [...values].sort();
const byConnection = (members: RoomMember[]) => [...members].sort((a, b) => a.connectionId.localeCompare(b.connectionId));
const m = (connectionId: string, userId: string, nodeId = "n1"): RoomMember => ({ connectionId, userId, nodeId });

for (const backend of backends) {
  describe(`RoomStore contract (${backend.name})`, () => {
    const store = useStore<RoomStore>(backend, "rooms", createRoomStore);

    describe("join / leave", () => {
      it("joins once per connection: true, then false", async () => {
        expect(await store().join("t1", "r1", m("c1", "u1"))).toBe(true);
        expect(await store().join("t1", "r1", m("c1", "u1"))).toBe(false);
        expect(await store().members("t1", "r1")).toEqual([m("c1", "u1")]);
      });

      it("leaves once: true, then false; leaving an unknown room is false", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        expect(await store().leave("t1", "r1", "c1")).toBe(true);
        expect(await store().leave("t1", "r1", "c1")).toBe(false);
        expect(await store().leave("t1", "never", "c1")).toBe(false);
        expect(await store().members("t1", "r1")).toEqual([]);
        expect(await store().roomsOfConnection("t1", "c1")).toEqual([]);
        expect(await store().roomsOfUser("t1", "u1")).toEqual([]);
        // Leaving emptied the room; joining again starts afresh.
        expect(await store().join("t1", "r1", m("c1", "u1"))).toBe(true);
      });

      it("lists every member of a room with its user and node", async () => {
        await store().join("t1", "r1", m("c1", "u1", "n1"));
        await store().join("t1", "r1", m("c2", "u1", "n2"));
        await store().join("t1", "r1", m("c3", "u2", "n1"));
        await store().join("t1", "r2", m("c4", "u3", "n1"));
        expect(byConnection(await store().members("t1", "r1"))).toEqual([m("c1", "u1", "n1"), m("c2", "u1", "n2"), m("c3", "u2", "n1")]);
        expect(await store().members("t1", "r2")).toEqual([m("c4", "u3", "n1")]);
        expect(await store().members("t1", "empty")).toEqual([]);
      });

      it("lists the rooms of one connection", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r2", m("c1", "u1"));
        await store().join("t1", "r3", m("c2", "u1"));
        expect(sorted(await store().roomsOfConnection("t1", "c1"))).toEqual(["r1", "r2"]);
        expect(await store().roomsOfConnection("t1", "c2")).toEqual(["r3"]);
        expect(await store().roomsOfConnection("t1", "c-none")).toEqual([]);
        await store().leave("t1", "r1", "c1");
        expect(await store().roomsOfConnection("t1", "c1")).toEqual(["r2"]);
      });
    });

    describe("roomsOfUser", () => {
      it("keeps a user in a room while one of its devices remains", async () => {
        await store().join("t1", "r1", m("phone", "u1"));
        await store().join("t1", "r1", m("laptop", "u1", "n2"));
        await store().join("t1", "r2", m("phone", "u1"));
        expect(sorted(await store().roomsOfUser("t1", "u1"))).toEqual(["r1", "r2"]);

        await store().leave("t1", "r1", "phone");
        expect(sorted(await store().roomsOfUser("t1", "u1"))).toEqual(["r1", "r2"]);
        await store().leave("t1", "r2", "phone");
        expect(await store().roomsOfUser("t1", "u1")).toEqual(["r1"]);
        await store().leave("t1", "r1", "laptop");
        expect(await store().roomsOfUser("t1", "u1")).toEqual([]);
      });

      it("does not count a repeated join twice", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r1", m("c1", "u1"));
        await store().leave("t1", "r1", "c1");
        expect(await store().roomsOfUser("t1", "u1")).toEqual([]);
      });

      it("is empty for an unknown user and does not mix users", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r2", m("c2", "u2"));
        expect(await store().roomsOfUser("t1", "u1")).toEqual(["r1"]);
        expect(await store().roomsOfUser("t1", "u2")).toEqual(["r2"]);
        expect(await store().roomsOfUser("t1", "nobody")).toEqual([]);
      });
    });

    describe("roomsOfUsers", () => {
      it("answers every user asked for, once each, from one tenant only", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r2", m("c2", "u1"));
        await store().join("t1", "r2", m("c3", "u2"));
        await store().join("t2", "r9", m("c4", "u3"));
        const rooms = await store().roomsOfUsers("t1", ["u1", "u2", "u1", "u3", "nobody"]);
        expect([...rooms.keys()].sort()).toEqual(["nobody", "u1", "u2", "u3"]);
        expect(sorted(rooms.get("u1") ?? [])).toEqual(["r1", "r2"]);
        expect(rooms.get("u2")).toEqual(["r2"]);
        expect(rooms.get("u3")).toEqual([]);
        expect(rooms.get("nobody")).toEqual([]);
      });

      it("agrees with roomsOfUser after leaves, and is empty for no users", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r2", m("c1", "u1"));
        await store().leave("t1", "r1", "c1");
        expect((await store().roomsOfUsers("t1", ["u1"])).get("u1")).toEqual(await store().roomsOfUser("t1", "u1"));
        expect((await store().roomsOfUsers("t1", [])).size).toBe(0);
      });
    });

    describe("leaveAll", () => {
      it("returns the rooms left and removes every membership of the connection", async () => {
        await store().join("t1", "r1", m("c1", "u1"));
        await store().join("t1", "r2", m("c1", "u1"));
        await store().join("t1", "r3", m("c1", "u1"));
        await store().join("t1", "r1", m("c2", "u1"));
        await store().join("t1", "r2", m("c3", "u2"));

        expect(sorted(await store().leaveAll("t1", "c1"))).toEqual(["r1", "r2", "r3"]);
        expect(await store().roomsOfConnection("t1", "c1")).toEqual([]);
        expect(await store().members("t1", "r1")).toEqual([m("c2", "u1")]);
        expect(await store().members("t1", "r2")).toEqual([m("c3", "u2")]);
        expect(await store().members("t1", "r3")).toEqual([]);
        expect(await store().roomsOfUser("t1", "u1")).toEqual(["r1"]);
        expect(await store().roomsOfUser("t1", "u2")).toEqual(["r2"]);

        expect(await store().leaveAll("t1", "c1")).toEqual([]);
        expect(await store().leaveAll("t1", "never")).toEqual([]);
        expect(await store().join("t1", "r3", m("c1", "u1"))).toBe(true);
      });
    });

    describe("removeNode", () => {
      it("removes only that node's memberships and returns how many", async () => {
        await store().join("t1", "shared", m("a", "u1", "n1"));
        await store().join("t1", "r-a", m("a", "u1", "n1"));
        await store().join("t1", "shared", m("b", "u2", "n1"));
        await store().join("t2", "shared", m("a", "u1", "n1"));
        await store().join("t1", "shared", m("c", "u1", "n2"));
        await store().join("t2", "other", m("d", "u3", "n2"));

        expect(await store().removeNode("n1")).toBe(4);

        expect(await store().members("t1", "shared")).toEqual([m("c", "u1", "n2")]);
        expect(await store().members("t1", "r-a")).toEqual([]);
        expect(await store().members("t2", "shared")).toEqual([]);
        expect(await store().members("t2", "other")).toEqual([m("d", "u3", "n2")]);
        expect(await store().roomsOfConnection("t1", "a")).toEqual([]);
        expect(await store().roomsOfConnection("t2", "a")).toEqual([]);
        expect(await store().roomsOfUser("t1", "u1")).toEqual(["shared"]);
        expect(await store().roomsOfUser("t1", "u2")).toEqual([]);
        expect(await store().roomsOfUser("t2", "u1")).toEqual([]);

        expect(await store().removeNode("n1")).toBe(0);
        expect(await store().removeNode("unknown-node")).toBe(0);
        expect(await store().removeNode("n2")).toBe(2);
        expect(await store().roomsOfUser("t1", "u1")).toEqual([]);
      });

      it("forgets connections that already left their rooms", async () => {
        await store().join("t1", "r1", m("c1", "u1", "n1"));
        await store().join("t1", "r2", m("c2", "u2", "n1"));
        await store().leave("t1", "r1", "c1");
        await store().leaveAll("t1", "c2");
        expect(await store().removeNode("n1")).toBe(0);
      });

      it("still removes a connection that left some of its rooms", async () => {
        await store().join("t1", "r1", m("c1", "u1", "n1"));
        await store().join("t1", "r2", m("c1", "u1", "n1"));
        await store().leave("t1", "r1", "c1");
        expect(await store().removeNode("n1")).toBe(1);
        expect(await store().roomsOfConnection("t1", "c1")).toEqual([]);
      });
    });

    describe("room settings (private rooms)", () => {
      const T0 = "2026-01-30T12:00:00.000Z";
      const T1 = "2026-01-30T13:00:00.000Z";
      const info = (over: Partial<RoomInfo> = {}) => ({ private: true, members: ["u1", "u2"], allowedRoles: ["admin"], createdBy: "boss", createdAt: T0, updatedAt: T0, ...over });
      const normalised = (room: RoomInfo | undefined) => room && { ...room, members: sorted(room.members), allowedRoles: sorted(room.allowedRoles) };

      it("has no settings for a room never created", async () => {
        expect(await store().getRoom("t1", "r1")).toBeUndefined();
        expect(await store().getAccess("t1", "r1", "u1")).toBeUndefined();
        expect(await store().updateRoom("t1", "r1", { private: true, updatedAt: T1 })).toBeUndefined();
        // An update of an unknown room creates nothing.
        expect(await store().getRoom("t1", "r1")).toBeUndefined();
      });

      it("creates once: true, then false without changing the first settings", async () => {
        expect(await store().createRoom("t1", "r1", info())).toBe(true);
        expect(await store().createRoom("t1", "r1", info({ private: false, members: ["x"], createdBy: "other" }))).toBe(false);
        expect(normalised(await store().getRoom("t1", "r1"))).toEqual({ roomId: "r1", ...info() });
      });

      it("of two concurrent creations exactly one wins", async () => {
        const results = await Promise.all([1, 2, 3, 4, 5].map(i => store().createRoom("t1", "race", info({ createdBy: `c${i}` }))));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true) + 1;
        expect((await store().getRoom("t1", "race"))?.createdBy).toBe(`c${winner}`);
      });

      it("keeps duplicate members and roles once; an empty member list is a valid private room", async () => {
        await store().createRoom("t1", "dups", info({ members: ["u1", "u1", "u2"], allowedRoles: ["a", "a"] }));
        expect(normalised(await store().getRoom("t1", "dups"))).toMatchObject({ members: ["u1", "u2"], allowedRoles: ["a"] });
        await store().createRoom("t1", "empty", info({ members: [], allowedRoles: [] }));
        expect(await store().getRoom("t1", "empty")).toMatchObject({ private: true, members: [], allowedRoles: [] });
        expect(await store().getAccess("t1", "empty", "u1")).toEqual({ private: true, allowedRoles: [], isMember: false });
      });

      it("answers access questions without listing members", async () => {
        await store().createRoom("t1", "r1", info());
        expect(await store().getAccess("t1", "r1", "u1")).toEqual({ private: true, allowedRoles: ["admin"], isMember: true });
        expect(await store().getAccess("t1", "r1", "stranger")).toEqual({ private: true, allowedRoles: ["admin"], isMember: false });
        await store().createRoom("t1", "open", info({ private: false, members: [], allowedRoles: [] }));
        expect(await store().getAccess("t1", "open", "anyone")).toEqual({ private: false, allowedRoles: [], isMember: false });
      });

      it("updates only the given fields and returns the result", async () => {
        await store().createRoom("t1", "r1", info());
        const flipped = await store().updateRoom("t1", "r1", { private: false, updatedAt: T1 });
        expect(normalised(flipped)).toEqual({ roomId: "r1", ...info({ private: false, updatedAt: T1 }) });
        const roles = await store().updateRoom("t1", "r1", { allowedRoles: ["moderator", "moderator", "service"], updatedAt: T1 });
        expect(normalised(roles)).toMatchObject({ private: false, members: ["u1", "u2"], allowedRoles: ["moderator", "service"] });
        const cleared = await store().updateRoom("t1", "r1", { allowedRoles: [], members: [], updatedAt: T1 });
        expect(cleared).toMatchObject({ members: [], allowedRoles: [] });
        expect(normalised(await store().getRoom("t1", "r1"))).toEqual(normalised(cleared));
      });

      it("replaces, adds and removes members in that order, atomically", async () => {
        await store().createRoom("t1", "r1", info());
        const replaced = await store().updateRoom("t1", "r1", { members: ["a", "b"], addMembers: ["c", "a"], removeMembers: ["b", "nobody"], updatedAt: T1 });
        expect(sorted(replaced?.members ?? [])).toEqual(["a", "c"]);
        const edited = await store().updateRoom("t1", "r1", { addMembers: ["d"], removeMembers: ["a"], updatedAt: T1 });
        expect(sorted(edited?.members ?? [])).toEqual(["c", "d"]);
        expect((await store().getAccess("t1", "r1", "d"))?.isMember).toBe(true);
        expect((await store().getAccess("t1", "r1", "a"))?.isMember).toBe(false);
        const many = Array.from({ length: 2500 }, (_, i) => `user-${i}`);
        const big = await store().updateRoom("t1", "r1", { members: many, removeMembers: many.slice(0, 1200), updatedAt: T1 });
        expect(big?.members).toHaveLength(1300);
        expect((await store().getAccess("t1", "r1", "user-2499"))?.isMember).toBe(true);
        expect((await store().getAccess("t1", "r1", "user-0"))?.isMember).toBe(false);
      });

      it("concurrent additions are all kept", async () => {
        await store().createRoom("t1", "r1", info({ members: [] }));
        await Promise.all(Array.from({ length: 20 }, (_, i) => store().updateRoom("t1", "r1", { addMembers: [`m${i}`], updatedAt: T1 })));
        expect((await store().getRoom("t1", "r1"))?.members).toHaveLength(20);
      });

      it("keeps settings apart from memberships: joins, leaves and node removal do not touch them", async () => {
        await store().createRoom("t1", "r1", info());
        await store().join("t1", "r1", m("c1", "u1"));
        await store().leaveAll("t1", "c1");
        await store().join("t1", "r1", m("c2", "u2"));
        await store().removeNode("n1");
        expect(normalised(await store().getRoom("t1", "r1"))).toEqual({ roomId: "r1", ...info() });
        expect(await store().members("t1", "r1")).toEqual([]);
      });

      it("isolates settings by tenant, including ':' in identifiers", async () => {
        await store().createRoom("t1", "r1", info());
        expect(await store().getRoom("t2", "r1")).toBeUndefined();
        expect(await store().getAccess("t2", "r1", "u1")).toBeUndefined();
        expect(await store().createRoom("t2", "r1", info({ members: ["other"] }))).toBe(true);
        expect((await store().getAccess("t1", "r1", "other"))?.isMember).toBe(false);
        await store().createRoom("a", "b:c", info({ members: ["x"] }));
        expect(await store().getRoom("a:b", "c")).toBeUndefined();
        expect(await store().createRoom("a:b", "c", info({ members: ["y"] }))).toBe(true);
        expect((await store().getRoom("a", "b:c"))?.members).toEqual(["x"]);
      });

      it("keeps unicode identifiers exact", async () => {
        await store().createRoom("テナント", "部屋🚪", info({ members: ["ユーザー😀"], allowedRoles: ["管理者"] }));
        expect(await store().getAccess("テナント", "部屋🚪", "ユーザー😀")).toEqual({ private: true, allowedRoles: ["管理者"], isMember: true });
      });
    });

    describe("tenant isolation", () => {
      it("treats the same roomId in two tenants as two unrelated rooms", async () => {
        expect(await store().join("t1", "lobby", m("c1", "u1"))).toBe(true);
        expect(await store().members("t2", "lobby")).toEqual([]);
        expect(await store().join("t2", "lobby", m("c1", "u1"))).toBe(true);
        expect(await store().leave("t2", "lobby", "c1")).toBe(true);
        expect(await store().members("t1", "lobby")).toEqual([m("c1", "u1")]);
        expect(await store().roomsOfUser("t1", "u1")).toEqual(["lobby"]);
        expect(await store().roomsOfUser("t2", "u1")).toEqual([]);

        await store().join("t2", "lobby", m("c1", "u1"));
        expect(await store().leaveAll("t1", "c1")).toEqual(["lobby"]);
        expect(await store().members("t2", "lobby")).toEqual([m("c1", "u1")]);
        expect(await store().roomsOfConnection("t2", "c1")).toEqual(["lobby"]);
      });

      it("never confuses identifiers containing ':' across tenants", async () => {
        await store().join("a", "b:c", m("x:y", "u:1", "n:1"));
        expect(await store().members("a:b", "c")).toEqual([]);
        expect(await store().members("a", "b")).toEqual([]);
        await store().join("a:b", "c", m("x:y", "u:1", "n:1"));
        expect(await store().members("a", "b:c")).toEqual([m("x:y", "u:1", "n:1")]);
        expect(await store().members("a:b", "c")).toEqual([m("x:y", "u:1", "n:1")]);
        expect(await store().roomsOfConnection("a", "x:y")).toEqual(["b:c"]);
        expect(await store().roomsOfUser("a:b", "u:1")).toEqual(["c"]);

        // A roomId shaped like another tenant's key stays a plain room name of this tenant.
        await store().join("a", "x:t:b:room:c", m("z", "u:2", "n:1"));
        expect(await store().members("b", "c")).toEqual([]);
        expect(await store().roomsOfUser("a", "u:2")).toEqual(["x:t:b:room:c"]);

        expect(await store().leaveAll("a:b", "x:y")).toEqual(["c"]);
        expect(await store().roomsOfConnection("a", "x:y")).toEqual(["b:c"]);
        expect(await store().removeNode("n:1")).toBe(2);
      });

      it("keeps unicode identifiers exact", async () => {
        await store().join("テナント", "部屋🚪", m("接続", "ユーザー😀", "nœud"));
        expect(await store().members("テナント", "部屋🚪")).toEqual([m("接続", "ユーザー😀", "nœud")]);
        expect(await store().roomsOfConnection("テナント", "接続")).toEqual(["部屋🚪"]);
        expect(await store().roomsOfUser("テナント", "ユーザー😀")).toEqual(["部屋🚪"]);
        expect(await store().leaveAll("テナント", "接続")).toEqual(["部屋🚪"]);
        expect(await store().roomsOfUser("テナント", "ユーザー😀")).toEqual([]);
      });
    });
  });
}

describe("createRoomStore resolver", () => {
  it("returns the in-process store without REDIS_URL", async () => {
    const store = createRoomStore({ redisUrl: undefined, redisKeyPrefix: "unused" });
    expect(store).toBeInstanceOf(MemoryRoomStore);
    await store.close();
  });

  it("returns a Redis store that writes under its key prefix", async () => {
    const client = await requireRedis();
    const prefix = uniquePrefix("rooms-resolver");
    const store = createRoomStore({ redisUrl: REDIS_URL, redisKeyPrefix: prefix });
    try {
      expect(store).toBeInstanceOf(RedisRoomStore);
      await store.join("t1", "r1", m("c1", "u1"));
      expect(await keysUnder(client, prefix)).toEqual([
        `${prefix}:g:rooms:node:n1`,
        `${prefix}:t:t1:conn:c1:rooms`,
        `${prefix}:t:t1:room:r1:members`,
        `${prefix}:t:t1:user:u1:rooms`
      ]);
      await store.leaveAll("t1", "c1");
      expect(await keysUnder(client, prefix)).toEqual([]);
      await store.createRoom("t1", "r1", { private: true, members: ["u1"], allowedRoles: [], createdBy: "a", createdAt: "x", updatedAt: "x" });
      expect(await keysUnder(client, prefix)).toEqual([`${prefix}:t:t1:room:r1:acl`, `${prefix}:t:t1:room:r1:settings`]);
    } finally {
      await store.close();
      await dropPrefix(prefix);
      await releaseRedis(REDIS_URL);
    }
  });
});
