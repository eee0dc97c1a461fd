import { isoNow } from "../../lib/iso-now";

describe("isoNow", () => {
  it("formats the given millisecond as Date#toISOString does, again after the millisecond changes", () => {
    for (const ms of [0, 1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_001, 1_700_000_000_000, Date.UTC(2026, 11, 3, 23, 59, 59, 999)]) {
      expect(isoNow(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it("defaults to the current time", () => {
    const before = Date.now();
    const at = Date.parse(isoNow());
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });
});
