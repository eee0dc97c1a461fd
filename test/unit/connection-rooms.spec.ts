import { NO_ROOMS, addRoom } from "../../protocols/connection";

describe("a connection's rooms", () => {
  it("share one empty set until the first join, then get a set of their own", () => {
    const a = { rooms: NO_ROOMS };
    const b = { rooms: NO_ROOMS };
    addRoom(a, "r1");
    addRoom(a, "r2");
    expect([...a.rooms]).toEqual(["r1", "r2"]);
    expect(a.rooms).not.toBe(NO_ROOMS);
    expect(b.rooms).toBe(NO_ROOMS);
    expect(NO_ROOMS.size).toBe(0);
  });

  it("refuse a direct add to the shared empty set, which would put every connection in that room", () => {
    expect(() => NO_ROOMS.add("r")).toThrow(/addRoom/);
    expect(NO_ROOMS.size).toBe(0);
  });
});
