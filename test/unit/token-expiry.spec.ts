import { cancelTokenExpiry, scheduleTokenExpiry } from "../../protocols/token-expiry";

describe("scheduleTokenExpiry", () => {
  beforeEach(() => jest.useFakeTimers({ now: new Date("2026-11-23T12:00:00.250Z") }));
  afterEach(() => jest.useRealTimers());

  const schedule = (exp: number | undefined) => {
    const onExpired = jest.fn();
    const target = { name: "connection" };
    scheduleTokenExpiry(exp, target, onExpired);
    return { onExpired, target, cancel: () => cancelTokenExpiry(exp, target) };
  };
  const nowSeconds = () => Date.now() / 1000;

  it("fires once with its target, after exp and at most about a second late, never before", () => {
    const exp = Math.floor(nowSeconds()) + 3;
    const { onExpired, target } = schedule(exp);
    jest.advanceTimersByTime(exp * 1000 - Date.now() - 1);
    expect(onExpired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1001);
    expect(onExpired).toHaveBeenCalledTimes(1);
    expect(onExpired).toHaveBeenCalledWith(target);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    jest.advanceTimersByTime(10_000);
    expect(onExpired).toHaveBeenCalledTimes(1);
  });

  it("keeps connections expiring in the same second apart, and a cancelled one never fires", () => {
    const exp = Math.floor(nowSeconds()) + 2;
    const first = schedule(exp);
    const second = schedule(exp);
    const later = schedule(exp + 5);
    second.cancel();
    jest.advanceTimersByTime(3000);
    expect(first.onExpired).toHaveBeenCalledTimes(1);
    expect(second.onExpired).not.toHaveBeenCalled();
    expect(later.onExpired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(5000);
    expect(later.onExpired).toHaveBeenCalledTimes(1);
  });

  it("shares one handler between targets, each called with its own", () => {
    const exp = Math.floor(nowSeconds()) + 1;
    const onExpired = jest.fn();
    const a = { id: "a" };
    const b = { id: "b" };
    scheduleTokenExpiry(exp, a, onExpired);
    scheduleTokenExpiry(exp, b, onExpired);
    jest.advanceTimersByTime(2000);
    expect(onExpired.mock.calls).toEqual([[a], [b]]);
  });

  it("fires at once for a token already expired, unless cancelled first; does nothing without exp", () => {
    const past = schedule(Math.floor(nowSeconds()) - 10);
    const cancelled = schedule(Math.floor(nowSeconds()) - 10);
    cancelled.cancel();
    const none = schedule(undefined);
    none.cancel();
    expect(past.onExpired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(0);
    expect(past.onExpired).toHaveBeenCalledTimes(1);
    expect(cancelled.onExpired).not.toHaveBeenCalled();
    jest.advanceTimersByTime(60_000);
    expect(none.onExpired).not.toHaveBeenCalled();
  });
});
