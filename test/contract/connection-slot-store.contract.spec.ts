import { createConnectionSlotStore, type ConnectionSlotStore } from "../../stores/connection-slots";
import { backends, useStore } from "./backends";

const TTL = 60_000;
/** Far from epoch 0 and close to real time, so Redis keys (which expire in real time) outlive the test. */
const NOW = Date.now();
const ref = (connectionId: string, userId = "u1", tenantId = "t1") => ({ tenantId, userId, connectionId });

for (const backend of backends) {
  describe(`ConnectionSlotStore contract (${backend.name})`, () => {
    const store = useStore<ConnectionSlotStore>(backend, "slots", createConnectionSlotStore);

    it("grants up to `limit` slots per user, then refuses, counting live slots", async () => {
      for (let i = 1; i <= 3; i++) expect(await store().acquire(ref(`c${i}`), 3, TTL, NOW)).toEqual({ allowed: true, count: i });
      expect(await store().acquire(ref("c4"), 3, TTL, NOW)).toEqual({ allowed: false, count: 3 });
      expect(await store().count("t1", "u1", NOW)).toBe(3);
    });

    it("is idempotent per connection id and frees a released slot", async () => {
      await store().acquire(ref("c1"), 2, TTL, NOW);
      await store().acquire(ref("c2"), 2, TTL, NOW);
      expect(await store().acquire(ref("c2"), 2, TTL, NOW)).toEqual({ allowed: true, count: 2 });
      await store().release(ref("c1"));
      await store().release(ref("nope"));
      expect(await store().acquire(ref("c3"), 2, TTL, NOW)).toEqual({ allowed: true, count: 2 });
      expect(await store().acquire(ref("c4"), 2, TTL, NOW)).toMatchObject({ allowed: false });
    });

    it("keeps users and tenants apart", async () => {
      await store().acquire(ref("c1", "u1", "t1"), 1, TTL, NOW);
      expect((await store().acquire(ref("c2", "u2", "t1"), 1, TTL, NOW)).allowed).toBe(true);
      expect((await store().acquire(ref("c3", "u1", "t2"), 1, TTL, NOW)).allowed).toBe(true);
      expect((await store().acquire(ref("c4", "u1", "t1"), 1, TTL, NOW)).allowed).toBe(false);
    });

    it("frees slots that were not refreshed within the TTL, and only those", async () => {
      await store().acquire(ref("old"), 2, 1000, NOW);
      await store().acquire(ref("kept"), 2, 1000, NOW);
      await store().refresh([ref("kept")], 1000, NOW + 900);
      expect(await store().count("t1", "u1", NOW + 1500)).toBe(1);
      expect(await store().acquire(ref("new"), 2, 1000, NOW + 1500)).toEqual({ allowed: true, count: 2 });
      expect(await store().acquire(ref("more"), 2, 1000, NOW + 1500)).toMatchObject({ allowed: false });
    });

    it("does not bring back an expired or released slot on refresh", async () => {
      await store().acquire(ref("gone"), 5, 1000, NOW);
      await store().acquire(ref("freed"), 5, 1000, NOW);
      await store().release(ref("freed"));
      await store().refresh([ref("gone"), ref("freed")], 1000, NOW + 2000);
      expect(await store().count("t1", "u1", NOW + 2000)).toBe(0);
    });

    it("never grants more than `limit` to concurrent acquirers", async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store().acquire(ref(`c${i}`), 5, TTL, NOW)));
      expect(results.filter(r => r.allowed)).toHaveLength(5);
      expect(await store().count("t1", "u1", NOW)).toBe(5);
    });
  });
}
