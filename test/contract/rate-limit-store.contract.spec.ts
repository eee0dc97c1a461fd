import { createRateLimitStore } from "../../stores/rate-limit";
import type { RateLimitResult, RateLimitStore } from "../../stores/rate-limit/rate-limit-store";
import { MemoryRateLimitStore } from "../../stores/rate-limit/rate-limit-store.memory";
import { RedisRateLimitStore } from "../../stores/rate-limit/rate-limit-store.redis";
import { releaseRedis } from "../../stores/redis-connection";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";
import { backends, keysUnder, requireRedis, useStore } from "./backends";

/*
 * Every `now` is explicit, so the sliding window is tested without sleeping. The window is long
 * (10 s) because Redis counters expire in real time after two windows.
 */
const W = 10_000;
/** Start of a window, far from epoch 0. */
const BASE = 170_000 * W;

async function hits(store: RateLimitStore, count: number, tenantId: string, key: string, limit: number, now: number): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (let i = 0; i < count; i++) results.push(await store.consume(tenantId, key, limit, W, now));
  return results;
}

const allowedCount = (results: RateLimitResult[]) => results.filter(r => r.allowed).length;

for (const backend of backends) {
  describe(`RateLimitStore contract (${backend.name})`, () => {
    const store = useStore<RateLimitStore>(backend, "ratelimit", createRateLimitStore);

    describe("fixed budget within one window", () => {
      it("allows exactly `limit` hits, counting down `remaining`, then refuses", async () => {
        const results = await hits(store(), 5, "t1", "k", 5, BASE + 100);
        expect(results).toEqual([4, 3, 2, 1, 0].map(remaining => ({ allowed: true, remaining, retryAfterMs: 0 })));

        const refused = await store().consume("t1", "k", 5, W, BASE + 200);
        expect(refused.allowed).toBe(false);
        expect(refused.remaining).toBe(0);
        expect(refused.retryAfterMs).toBeGreaterThan(0);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(2 * W);
      });

      it("keeps refusing for the rest of the window", async () => {
        await hits(store(), 3, "t1", "k", 3, BASE);
        const later = await hits(store(), 5, "t1", "k", 3, BASE + W - 1);
        expect(allowedCount(later)).toBe(0);
        for (const result of later) expect(result.retryAfterMs).toBeGreaterThan(0);
      });

      it("does not count refused hits", async () => {
        await hits(store(), 5, "t1", "k", 5, BASE);
        expect(allowedCount(await hits(store(), 20, "t1", "k", 5, BASE + 100))).toBe(0);
        // Halfway through the next window the previous one weighs 5 * 0.5 = 2.5: if the 20 refused
        // hits had counted it would weigh 12.5 and nothing would pass.
        const next = await hits(store(), 5, "t1", "k", 5, BASE + 1.5 * W);
        expect(next.map(r => r.allowed)).toEqual([true, true, false, false, false]);
      });

      it("starts afresh after a whole idle window", async () => {
        await hits(store(), 4, "t1", "k", 4, BASE);
        expect(allowedCount(await hits(store(), 5, "t1", "k", 4, BASE + 2 * W))).toBe(4);
      });
    });

    describe("sliding window", () => {
      it("weights the previous window by how much of it still overlaps", async () => {
        expect(allowedCount(await hits(store(), 10, "t1", "k", 10, BASE))).toBe(10);

        // Right at the next window's start the previous one still weighs fully.
        const atEdge = await store().consume("t1", "k", 10, W, BASE + W);
        expect(atEdge).toMatchObject({ allowed: false, remaining: 0 });
        expect(atEdge.retryAfterMs).toBeGreaterThan(0);

        // Halfway: estimate = 10 * 0.5 + current, so only 5 more hits pass.
        const half = await hits(store(), 7, "t1", "k", 10, BASE + 1.5 * W);
        expect(half.slice(0, 5)).toEqual([4, 3, 2, 1, 0].map(remaining => ({ allowed: true, remaining, retryAfterMs: 0 })));
        expect(half.slice(5).map(r => r.allowed)).toEqual([false, false]);
        expect(half[5].retryAfterMs).toBeGreaterThan(0);
      });

      it("lets more through as the previous window fades", async () => {
        await hits(store(), 10, "t1", "k", 10, BASE);
        // 90% through the next window: 10 * 0.1 + current + 1 <= 10 allows 9 hits.
        expect(allowedCount(await hits(store(), 12, "t1", "k", 10, BASE + 1.9 * W))).toBe(9);
      });

      it("bounds a burst across a window edge to the limit", async () => {
        await hits(store(), 10, "t1", "k", 10, BASE + W - 1);
        expect(allowedCount(await hits(store(), 10, "t1", "k", 10, BASE + W))).toBe(0);
      });

      it("gives a retry delay after which a hit passes (and not sooner)", async () => {
        // Full window, previous empty: free again once this window has faded enough in the next one.
        await hits(store(), 10, "t1", "full", 10, BASE);
        const full = await store().consume("t1", "full", 10, W, BASE + 1000);
        expect(full.allowed).toBe(false);
        const retryAt = BASE + 1000 + full.retryAfterMs;
        expect((await store().consume("t1", "full", 10, W, retryAt - 1)).allowed).toBe(false);
        expect((await store().consume("t1", "full", 10, W, retryAt)).allowed).toBe(true);

        // Refused on the previous window's weight alone: free again within this window.
        await hits(store(), 10, "t1", "fading", 10, BASE);
        await hits(store(), 5, "t1", "fading", 10, BASE + 1.5 * W);
        const fading = await store().consume("t1", "fading", 10, W, BASE + 1.5 * W);
        expect(fading.allowed).toBe(false);
        expect(fading.retryAfterMs).toBe(1000);
        const fadingAt = BASE + 1.5 * W + fading.retryAfterMs;
        expect((await store().consume("t1", "fading", 10, W, fadingAt - 1)).allowed).toBe(false);
        expect((await store().consume("t1", "fading", 10, W, fadingAt)).allowed).toBe(true);
      });
    });

    describe("independence", () => {
      it("counts separate keys separately", async () => {
        await hits(store(), 3, "t1", "a", 3, BASE);
        expect((await store().consume("t1", "a", 3, W, BASE)).allowed).toBe(false);
        expect(allowedCount(await hits(store(), 3, "t1", "b", 3, BASE))).toBe(3);
      });

      it("counts the same key of two tenants separately", async () => {
        await hits(store(), 3, "t1", "conn:c1:message", 3, BASE);
        expect((await store().consume("t1", "conn:c1:message", 3, W, BASE)).allowed).toBe(false);
        expect(allowedCount(await hits(store(), 4, "t2", "conn:c1:message", 3, BASE))).toBe(3);
      });

      it("never confuses identifiers containing ':'", async () => {
        await hits(store(), 2, "a", "b:c", 2, BASE);
        expect((await store().consume("a", "b:c", 2, W, BASE)).allowed).toBe(false);
        expect(allowedCount(await hits(store(), 2, "a:b", "c", 2, BASE))).toBe(2);
        expect(allowedCount(await hits(store(), 2, "a", "b", 2, BASE))).toBe(2);
      });
    });

    describe("reset", () => {
      it("forgets a key (with the window it was counted with)", async () => {
        await hits(store(), 3, "t1", "k", 3, BASE);
        await hits(store(), 3, "t1", "other", 3, BASE);
        await store().reset("t1", "k", W, BASE + 10);
        expect(allowedCount(await hits(store(), 4, "t1", "k", 3, BASE + 20))).toBe(3);
        expect((await store().consume("t1", "other", 3, W, BASE + 20)).allowed).toBe(false);
      });

      it("also forgets the previous window's weight", async () => {
        await hits(store(), 10, "t1", "k", 10, BASE);
        await store().reset("t1", "k", W, BASE + 1.5 * W);
        expect(allowedCount(await hits(store(), 12, "t1", "k", 10, BASE + 1.5 * W))).toBe(10);
      });

      it("leaves the same key of another tenant alone", async () => {
        await hits(store(), 2, "t1", "k", 2, BASE);
        await hits(store(), 2, "t2", "k", 2, BASE);
        await store().reset("t1", "k", W, BASE);
        expect((await store().consume("t1", "k", 2, W, BASE)).allowed).toBe(true);
        expect((await store().consume("t2", "k", 2, W, BASE)).allowed).toBe(false);
      });
    });

    describe("concurrency", () => {
      it("allows exactly `limit` of many parallel hits", async () => {
        const results = await Promise.all(Array.from({ length: 50 }, () => store().consume("t1", "burst", 20, W, BASE + 5)));
        expect(allowedCount(results)).toBe(20);
        expect(results.filter(r => !r.allowed).every(r => r.remaining === 0 && r.retryAfterMs > 0)).toBe(true);
        expect(sortedRemaining(results)).toEqual(Array.from({ length: 20 }, (_, i) => i));
        expect((await store().consume("t1", "burst", 20, W, BASE + 6)).allowed).toBe(false);
      });
    });
  });
}

