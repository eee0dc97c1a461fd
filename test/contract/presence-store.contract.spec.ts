import { createPresenceStore } from "../../stores/presence";
import type { ConnectionRef, Presence, PresenceChange, PresenceStore } from "../../stores/presence/presence-store";
import { MemoryPresenceStore } from "../../stores/presence/presence-store.memory";
import { RedisPresenceStore } from "../../stores/presence/presence-store.redis";
import { releaseRedis } from "../../stores/redis-connection";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";
import { backends, keysUnder, requireRedis, useStore } from "./backends";

const T0 = 1_700_000_000_000;
const iso = (ms: number) => new Date(ms).toISOString();
const offline = (userId: string, lastSeen: string | null = null): Presence => ({ userId, status: "offline", lastSeen, connections: 0 });
const byUser = (changes: PresenceChange[]) =>
  [...changes].sort((a, b) => `${a.tenantId}\0${a.presence.userId}`.localeCompare(`${b.tenantId}\0${b.presence.userId}`));

for (const backend of backends) {
  describe(`PresenceStore contract (${backend.name})`, () => {
    const store = useStore<PresenceStore>(backend, "presence", createPresenceStore);

    describe("get / getMany", () => {
      it("reports a never-seen user as offline with no connections and no lastSeen", async () => {
        expect(await store().get("t1", "ghost")).toEqual(offline("ghost"));
        expect(await store().getMany("t1", ["ghost", "other"])).toEqual([offline("ghost"), offline("other")]);
      });

      it("returns presences in the order asked, including unknown users", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().connect("t1", "u3", "c3", "n1", T0 + 3);
        await store().setStatus("t1", "u3", "away", { note: "lunch" }, T0 + 4);
        const many = await store().getMany("t1", ["u3", "nobody", "u1", "u3"]);
        expect(many).toEqual([
          { userId: "u3", status: "away", metadata: { note: "lunch" }, lastSeen: iso(T0 + 4), connections: 1 },
          offline("nobody"),
          { userId: "u1", status: "online", lastSeen: iso(T0), connections: 1 },
          { userId: "u3", status: "away", metadata: { note: "lunch" }, lastSeen: iso(T0 + 4), connections: 1 }
        ]);
        expect(await store().getMany("t1", [])).toEqual([]);
      });
    });

    describe("connect / disconnect", () => {
      it("reports the first connection as the user coming online", async () => {
        const result = await store().connect("t1", "u1", "c1", "n1", T0);
        expect(result).toEqual({ changed: true, presence: { userId: "u1", status: "online", lastSeen: iso(T0), connections: 1 } });
        expect(await store().get("t1", "u1")).toEqual(result.presence);
      });

      it("counts a second device without reporting a change", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        const second = await store().connect("t1", "u1", "c2", "n2", T0 + 10);
        expect(second).toEqual({ changed: false, presence: { userId: "u1", status: "online", lastSeen: iso(T0 + 10), connections: 2 } });
        expect((await store().get("t1", "u1")).connections).toBe(2);
      });

      it("is idempotent per connectionId", async () => {
        expect((await store().connect("t1", "u1", "c1", "n1", T0)).changed).toBe(true);
        const again = await store().connect("t1", "u1", "c1", "n1", T0 + 1);
        expect(again.changed).toBe(false);
        expect(again.presence.connections).toBe(1);
        // One disconnect is enough to go offline: the repeated connect did not count twice.
        expect((await store().disconnect("t1", "u1", "c1", T0 + 2)).changed).toBe(true);
      });

      it("keeps the user online while another device remains, and reports the last disconnect", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().connect("t1", "u1", "c2", "n1", T0 + 1);

        const first = await store().disconnect("t1", "u1", "c1", T0 + 5);
        expect(first).toEqual({ changed: false, presence: { userId: "u1", status: "online", lastSeen: iso(T0 + 5), connections: 1 } });

        const last = await store().disconnect("t1", "u1", "c2", T0 + 9);
        expect(last).toEqual({ changed: true, presence: offline("u1", iso(T0 + 9)) });
        expect(await store().get("t1", "u1")).toEqual(offline("u1", iso(T0 + 9)));
      });

      it("reports no change for an unknown or already removed connection", async () => {
        expect(await store().disconnect("t1", "ghost", "c1", T0)).toEqual({ changed: false, presence: offline("ghost") });

        await store().connect("t1", "u1", "c1", "n1", T0);
        expect(await store().disconnect("t1", "u1", "nope", T0 + 1)).toEqual({
          changed: false,
          presence: { userId: "u1", status: "online", lastSeen: iso(T0), connections: 1 }
        });
        expect((await store().disconnect("t1", "u1", "c1", T0 + 2)).changed).toBe(true);
        expect(await store().disconnect("t1", "u1", "c1", T0 + 3)).toEqual({ changed: false, presence: offline("u1", iso(T0 + 2)) });
      });

      it("comes back online with a fresh status after going offline", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().setStatus("t1", "u1", "away", { mood: "busy" }, T0 + 1);
        await store().disconnect("t1", "u1", "c1", T0 + 2);
        const back = await store().connect("t1", "u1", "c2", "n1", T0 + 3);
        expect(back).toEqual({ changed: true, presence: { userId: "u1", status: "online", lastSeen: iso(T0 + 3), connections: 1 } });
      });

      it("does not reset the chosen status when another device connects", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().setStatus("t1", "u1", "away", { mood: "busy" }, T0 + 1);
        const second = await store().connect("t1", "u1", "c2", "n2", T0 + 2);
        expect(second).toEqual({
          changed: false,
          presence: { userId: "u1", status: "away", metadata: { mood: "busy" }, lastSeen: iso(T0 + 2), connections: 2 }
        });
      });
    });

    describe("setStatus", () => {
      it("changes the status of an online user and returns the metadata", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        const result = await store().setStatus("t1", "u1", "away", { text: "brb", nested: { n: 1 } }, T0 + 5);
        expect(result).toEqual({
          changed: true,
          presence: { userId: "u1", status: "away", metadata: { text: "brb", nested: { n: 1 } }, lastSeen: iso(T0 + 5), connections: 1 }
        });
        expect(await store().get("t1", "u1")).toEqual(result.presence);
      });

      it("reports a change only when the status or the metadata differ", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        expect((await store().setStatus("t1", "u1", "online", undefined, T0 + 1)).changed).toBe(false);
        expect((await store().setStatus("t1", "u1", "away", undefined, T0 + 2)).changed).toBe(true);
        expect((await store().setStatus("t1", "u1", "away", undefined, T0 + 3)).changed).toBe(false);
        expect((await store().setStatus("t1", "u1", "away", { a: 1 }, T0 + 4)).changed).toBe(true);
        expect((await store().setStatus("t1", "u1", "away", { a: 1 }, T0 + 5)).changed).toBe(false);
        expect((await store().setStatus("t1", "u1", "away", { a: 2 }, T0 + 6)).changed).toBe(true);

        const cleared = await store().setStatus("t1", "u1", "away", undefined, T0 + 7);
        expect(cleared.changed).toBe(true);
        expect(cleared.presence).toEqual({ userId: "u1", status: "away", lastSeen: iso(T0 + 7), connections: 1 });
        expect(cleared.presence).not.toHaveProperty("metadata");
      });

      it("lets an online user appear offline (invisible) while connected", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        const invisible = await store().setStatus("t1", "u1", "offline", undefined, T0 + 1);
        expect(invisible).toEqual({ changed: true, presence: { userId: "u1", status: "offline", lastSeen: iso(T0 + 1), connections: 1 } });
        expect(await store().get("t1", "u1")).toEqual(invisible.presence);
        expect((await store().setStatus("t1", "u1", "online", undefined, T0 + 2)).changed).toBe(true);
      });

      it("cannot bring a never-seen or disconnected user online", async () => {
        expect(await store().setStatus("t1", "ghost", "online", { x: 1 }, T0)).toEqual({ changed: false, presence: offline("ghost") });
        expect(await store().get("t1", "ghost")).toEqual(offline("ghost"));

        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().disconnect("t1", "u1", "c1", T0 + 1);
        expect(await store().setStatus("t1", "u1", "away", { x: 1 }, T0 + 2)).toEqual({ changed: false, presence: offline("u1", iso(T0 + 1)) });
        expect(await store().get("t1", "u1")).toEqual(offline("u1", iso(T0 + 1)));

        // The refused status did not stick: the next connection starts plainly online.
        const back = await store().connect("t1", "u1", "c2", "n1", T0 + 3);
        expect(back.presence).toEqual({ userId: "u1", status: "online", lastSeen: iso(T0 + 3), connections: 1 });
      });
    });

    describe("heartbeat / expire", () => {
      it("returns the connections it does not know, in order, and accepts an empty batch", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        const refs: ConnectionRef[] = [
          { tenantId: "t1", userId: "u1", connectionId: "c1" },
          { tenantId: "t1", userId: "u1", connectionId: "c-unknown" },
          { tenantId: "t1", userId: "nobody", connectionId: "c1" },
          { tenantId: "t2", userId: "u1", connectionId: "c1" }
        ];
        expect(await store().heartbeat(refs, T0 + 1)).toEqual(refs.slice(1));
        expect(await store().heartbeat([], T0 + 2)).toEqual([]);
      });

      it("maps unknown connections correctly across large batches", async () => {
        const known = Array.from({ length: 300 }, (_, i) => `c${i}`);
        await Promise.all(known.map(id => store().connect("t1", "big", id, "n1", T0)));
        const refs: ConnectionRef[] = [];
        const expectedUnknown: ConnectionRef[] = [];
        for (let i = 0; i < 700; i++) {
          const ref = { tenantId: "t1", userId: "big", connectionId: i % 7 === 3 || i >= 300 ? `x${i}` : `c${i}` };
          refs.push(ref);
          if (ref.connectionId.startsWith("x")) expectedUnknown.push(ref);
        }
        expect(await store().heartbeat(refs, T0 + 1)).toEqual(expectedUnknown);
      });

      it("expires only stale connections; a refreshed one survives and the user stays online", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().connect("t1", "u1", "c2", "n1", T0);
        await store().connect("t1", "u2", "c3", "n1", T0);
        expect(await store().heartbeat([{ tenantId: "t1", userId: "u1", connectionId: "c2" }], T0 + 50_000)).toEqual([]);

        const changes = await store().expire(T0 + 30_000, T0 + 60_000);
        expect(changes).toEqual([{ tenantId: "t1", presence: offline("u2", iso(T0 + 60_000)) }]);
        expect((await store().get("t1", "u1")).connections).toBe(1);
        expect((await store().get("t1", "u1")).status).toBe("online");
        expect(await store().get("t1", "u2")).toEqual(offline("u2", iso(T0 + 60_000)));

        // The expired connection is now unknown to heartbeats; the refreshed one is not.
        const refs: ConnectionRef[] = [
          { tenantId: "t1", userId: "u1", connectionId: "c1" },
          { tenantId: "t1", userId: "u1", connectionId: "c2" },
          { tenantId: "t1", userId: "u2", connectionId: "c3" }
        ];
        expect(await store().heartbeat(refs, T0 + 61_000)).toEqual([refs[0], refs[2]]);

        // Nothing is reported twice.
        expect(await store().expire(T0 + 30_000, T0 + 62_000)).toEqual([]);
      });

      it("keeps a connection whose heartbeat is exactly at the cutoff", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        expect(await store().expire(T0, T0 + 1)).toEqual([]);
        expect((await store().get("t1", "u1")).connections).toBe(1);
        expect(await store().expire(T0 + 1, T0 + 2)).toEqual([{ tenantId: "t1", presence: offline("u1", iso(T0 + 2)) }]);
      });

      it("reports every user that went offline, with its tenant", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().connect("t2", "u1", "c1", "n1", T0);
        await store().connect("t2", "u2", "c2", "n2", T0);
        const changes = await store().expire(T0 + 1, T0 + 10);
        expect(byUser(changes)).toEqual([
          { tenantId: "t1", presence: offline("u1", iso(T0 + 10)) },
          { tenantId: "t2", presence: offline("u1", iso(T0 + 10)) },
          { tenantId: "t2", presence: offline("u2", iso(T0 + 10)) }
        ]);
      });
    });

    describe("removeNode", () => {
      it("removes only the connections of that node and reports users that went offline", async () => {
        await store().connect("t1", "both", "b-n1", "n1", T0);
        await store().connect("t1", "both", "b-n2", "n2", T0);
        await store().connect("t1", "only1", "o1", "n1", T0);
        await store().connect("t2", "only1", "o1", "n1", T0);
        await store().connect("t1", "only2", "o2", "n2", T0);

        const changes = await store().removeNode("n1", T0 + 100);
        expect(byUser(changes)).toEqual([
          { tenantId: "t1", presence: offline("only1", iso(T0 + 100)) },
          { tenantId: "t2", presence: offline("only1", iso(T0 + 100)) }
        ]);
        const [both, only2] = await store().getMany("t1", ["both", "only2"]);
        expect(both).toMatchObject({ status: "online", connections: 1 });
        expect(only2).toMatchObject({ status: "online", connections: 1 });
        expect(await store().heartbeat([{ tenantId: "t1", userId: "both", connectionId: "b-n2" }], T0 + 101)).toEqual([]);

        expect(await store().removeNode("n1", T0 + 200)).toEqual([]);
        expect(await store().removeNode("never-seen", T0 + 200)).toEqual([]);

        const rest = await store().removeNode("n2", T0 + 300);
        expect(byUser(rest)).toEqual([
          { tenantId: "t1", presence: offline("both", iso(T0 + 300)) },
          { tenantId: "t1", presence: offline("only2", iso(T0 + 300)) }
        ]);
      });

      it("does not report connections that already disconnected", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0);
        await store().disconnect("t1", "u1", "c1", T0 + 1);
        expect(await store().removeNode("n1", T0 + 2)).toEqual([]);
        expect(await store().get("t1", "u1")).toEqual(offline("u1", iso(T0 + 1)));
      });
    });

    describe("connections (devices)", () => {
      it("lists every live connection with its device info, node and heartbeat, oldest first", async () => {
        await store().connect("t1", "u1", "phone", "n2", T0 + 5, { userAgent: "Phone/1.0", ip: "10.0.0.2" });
        await store().connect("t1", "u1", "desk", "n1", T0, { userAgent: "Desk/2.0", ip: "10.0.0.1", connectedAt: T0 - 100 });
        await store().connect("t1", "u1", "bare", "n:1", T0 + 5);
        expect(await store().connections("t1", "u1")).toEqual([
          { connectionId: "desk", nodeId: "n1", connectedAt: T0 - 100, lastSeen: T0, userAgent: "Desk/2.0", ip: "10.0.0.1" },
          { connectionId: "bare", nodeId: "n:1", connectedAt: T0 + 5, lastSeen: T0 + 5 },
          { connectionId: "phone", nodeId: "n2", connectedAt: T0 + 5, lastSeen: T0 + 5, userAgent: "Phone/1.0", ip: "10.0.0.2" }
        ]);
        expect((await store().get("t1", "u1")).connections).toBe(3);
      });

      it("moves a connection's lastSeen with its heartbeat, keeping connectedAt", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0, { userAgent: "UA" });
        await store().heartbeat([{ tenantId: "t1", userId: "u1", connectionId: "c1" }], T0 + 7000);
        expect(await store().connections("t1", "u1")).toEqual([{ connectionId: "c1", nodeId: "n1", connectedAt: T0, lastSeen: T0 + 7000, userAgent: "UA" }]);
        // Connecting the same connection again replaces its device info (a re-registration).
        await store().connect("t1", "u1", "c1", "n1", T0 + 8000, { connectedAt: T0, ip: "1.2.3.4" });
        expect(await store().connections("t1", "u1")).toEqual([{ connectionId: "c1", nodeId: "n1", connectedAt: T0, lastSeen: T0 + 8000, ip: "1.2.3.4" }]);
      });

      it("drops connections removed by disconnect, expiry and node loss", async () => {
        await store().connect("t1", "u1", "a", "n1", T0);
        await store().connect("t1", "u1", "b", "n2", T0);
        await store().connect("t1", "u1", "c", "n3", T0);
        await store().disconnect("t1", "u1", "a", T0 + 1);
        await store().heartbeat([{ tenantId: "t1", userId: "u1", connectionId: "c" }], T0 + 100);
        await store().removeNode("n3", T0 + 101);
        expect((await store().connections("t1", "u1")).map(c => c.connectionId)).toEqual(["b"]);
        await store().expire(T0 + 50, T0 + 102);
        expect(await store().connections("t1", "u1")).toEqual([]);
        expect(await store().connections("t1", "never-seen")).toEqual([]);
        // A new connection under a reused id starts with fresh device info.
        await store().connect("t1", "u1", "a", "n1", T0 + 200);
        expect(await store().connections("t1", "u1")).toEqual([{ connectionId: "a", nodeId: "n1", connectedAt: T0 + 200, lastSeen: T0 + 200 }]);
      });

      it("keeps a user with many devices exact: connect, heartbeat, disconnect, expiry and node loss", async () => {
        const ids = Array.from({ length: 20 }, (_, i) => `c${String(i).padStart(2, "0")}`);
        for (const [i, id] of ids.entries()) {
          const result = await store().connect("t1", "u1", id, `n${i % 3}`, T0 + i, { userAgent: `ua-${id}` });
          expect(result.changed).toBe(i === 0);
          expect(result.presence.connections).toBe(i + 1);
        }
        // Reconnecting under a known id replaces that connection, it does not add one.
        expect((await store().connect("t1", "u1", "c05", "n1", T0 + 5)).presence.connections).toBe(20);
        expect((await store().connections("t1", "u1")).find(c => c.connectionId === "c05")?.nodeId).toBe("n1");
        expect(await store().heartbeat(ids.slice(0, 10).map(connectionId => ({ tenantId: "t1", userId: "u1", connectionId })), T0 + 100)).toEqual([]);
        for (const id of ids.slice(10, 14)) await store().disconnect("t1", "u1", id, T0 + 101);
        expect((await store().get("t1", "u1")).connections).toBe(16);
        await store().removeNode("n0", T0 + 102);
        const afterNodeLoss = (await store().connections("t1", "u1")).map(c => c.connectionId);
        expect(afterNodeLoss).toEqual(ids.filter((_, i) => !(i >= 10 && i < 14) && i % 3 !== 0));
        // Only the refreshed ones (the first ten) survive the expiry.
        await store().expire(T0 + 50, T0 + 103);
        const left = await store().connections("t1", "u1");
        expect(left.map(c => c.connectionId)).toEqual(afterNodeLoss.filter(id => ids.indexOf(id) < 10));
        expect(left.find(c => c.connectionId === "c01")).toEqual({ connectionId: "c01", nodeId: "n1", connectedAt: T0 + 1, lastSeen: T0 + 100, userAgent: "ua-c01" });
        for (const { connectionId } of left) await store().disconnect("t1", "u1", connectionId, T0 + 104);
        expect(await store().get("t1", "u1")).toEqual(offline("u1", iso(T0 + 104)));
      });

      it("keeps each tenant's devices apart", async () => {
        await store().connect("t1", "u1", "c1", "n1", T0, { ip: "10.0.0.1" });
        await store().connect("t2", "u1", "c1", "n1", T0 + 1, { ip: "10.0.0.2" });
        expect(await store().connections("t1", "u1")).toEqual([{ connectionId: "c1", nodeId: "n1", connectedAt: T0, lastSeen: T0, ip: "10.0.0.1" }]);
        await store().disconnect("t2", "u1", "c1", T0 + 2);
        expect(await store().connections("t2", "u1")).toEqual([]);
        expect(await store().connections("t1", "u1")).toHaveLength(1);
        expect(await store().connections("t1:u1", "c1")).toEqual([]);
      });
    });

    describe("tenant isolation", () => {
      it("keeps the same userId and connectionId in two tenants independent", async () => {
        expect((await store().connect("t1", "u1", "c1", "n1", T0)).changed).toBe(true);
        expect(await store().get("t2", "u1")).toEqual(offline("u1"));
        expect((await store().setStatus("t2", "u1", "away", undefined, T0 + 1)).changed).toBe(false);
        expect((await store().disconnect("t2", "u1", "c1", T0 + 2)).changed).toBe(false);
        expect((await store().get("t1", "u1")).connections).toBe(1);

        expect((await store().connect("t2", "u1", "c1", "n1", T0 + 3)).changed).toBe(true);
        await store().setStatus("t2", "u1", "away", { t: 2 }, T0 + 4);
        expect(await store().get("t1", "u1")).toEqual({ userId: "u1", status: "online", lastSeen: iso(T0), connections: 1 });

        expect((await store().disconnect("t1", "u1", "c1", T0 + 5)).changed).toBe(true);
        expect(await store().get("t2", "u1")).toEqual({ userId: "u1", status: "away", metadata: { t: 2 }, lastSeen: iso(T0 + 4), connections: 1 });
      });

      it("never confuses identifiers containing ':' across tenants", async () => {
        await store().connect("a", "b:c", "x:y", "n:1", T0);
        expect(await store().get("a:b", "c")).toEqual(offline("c"));
        expect(await store().getMany("a", ["b", "b:c"])).toEqual([
          offline("b"),
          { userId: "b:c", status: "online", lastSeen: iso(T0), connections: 1 }
        ]);
        expect((await store().connect("a:b", "c", "x:y", "n:1", T0 + 1)).changed).toBe(true);
        expect((await store().disconnect("a:b", "c", "x:y", T0 + 2)).changed).toBe(true);
        expect((await store().get("a", "b:c")).connections).toBe(1);

        // A userId that looks like another key's suffix stays a separate user.
        await store().connect("a", "b:c:conns", "z", "n:1", T0 + 3);
        expect((await store().get("a", "b:c")).connections).toBe(1);
        expect((await store().get("a", "b:c:conns")).connections).toBe(1);

        const changes = await store().removeNode("n:1", T0 + 10);
        expect(byUser(changes)).toEqual([
          { tenantId: "a", presence: offline("b:c", iso(T0 + 10)) },
          { tenantId: "a", presence: offline("b:c:conns", iso(T0 + 10)) }
        ]);
      });

      it("keeps unicode identifiers exact and apart", async () => {
        const tenant = "テナント🏢";
        await store().connect(tenant, "ユーザー😀", "接続-1", "nœud", T0);
        await store().connect(tenant, "ユーザー😁", "接続-2", "nœud", T0);
        expect(await store().get("テナント", "ユーザー😀")).toEqual(offline("ユーザー😀"));
        expect((await store().get(tenant, "ユーザー😀")).connections).toBe(1);
        expect(await store().heartbeat([{ tenantId: tenant, userId: "ユーザー😀", connectionId: "接続-1" }], T0 + 1)).toEqual([]);
        const changes = await store().expire(T0 + 1, T0 + 2);
        expect(changes).toEqual([{ tenantId: tenant, presence: offline("ユーザー😁", iso(T0 + 2)) }]);
      });
    });
  });
}

describe("createPresenceStore resolver", () => {
  it("returns the in-process store without REDIS_URL", async () => {
    const store = createPresenceStore({ redisUrl: undefined, redisKeyPrefix: "unused" });
    expect(store).toBeInstanceOf(MemoryPresenceStore);
    await store.close();
  });

  it("returns a Redis store that writes under its key prefix", async () => {
    const client = await requireRedis();
    const prefix = uniquePrefix("presence-resolver");
    const store = createPresenceStore({ redisUrl: REDIS_URL, redisKeyPrefix: prefix });
    try {
      expect(store).toBeInstanceOf(RedisPresenceStore);
      await store.connect("t1", "u1", "c1", "n1", T0);
      expect(await keysUnder(client, prefix)).toEqual([
        `${prefix}:g:presence:beats`,
        `${prefix}:g:presence:node:n1`,
        `${prefix}:t:t1:presence:u1`,
        `${prefix}:t:t1:presence:u1:conns`,
        `${prefix}:t:t1:presence:u1:devices`
      ]);
    } finally {
      await store.close();
      await dropPrefix(prefix);
      await releaseRedis(REDIS_URL);
    }
  });
});
