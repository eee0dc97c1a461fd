import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, eventually, recorder, request } from "../helpers/client";
import { tokenFor } from "../helpers/tokens";

/**
 * A PF-2 client may name its message (`messageId`): sending it again — after an error, a timeout or
 * a reconnection, on any node — is idempotent for classes B and C: one entry in the log, the same
 * position in the acknowledgement, delivered again (recipients drop duplicates by messageId).
 */
describe("PF-2 messages with a client-chosen messageId", () => {
  let node: TestNode;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    node = await startNode();
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  afterAll(() => node.stop());

  async function client(tenantId: string, userId: string) {
    const { socket } = await connect(node.url, tokenFor(tenantId, userId));
    sockets.push(socket);
    return socket;
  }

  it("stores a resent message once and acknowledges it with the same position", async () => {
    const alice = await client("t1", "alice");
    const bob = await client("t1", "bob");
    const got = recorder(bob, "message");
    const message = { messageId: "alice-0001", type: "chat", recipientId: "bob", payload: { text: "hi" } };
    const first = await request(alice, "message", message);
    const again = await request(alice, "message", message);
    expect(first).toEqual({ messageId: "alice-0001", position: expect.any(String) });
    expect(again).toEqual(first);
    await eventually(() => got.length === 2, 3000, "the delivery and its repetition");
    expect(got.map(m => [m.messageId, m.position])).toEqual([
      ["alice-0001", first.position],
      ["alice-0001", first.position]
    ]);
    const log = await node.broker.call<{ events: Array<{ eventId: string }> }, object>("eventbus.read", { tenantId: "t1", userId: "bob" });
    expect(log.events.map(e => e.eventId)).toEqual(["alice-0001"]);
  });

  it("refuses a messageId already used for another message, by another sender or with other content", async () => {
    const alice = await client("t2", "alice");
    const mallory = await client("t2", "mallory");
    await request(alice, "message", { messageId: "shared-id", type: "chat", recipientId: "bob", payload: "original" });
    expect(await request(mallory, "message", { messageId: "shared-id", type: "chat", recipientId: "bob", payload: "original" })).toMatchObject({
      code: "INVALID_REQUEST",
      details: { messageId: "shared-id" }
    });
    expect(await request(alice, "message", { messageId: "shared-id", type: "chat", recipientId: "bob", payload: "changed" })).toMatchObject({ code: "INVALID_REQUEST" });
  });

  it("validates the messageId and keeps ids of tenants apart", async () => {
    const alice = await client("t3", "alice");
    expect(await request(alice, "message", { messageId: "bad id with spaces", type: "chat", recipientId: "bob", payload: 1 })).toMatchObject({ code: "INVALID_REQUEST" });
    const other = await client("t4", "alice");
    const a = await request(alice, "message", { messageId: "same-in-both", type: "chat", recipientId: "bob", payload: 1 });
    const b = await request(other, "message", { messageId: "same-in-both", type: "chat", recipientId: "bob", payload: 2 });
    expect(a.position).toEqual(expect.any(String));
    expect(b.position).toEqual(expect.any(String));
  });

  it("uses the messageId of class A messages too (not stored: nothing to deduplicate)", async () => {
    const alice = await client("t5", "alice");
    expect(await request(alice, "message", { messageId: "typing-1", type: "typing", interactionClass: "CLASS_A", recipientId: "bob", payload: null })).toEqual({ messageId: "typing-1" });
  });
});