function sortedRemaining(results: RateLimitResult[]): number[] {
  return results
    .filter(r => r.allowed)
    .map(r => r.remaining)
    .sort((a, b) => a - b);
}

describe("MemoryRateLimitStore specifics", () => {
  it("reset without a window forgets the key", async () => {
    const store = new MemoryRateLimitStore();
    try {
      await hits(store, 2, "t1", "k", 2, BASE);
      expect((await store.consume("t1", "k", 2, W, BASE)).allowed).toBe(false);
      await store.reset("t1", "k");
      expect((await store.consume("t1", "k", 2, W, BASE)).allowed).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe("createRateLimitStore resolver", () => {
  it("returns the in-process store without REDIS_URL", async () => {
    const store = createRateLimitStore({ redisUrl: undefined, redisKeyPrefix: "unused" });
    expect(store).toBeInstanceOf(MemoryRateLimitStore);
    await store.close();
  });

  it("returns a Redis store whose counters live under its prefix and expire", async () => {
    const client = await requireRedis();
    const prefix = uniquePrefix("ratelimit-resolver");
    const store = createRateLimitStore({ redisUrl: REDIS_URL, redisKeyPrefix: prefix });
    try {
      expect(store).toBeInstanceOf(RedisRateLimitStore);
      await store.consume("t1", "k", 5, W, BASE + 1);
      const window = BASE / W;
      expect(await keysUnder(client, prefix)).toEqual([`${prefix}:t:t1:ratelimit:k:${window}`]);
      const ttl = await client.pttl(`${prefix}:t:t1:ratelimit:k:${window}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(2 * W);
      await store.reset("t1", "k", W, BASE + 1);
      expect(await keysUnder(client, prefix)).toEqual([]);
    } finally {
      await store.close();
      await dropPrefix(prefix);
      await releaseRedis(REDIS_URL);
    }
  });
});
