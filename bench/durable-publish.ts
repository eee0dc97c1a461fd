/**
 * The stream's hot paths on the Redis backend, each side by side with a baseline in the same run:
 *
 * 1. Durable publish: `eventbus.publish` (validation, tenant rate limit, idempotent append through
 *    one Lua script, realtime broadcast) against a raw ioredis XADD pipeline to the same Redis.
 * 2. Catch-up: a Socket.IO client resuming with `auth.lastEventId` behind BENCH_CATCHUP events,
 *    against a plain XRANGE read of the same stream (the floor any replay is bounded by).
 *
 *   npm run bench:stream      (Redis on 127.0.0.1:6379; BENCH_EVENTS, BENCH_ROUNDS, BENCH_CATCHUP to change)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import Redis from "ioredis";
import jwt from "jsonwebtoken";
import { ServiceBroker, type Service } from "moleculer";
import { io } from "socket.io-client";
import { loadConfig } from "../lib/config";
import { createEventBusService } from "../services/eventbus.service";
import { createGatewayService } from "../services/gateway.service";
import { createPresenceService } from "../services/presence.service";
import { createRoomsService } from "../services/rooms.service";

const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const EVENTS = Number(process.env.BENCH_EVENTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const CATCHUP = Number(process.env.BENCH_CATCHUP ?? 100_000);
const SECRET = "bench-secret";
const prefix = `pf2bench-${randomUUID().slice(0, 8)}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function sampleEvent(i: number) {
  return { eventType: "order.placed", payload: { orderId: `o-${i}`, amount: 1000, currency: "NGN" }, metadata: { source: "bench" } };
}

async function main() {
  const config = loadConfig({}, {
    jwtSecret: SECRET,
    wsPort: 0,
    wsHost: "127.0.0.1",
    redisUrl: REDIS_URL,
    redisKeyPrefix: prefix,
    eventBusPublishRateLimit: 1_000_000_000,
    eventBusMaxEventsPerTenant: Math.max(CATCHUP * 2, 200_000),
    wsMessageRateLimit: 1_000_000_000
  });
  const broker = new ServiceBroker({ logger: false });
  for (const factory of [createGatewayService, createPresenceService, createRoomsService, createEventBusService]) broker.createService(factory(config));
  await broker.start();
  const gateway = broker.getLocalService("gateway") as unknown as Service & { server: Server };
  const url = `http://127.0.0.1:${(gateway.server.address() as AddressInfo).port}`;
  const redis = new Redis(REDIS_URL);

  async function productPublish(round: number): Promise<number> {
    const tenantId = `pub-${round}`;
    let next = 0;
    const start = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < EVENTS) {
          const i = next++;
          await broker.call("eventbus.publish", { tenantId, ...sampleEvent(i) });
        }
      })
    );
    return EVENTS / seconds(start);
  }

  async function rawXadd(round: number): Promise<number> {
    const key = `${prefix}:raw:${round}`;
    const start = process.hrtime.bigint();
    for (let i = 0; i < EVENTS; i += CONCURRENCY) {
      const pipeline = redis.pipeline();
      for (let j = i; j < Math.min(EVENTS, i + CONCURRENCY); j++) {
        pipeline.xadd(key, "*", "e", JSON.stringify({ eventId: randomUUID(), tenantId: "raw", timestamp: new Date().toISOString(), schemaVersion: "1.0", ...sampleEvent(j) }));
      }
      await pipeline.exec();
    }
    return EVENTS / seconds(start);
  }

  const publish: number[] = [];
  const xadd: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    publish.push(await productPublish(round));
    xadd.push(await rawXadd(round));
  }

  // Catch-up: one tenant with CATCHUP events behind the client's cursor.
  const tenantId = "catchup";
  const first = await broker.call<{ position: string }, object>("eventbus.publish", { tenantId, ...sampleEvent(-1) });
  for (let i = 0; i < CATCHUP; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, CATCHUP - i) }, (_, k) => broker.call("eventbus.publish", { tenantId, ...sampleEvent(i + k) })));
  }
  const token = jwt.sign({ tenantId, userId: "reader" }, SECRET);
  const resume: number[] = [];
  const xrange: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    resume.push(
      await new Promise<number>((resolve, reject) => {
        let received = 0;
        const start = process.hrtime.bigint();
        const socket = io(url, { auth: { token, lastEventId: first.position }, transports: ["websocket"], reconnection: false, forceNew: true });
        socket.on("event", () => {
          received += 1;
          if (received === CATCHUP) {
            socket.close();
            resolve(CATCHUP / seconds(start));
          }
        });
        socket.on("connect_error", reject);
        setTimeout(() => reject(new Error(`catch-up stalled at ${received}/${CATCHUP}`)), 300_000).unref();
      })
    );
    const streamKey = `${prefix}:t:${tenantId}:events`;
    const start = process.hrtime.bigint();
    let cursor = "-";
    let read = 0;
    for (;;) {
      const entries = (await redis.xrange(streamKey, cursor, "+", "COUNT", 500)) as Array<[string, string[]]>;
      const fresh = cursor === "-" ? entries : entries.slice(1);
      for (const [, fields] of fresh) JSON.parse(fields[1]);
      read += fresh.length;
      if (entries.length < 500) break;
      cursor = entries[entries.length - 1][0];
    }
    xrange.push(read / seconds(start));
  }

  const result = {
    machine: "2 cores, load generator in the same process",
    events: EVENTS,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    durablePublish: { productPerSecond: Math.round(median(publish)), rawXaddPipelinePerSecond: Math.round(median(xadd)), ratio: Number((median(publish) / median(xadd)).toFixed(2)), samples: { publish, xadd } },
    catchUp: { events: CATCHUP, resumePerSecond: Math.round(median(resume)), rawXrangePerSecond: Math.round(median(xrange)), ratio: Number((median(resume) / median(xrange)).toFixed(2)), samples: { resume, xrange } }
  };
  console.log(
    [
      `| scenario (median of ${ROUNDS}) | product | baseline | ratio |`,
      "|---|---|---|---|",
      `| durable publish, events/s | ${result.durablePublish.productPerSecond} (eventbus.publish) | ${result.durablePublish.rawXaddPipelinePerSecond} (XADD pipeline) | ${result.durablePublish.ratio} |`,
      `| catch-up of ${CATCHUP} events, events/s | ${result.catchUp.resumePerSecond} (Socket.IO resume) | ${result.catchUp.rawXrangePerSecond} (XRANGE read) | ${result.catchUp.ratio} |`
    ].join("\n")
  );
  const dir = path.resolve(__dirname, "../../bench/results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "durable-publish.json"), JSON.stringify(result, null, 2));

  // Leave Redis as we found it.
  let scan = "0";
  do {
    const [nextCursor, keys] = await redis.scan(scan, "MATCH", `${prefix}:*`, "COUNT", 1000);
    scan = nextCursor;
    if (keys.length > 0) await redis.del(...keys);
  } while (scan !== "0");
  redis.disconnect();
  await broker.stop();
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
