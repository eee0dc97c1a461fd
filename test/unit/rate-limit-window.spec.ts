import { retryAfter, slidingEstimate } from "../../stores/rate-limit/rate-limit-store";

/** Deterministic pseudo-random integers, so a failure always reproduces. */
function lcg(seed: number): (maxExclusive: number) => number {
  let state = seed >>> 0;
  return maxExclusive => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % maxExclusive;
  };
}

/**
 * Whether one more hit passes at `at`, with no other hit in between, given `previous` hits in the
 * window before `now`'s and `current` hits in `now`'s window: the rule every backend applies.
 */
function passesAt(previous: number, current: number, limit: number, now: number, at: number, windowMs: number): boolean {
  const windowNow = Math.floor(now / windowMs);
  const windowAt = Math.floor(at / windowMs);
  if (windowAt === windowNow) return slidingEstimate(previous, current + 1, at, windowMs) <= limit;
  if (windowAt === windowNow + 1) return slidingEstimate(current, 1, at, windowMs) <= limit;
  return 1 <= limit;
}

describe("sliding window arithmetic", () => {
  it("weights the previous window by the part that still overlaps", () => {
    expect(slidingEstimate(10, 3, 1000, 1000)).toBe(13);
    expect(slidingEstimate(10, 3, 1500, 1000)).toBe(8);
    expect(slidingEstimate(10, 3, 1750, 1000)).toBe(5.5);
    expect(slidingEstimate(0, 3, 1999, 1000)).toBe(3);
  });

  it("retryAfter points at the first instant a hit passes again (within float rounding)", () => {
    const random = lcg(20240601);
    let checked = 0;
    for (let i = 0; i < 5000; i++) {
      const windowMs = [7, 1000, 60_000][random(3)];
      const limit = 1 + random(40);
      const previous = random(limit + 1);
      const current = random(limit + 1);
      const now = (1000 + random(1000)) * windowMs + random(windowMs);
      if (passesAt(previous, current, limit, now, now, windowMs)) continue; // not refused: nothing to hint
      const wait = retryAfter(previous, current, limit, now, windowMs);
      const context = { previous, current, limit, now, windowMs, wait };
      expect({ ...context, positive: wait > 0 }).toEqual({ ...context, positive: true });
      // Exactly at the threshold the stores' floating-point estimate may land one ulp above the
      // limit, so the hit passes at `wait`, or at the latest 1 ms later; never sooner.
      const passes = passesAt(previous, current, limit, now, now + wait, windowMs) || passesAt(previous, current, limit, now, now + wait + 1, windowMs);
      expect({ ...context, passes }).toEqual({ ...context, passes: true });
      if (wait > 1) {
        expect({ ...context, earlier: passesAt(previous, current, limit, now, now + wait - 1, windowMs) }).toEqual({ ...context, earlier: false });
      }
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it("waits for a full window to fade into the next one", () => {
    // 10/10 used, nothing before: in the next window this one weighs 10*(1-e), so e >= 0.1.
    expect(retryAfter(0, 10, 10, 1000, 10_000)).toBe(10_000);
    // limit 1: the full window must be entirely over, i.e. the window after next.
    expect(retryAfter(0, 1, 1, 0, 1000)).toBe(2000);
  });
});
