/**
 * Cross-node delivery: one Moleculer broadcast per message (what the gateway does) versus one
 * request/response call per message, between two brokers over the real NATS server.
 * Both sides run in the same invocation, interleaved, several rounds; medians and the ratio are
 * printed and written to bench/results/delivery-hop.json.
 *
 *   npm run bench:delivery            (NATS on 127.0.0.1:4222; BENCH_MESSAGES, BENCH_ROUNDS to change)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { ServiceBroker, type Context } from "moleculer";

const NATS = process.env.BENCH_NATS_URL ?? "nats://127.0.0.1:4222";
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALL_CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 100);

const payload = {
  tenantId: "t1",
  target: { roomId: "room-1" },
  event: "message",
  payload: { messageId: randomUUID(), type: "chat.message", senderId: "alice", payload: { text: "hello world" }, timestamp: new Date().toISOString() }
};

async function main() {
  const namespace = `bench-${randomUUID().slice(0, 8)}`;
  let received = 0;
  let onReceived: () => void = () => undefined;
  const sender = new ServiceBroker({ logger: false, transporter: NATS, namespace, nodeID: "sender" });
  const receiver = new ServiceBroker({ logger: false, transporter: NATS, namespace, nodeID: "receiver" });
  receiver.createService({
    name: "gw",
    actions: { deliver: (_ctx: Context) => (++received, true) },
    events: { "gw.deliver": { handler: () => { received += 1; if (received === MESSAGES) onReceived(); } } }
  });
  await Promise.all([sender.start(), receiver.start()]);
  await sender.waitForServices("gw", 10_000);

  async function viaBroadcast(): Promise<number> {
    received = 0;
    const done = new Promise<void>(resolve => (onReceived = resolve));
    const started = process.hrtime.bigint();
    for (let i = 0; i < MESSAGES; i++) {
      void sender.broadcast("gw.deliver", payload, "gw");
      if (i % 1000 === 999) await new Promise(setImmediate);
    }
    await done;
    return MESSAGES / (Number(process.hrtime.bigint() - started) / 1e9);
  }

  async function viaCall(): Promise<number> {
    received = 0;
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CALL_CONCURRENCY }, async () => {
        while (next < MESSAGES) {
          next += 1;
          await sender.call("gw.deliver", payload);
        }
      })
    );
    return MESSAGES / (Number(process.hrtime.bigint() - started) / 1e9);
  }

  const broadcast: number[] = [];
  const call: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    broadcast.push(await viaBroadcast());
    call.push(await viaCall());
  }
  await Promise.all([sender.stop(), receiver.stop()]);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const result = {
    scenario: "cross-node delivery over NATS",
    messages: MESSAGES,
    rounds: ROUNDS,
    callConcurrency: CALL_CONCURRENCY,
    broadcastPerSecond: Math.round(median(broadcast)),
    callPerSecond: Math.round(median(call)),
    ratioBroadcastToCall: Number((median(broadcast) / median(call)).toFixed(2)),
    samples: { broadcast: broadcast.map(Math.round), call: call.map(Math.round) }
  };
  console.log(`| path | msgs/s (median of ${ROUNDS}) |\n|---|---|\n| broadcast (gateway.deliver) | ${result.broadcastPerSecond} |\n| broker.call per message | ${result.callPerSecond} |\n| ratio | ${result.ratioBroadcastToCall}x |`);
  const dir = path.resolve(__dirname, "../../bench/results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "delivery-hop.json"), JSON.stringify(result, null, 2));
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
