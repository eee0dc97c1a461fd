import { checkMessage, checkPresence, checkRoom, isPlainObject, validate, type ValidationIssue } from "../../protocols/pf2/pf2-schemas";

type Check = Parameters<typeof validate>[0];

/** The issue types a check reports, or [] when the value is valid. */
function issues(check: Check, value: object): string[] {
  return (validate(check, value) ?? []).map(issue => issue.type ?? "?");
}

const long = "x".repeat(129);
const max = "x".repeat(128);

describe("checkMessage", () => {
  it.each([
    ["minimal", { type: "chat", payload: { text: "hi" } }],
    ["null payload", { type: "chat", payload: null }],
    ["scalar payload", { type: "chat", payload: 42 }],
    ["array payload", { type: "chat", payload: [1, 2] }],
    [
      "every field",
      { type: "chat", interactionClass: "CLASS_A", recipientId: "u:2", roomId: "room-1", payload: "x", metadata: { a: 1 }, tenantId: "t1" }
    ],
    ["class B", { type: "x", interactionClass: "CLASS_B", payload: 1 }],
    ["class C", { type: "x", interactionClass: "CLASS_C", payload: 1 }],
    ["class D (refused later, by policy)", { type: "x", interactionClass: "CLASS_D", payload: 1 }],
    ["128-character ids", { type: max, recipientId: max, roomId: max, payload: 1 }],
    ["unicode ids", { type: "チャット", recipientId: "ユーザー😀", payload: 1 }]
  ])("accepts a %s message", (_label, value) => {
    expect(checkMessage(value)).toBe(true);
    expect(validate(checkMessage, value)).toBeUndefined();
  });

  it.each([
    ["missing type", { payload: 1 }, "required"],
    ["missing payload", { type: "chat" }, "required"],
    ["undefined payload", { type: "chat", payload: undefined }, "required"],
    ["numeric type", { type: 5, payload: 1 }, "string"],
    ["empty type", { type: "", payload: 1 }, "stringMin"],
    ["overlong type", { type: long, payload: 1 }, "stringMax"],
    ["numeric recipientId", { type: "x", recipientId: 5, payload: 1 }, "string"],
    ["object roomId", { type: "x", roomId: { $ne: null }, payload: 1 }, "string"],
    ["string metadata", { type: "x", payload: 1, metadata: "m" }, "object"],
    ["array metadata", { type: "x", payload: 1, metadata: [] }, "object"],
    ["numeric tenantId", { type: "x", payload: 1, tenantId: 7 }, "string"],
    ["unknown class", { type: "x", interactionClass: "CLASS_Z", payload: 1 }, "enumValue"],
    ["lower-case class", { type: "x", interactionClass: "class_a", payload: 1 }, "enumValue"],
    ["unknown field", { type: "x", payload: 1, extra: true }, "objectStrict"],
    ["prototype-looking field", { type: "x", payload: 1, constructor: "y" }, "objectStrict"],
    ["NUL in roomId", { type: "x", roomId: "a\u0000b", payload: 1 }, "stringPattern"],
    ["newline in recipientId", { type: "x", recipientId: "a\nb", payload: 1 }, "stringPattern"],
    ["DEL in roomId", { type: "x", roomId: "a\u007f", payload: 1 }, "stringPattern"],
    ["empty roomId", { type: "x", roomId: "", payload: 1 }, "stringMin"],
    ["overlong recipientId", { type: "x", recipientId: long, payload: 1 }, "stringMax"]
  ])("rejects a message with %s", (_label, value, type) => {
    expect(checkMessage(value)).not.toBe(true);
    expect(issues(checkMessage, value)).toContain(type);
  });

  it("reports every problem at once, reduced to field, message and type", () => {
    const result = validate(checkMessage, { type: 1, roomId: "a\tb", extra: 1 }) as ValidationIssue[];
    expect(result.map(issue => issue.type).sort()).toEqual(["objectStrict", "required", "string", "stringPattern"]);
    for (const issue of result) {
      expect(Object.keys(issue).sort()).toEqual(["field", "message", "type"]);
      expect(typeof issue.message).toBe("string");
    }
    expect(result.find(issue => issue.type === "stringPattern")?.field).toBe("roomId");
  });
});

describe("checkRoom", () => {
  it("accepts a room id, optionally with the caller's tenant", () => {
    expect(checkRoom({ roomId: "r1" })).toBe(true);
    expect(checkRoom({ roomId: "a:b", tenantId: "t1" })).toBe(true);
    expect(checkRoom({ roomId: max })).toBe(true);
  });

  it.each([
    ["missing roomId", {}, "required"],
    ["numeric roomId", { roomId: 1 }, "string"],
    ["array roomId", { roomId: ["r1"] }, "string"],
    ["empty roomId", { roomId: "" }, "stringMin"],
    ["overlong roomId", { roomId: long }, "stringMax"],
    ["control character", { roomId: "r\u001f1" }, "stringPattern"],
    ["unknown field", { roomId: "r1", userId: "u" }, "objectStrict"],
    ["numeric tenantId", { roomId: "r1", tenantId: 1 }, "string"]
  ])("rejects %s", (_label, value, type) => {
    expect(issues(checkRoom, value)).toContain(type);
  });
});

describe("checkPresence", () => {
  it.each(["online", "away", "offline"])("accepts status %s", status => {
    expect(checkPresence({ status })).toBe(true);
    expect(checkPresence({ status, metadata: { text: "brb" }, tenantId: "t1" })).toBe(true);
  });

  it.each([
    ["missing status", {}, "required"],
    ["unknown status", { status: "busy" }, "enumValue"],
    ["upper-case status", { status: "ONLINE" }, "enumValue"],
    ["numeric status", { status: 1 }, "enumValue"],
    ["string metadata", { status: "away", metadata: "brb" }, "object"],
    ["array metadata", { status: "away", metadata: ["brb"] }, "object"],
    ["unknown field", { status: "away", lastSeen: "now" }, "objectStrict"]
  ])("rejects %s", (_label, value, type) => {
    expect(issues(checkPresence, value)).toContain(type);
  });
});

describe("isPlainObject", () => {
  class Payload {
    roomId = "r1";
  }

  it("accepts object literals and null-prototype objects", () => {
    expect(isPlainObject({})).toBe(true);
    expect(isPlainObject({ roomId: "r1" })).toBe(true);
    expect(isPlainObject(Object.create(null))).toBe(true);
    expect(isPlainObject(JSON.parse('{"__proto__": {"x": 1}}'))).toBe(true);
  });

  it.each([
    ["an array", []],
    ["null", null],
    ["undefined", undefined],
    ["a string", "{}"],
    ["a number", 1],
    ["a class instance", new Payload()],
    ["a Date", new Date()],
    ["a Map", new Map()],
    ["a Buffer", Buffer.from("x")],
    ["an object inheriting from another", Object.create({ roomId: "r1" })],
    ["a function", () => ({})]
  ])("rejects %s", (_label, value: unknown) => {
    expect(isPlainObject(value)).toBe(false);
  });
});
