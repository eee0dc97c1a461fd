import { createConversationStore } from "../../stores/conversations";
import type { ConversationStore } from "../../stores/conversations/conversation-store";
import { REDIS_URL } from "../helpers/redis";
import { backends, keysUnder, requireRedis, useStore } from "./backends";
import { releaseRedis } from "../../stores/redis-connection";

for (const backend of backends) {
  describe(`ConversationStore contract (${backend.name})`, () => {
    const store = useStore<ConversationStore>(backend, "conversations", createConversationStore);

    it("creates a conversation once and merges members on a repeated create", async () => {
      expect(await store().create("t1", "c1", ["u2", "u1", "u1"])).toEqual({ created: true, members: ["u1", "u2"] });
      expect(await store().create("t1", "c1", ["u3"])).toEqual({ created: false, members: ["u1", "u2", "u3"] });
      expect(await store().members("t1", "c1")).toEqual(["u1", "u2", "u3"]);
    });

    it("knows an empty conversation from an unknown one", async () => {
      await store().create("t1", "empty", []);
      expect(await store().members("t1", "empty")).toEqual([]);
      expect(await store().members("t1", "never")).toBeUndefined();
      expect(await store().addMembers("t1", "never", ["u1"])).toBeUndefined();
      expect(await store().removeMembers("t1", "never", ["u1"])).toBeUndefined();
      expect(await store().isMember("t1", "never", "u1")).toBe(false);
    });

    it("adds and removes members, reporting only real changes", async () => {
      await store().create("t1", "c1", ["u1"]);
      expect((await store().addMembers("t1", "c1", ["u1", "u2", "u2"]))?.sort()).toEqual(["u2"]);
      expect(await store().isMember("t1", "c1", "u2")).toBe(true);
      expect((await store().removeMembers("t1", "c1", ["u2", "u9"]))?.sort()).toEqual(["u2"]);
      expect(await store().isMember("t1", "c1", "u2")).toBe(false);
      expect(await store().members("t1", "c1")).toEqual(["u1"]);
    });

    it("deletes a conversation and returns its former members", async () => {
      await store().create("t1", "c1", ["u1", "u2"]);
      expect(await store().delete("t1", "c1")).toEqual(["u1", "u2"]);
      expect(await store().members("t1", "c1")).toBeUndefined();
      expect(await store().delete("t1", "c1")).toEqual([]);
    });

    it("isolates tenants, even with look-alike identifiers", async () => {
      await store().create("t1", "c1", ["u1"]);
      await store().create("t1:x", "c1", ["u2"]);
      expect(await store().isMember("t2", "c1", "u1")).toBe(false);
      expect(await store().members("t2", "c1")).toBeUndefined();
      expect(await store().members("t1:x", "c1")).toEqual(["u2"]);
      expect(await store().isMember("t1", "c1", "u2")).toBe(false);
    });
  });
}

describe("RedisConversationStore writes to Redis", () => {
  it("keeps members under the tenant's keys", async () => {
    const client = await requireRedis();
    const prefix = `pf2test-conv-keys-${Date.now()}`;
    const store = createConversationStore({ redisUrl: REDIS_URL, redisKeyPrefix: prefix });
    try {
      await store.create("t1", "c1", ["u1"]);
      expect(await keysUnder(client, prefix)).toEqual([`${prefix}:t:t1:conv:c1`, `${prefix}:t:t1:conv:c1:members`]);
    } finally {
      await store.delete("t1", "c1");
      await store.close();
      await releaseRedis(REDIS_URL);
    }
  });
});
