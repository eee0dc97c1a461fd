import fc from "fast-check";
import type { Service } from "moleculer";
import type { Socket } from "socket.io-client";
import { startNode, type TestNode } from "../helpers/node";
import { connect, firstEvent, socketTo } from "../helpers/client";
import { send, seed002ErrorProblem, seedErrorProblem, SEED_STATUS, type Answer } from "../helpers/http";
import { tokenFor } from "../helpers/tokens";
import { ruleOf } from "../helpers/action-params";

/**
 * Property-based fuzzing (fast-check) of every REST route of the gateway and every client event of
 * the Socket.IO protocols (PF-2 on "/", the seed 004 feed): whatever arrives, the answer is a
 * documented status or error code, never a 500 / INTERNAL_ERROR, and the server stays up.
 * Runs are bounded (RUNS per route or event) so the suite stays fast; a failure prints the
 * shrunk counter-example and the seed to replay it.
 */
const RUNS = 100;
const TENANT = "fuzz-t";
const ERROR_CODES = Object.keys(SEED_STATUS);
/** Statuses a REST route may answer with when nothing is broken (no 500, no 503 on memory stores). */
const DOCUMENTED_STATUSES = new Set([200, 201, 400, 401, 403, 404, 413, 422, 429]);

interface RestRoute {
  method: string;
  /** Path with `:param` placeholders, route prefix included. */
  path: string;
  action: string;
  /** Field names of the action's params schema. */
  fields: string[];
  schema: Record<string, unknown>;
}

/** Header-safe printable ASCII. */
const printable = (maxLength = 60) => fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()*+,;=:@%/?#[]{}<>\"\\^`| "), maxLength });
/** Any unicode text, lone surrogates and control characters included. */
const anyText = (maxLength = 40) => fc.string({ unit: "binary", maxLength });
const anyJson = fc.jsonValue({ maxDepth: 3 });
/** Values of every JSON type, biased toward the edges of the schemas (empty, long, wrong type). */
const fieldValue = fc.oneof(
  anyJson,
  anyText(),
  fc.constantFrom("", " ", "x".repeat(129), "x".repeat(3000), "t1", TENANT, "CLASS_A", "CLASS_D", "online", "away", "0", "-1", "1e400", "NaN", "null", "true", "__proto__", "constructor", "0.5"),
  fc.integer(),
  fc.constantFrom(null, true, false, [], {}, -0, 1e308, Number.MAX_SAFE_INTEGER)
);

/**
 * Values shaped by a fastest-validator rule (right type, around its bounds), so the fuzzer gets
 * past validation into the handlers, mixed with junk of any type.
 */
function ruleArb(raw: unknown, depth = 0): fc.Arbitrary<unknown> {
  const { type, raw: rule } = ruleOf(raw);
  const min = typeof rule.min === "number" ? rule.min : 0;
  const max = typeof rule.max === "number" ? rule.max : undefined;
  let shaped: fc.Arbitrary<unknown>;
  switch (type) {
    case "string":
      shaped = fc.oneof(
        fc.string({ minLength: Math.max(min, 1), maxLength: Math.min(max ?? 24, 24) }),
        fc.constantFrom("x", TENANT, "fuzzer-user", "fuzzer-admin", "room-1", "a:b", "%", "ユーザー😀")
      );
      break;
    case "number":
      shaped = fc.oneof(fc.integer({ min: Math.max(min, -5), max: Math.min(max ?? 1000, 1000) }), fc.double({ noNaN: true, min: 0, max: 2 }));
      break;
    case "boolean":
      shaped = fc.boolean();
      break;
    case "enum":
      shaped = fc.constantFrom(...((rule.values as unknown[] | undefined) ?? ["x"]));
      break;
    case "equal":
      shaped = fc.constant(rule.value);
      break;
    case "date":
      shaped = fc.date({ noInvalidDate: true }).map(d => d.toISOString());
      break;
    case "array":
      shaped = depth > 2 ? fc.constant([]) : fc.array(rule.items === undefined ? anyJson : ruleArb(rule.items, depth + 1), { maxLength: 6 });
      break;
    case "object":
      shaped =
        depth > 2 || !rule.props
          ? fc.dictionary(anyText(8), anyJson, { maxKeys: 3 })
          : fc.record(Object.fromEntries(Object.entries(rule.props as Record<string, unknown>).map(([k, r]) => [k, ruleArb(r, depth + 1)])), { requiredKeys: [] });
      break;
    default:
      shaped = anyJson;
  }
  return fc.oneof({ weight: 4, arbitrary: shaped }, { weight: 1, arbitrary: fieldValue });
}

/** A params-shaped object: each field shaped by its rule (some left out), odd extra fields, or prototype-pollution attempts. */
function objectFor(fields: string[], schema: Record<string, unknown> = {}) {
  // The caller's own tenant most of the time, so the guard lets the request through to the handler.
  const tenantArb = fc.oneof({ weight: 4, arbitrary: fc.constant(TENANT) }, { weight: 1, arbitrary: fieldValue });
  const shaped = Object.fromEntries(fields.map(f => [f, f === "tenantId" ? tenantArb : schema[f] === undefined ? fieldValue : ruleArb(schema[f])]));
  const required = fields.filter(f => schema[f] !== undefined && !ruleOf(schema[f]).optional);
  return fc.oneof(
    { weight: 4, arbitrary: fc.record(shaped, { requiredKeys: required }) },
    { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...(fields.length > 0 ? fields : ["x"])), fieldValue, { maxKeys: fields.length + 1 }) },
    { weight: 1, arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...fields, "__proto__", "constructor", "tenantId", "$$strict"), anyText(12)), fieldValue, { maxKeys: 6 }) },
    { weight: 1, arbitrary: anyJson }
  );
}

function segment() {
  return fc.oneof(
    anyText(40).map(s => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, "?"))),
    fc.string({ unit: fc.constantFrom(..."abcXYZ019-_.~%2F%00"), maxLength: 30 }),
    fc.constantFrom("..", ".", "%", "%zz", "%E0%A4%A", "%2e%2e", "a%00b", "x".repeat(300), "%C0%AF")
  );
}

describe("fuzzing every REST route and socket event", () => {
  let node: TestNode;
  let routes: RestRoute[];

  beforeAll(async () => {
    node = await startNode({ config: { apiRateLimit: 1_000_000, pollRateLimit: 1_000_000, wsMessageRateLimit: 1_000_000, eventBusPublishRateLimit: 1_000_000 } });
    const gateway = node.broker.getLocalService("gateway") as Service;
    const actions = new Map(node.broker.registry.getActionList({ onlyLocal: true, skipInternal: true, withEndpoints: false }).map(a => [a.name, a.action]));
    routes = (gateway.settings.routes as Array<{ path: string; aliases?: Record<string, string> }>).flatMap(route =>
      Object.entries(route.aliases ?? {}).map(([alias, action]) => {
        const [method, path] = alias.split(/\s+/);
        const schema = (actions.get(action)?.params ?? {}) as Record<string, unknown>;
        return { method, path: `${route.path}${path === "/" ? "" : path}`, action, fields: Object.keys(schema), schema };
      })
    );
  });
  afterAll(() => node.stop());

  function headersArb() {
    const role = fc.constantFrom("user", "admin", "service", "super_admin", "moderator");
    return fc.oneof(
      { weight: 4, arbitrary: role.map(r => ({ Authorization: `Bearer ${tokenFor(TENANT, `fuzzer-${r}`, { role: r })}`, "X-Tenant-ID": TENANT })) },
      { weight: 1, arbitrary: role.map(r => ({ "X-User-Token": tokenFor(TENANT, "fuzzer", { role: r }), "X-TENANT-ID": TENANT })) },
      { weight: 1, arbitrary: printable(12).map(t => ({ Authorization: `Bearer ${tokenFor(TENANT, "fuzzer")}`, "X-Tenant-ID": t })) },
      { weight: 1, arbitrary: fc.constant({ Authorization: `Bearer ${tokenFor(TENANT, "fuzzer")}` }) },
      { weight: 1, arbitrary: printable(80).map(t => ({ Authorization: `Bearer ${t}`, "X-Tenant-ID": TENANT })) },
      { weight: 1, arbitrary: fc.constant({}) }
    );
  }

  function bodyArb(route: RestRoute) {
    return fc.oneof(
      { weight: 6, arbitrary: objectFor(route.fields, route.schema).map(v => JSON.stringify(v)) },
      { weight: 1, arbitrary: anyText(200) },
      { weight: 1, arbitrary: fc.constantFrom("", "{", "[1,2", "null", "{\"__proto__\": {\"polluted\": true}}", "{\"a\":".repeat(200)) },
      { weight: 1, arbitrary: fc.constant(undefined) }
    );
  }

  /** Every problem with one answer; empty when it is documented. */
  function problems(answer: Answer, method = "GET", path = ""): string[] {
    const found: string[] = [];
    if (!DOCUMENTED_STATUSES.has(answer.status)) found.push(`status ${answer.status}`);
    if (answer.status >= 400) {
      // Seed 002's polling fallback answers in its own error vocabulary.
      const problem = path.startsWith("/api/v1/realtime/") ? seed002ErrorProblem(answer) : seedErrorProblem(answer);
      if (problem) found.push(problem);
      if (answer.body?.code === "INTERNAL_ERROR") found.push("INTERNAL_ERROR");
    } else if (answer.body === undefined) {
      found.push("success without a JSON body");
    }
    // CORS preflights are not counted (protocols/rest-rate-limit.ts).
    if (method !== "OPTIONS" && answer.headers["x-ratelimit-limit"] === undefined) found.push("no X-RateLimit-Limit");
    return found;
  }

  it("discovers the REST routes (the enumeration is not empty)", () => {
    expect(routes.map(r => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(["GET /api/presence/:userId", "POST /api/rooms", "PATCH /api/rooms/:roomId", "POST /api/events/publish", "GET /api/events/poll"]));
  });

  it("answers every REST route with a documented status and body, whatever the input", async () => {
    for (const route of routes.filter(r => r.path.startsWith("/api"))) {
      const params = [...route.path.matchAll(/:(\w+)/g)].map(m => m[1]);
      const asText = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v) ?? "");
      const query = fc.oneof(
        objectFor(route.fields.filter(f => !params.includes(f)), route.schema).map(o => (o && typeof o === "object" && !Array.isArray(o) ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, asText(v)])) : {})),
        fc.dictionary(fc.oneof(fc.constantFrom(...route.fields, "tenantId"), anyText(8)), fc.oneof(fieldValue.map(asText), fc.array(anyText(8), { maxLength: 3 })), { maxKeys: 4 })
      );
      const withBody = route.method === "POST" || route.method === "PATCH";
      const contentType = fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/json; charset=latin1", "application/json; charset=bogus");
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(...params.map(p => fc.oneof(segment(), ruleArb(route.schema[p]).map(v => encodeURIComponent(asText(v).replace(/[\uD800-\uDFFF]/g, "?")))))),
          query,
          headersArb(),
          withBody ? bodyArb(route) : fc.constant(undefined),
          contentType,
          async (segments, queryValues, headers, body, type) => {
            let path = route.path;
            params.forEach((p, i) => (path = path.replace(`:${p}`, segments[i] === "" ? "x" : segments[i])));
            const search = new URLSearchParams();
            for (const [k, v] of Object.entries(queryValues)) for (const item of ([] as string[]).concat(v)) search.append(k, item);
            // A long poll may wait up to 30 s by design; keep fuzzed waits from making the suite slow.
            if (route.action === "eventbus.poll" && search.has("wait")) {
              const wait = Number(search.get("wait"));
              if (wait > 0 && wait <= 30) search.set("wait", "0");
            }
            // Seed 002's poll waits 30 s unless told otherwise (the query wins over the body).
            if (route.action === "gateway.realtimePoll") {
              const timeout = search.get("timeout");
              if (timeout === null || (Number(timeout) >= 0 && Number(timeout) <= 30)) search.set("timeout", "0");
            }
            const qs = search.toString();
            const answer = await send(node.url, route.method, `${path}${qs ? `?${qs}` : ""}`, { ...headers, ...(body !== undefined ? { "Content-Type": type } : {}) }, body);
            const found = problems(answer, route.method, path);
            if (found.length > 0) throw new Error(`${route.method} ${path}?${qs} → ${answer.status} ${answer.text.slice(0, 300)}: ${found.join("; ")}`);
          }
        ),
        { numRuns: RUNS }
      );
    }
    expect((await send(node.url, "GET", "/health/live")).status).toBe(200);
  });

  it("answers random methods and paths under /api with documented errors", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"), fc.array(segment(), { maxLength: 4 }), headersArb(), async (method, segments, headers) => {
        const answer = await send(node.url, method, `/api/${segments.join("/")}`, headers, method === "GET" || method === "HEAD" ? undefined : "{}");
        if (method === "HEAD") {
          if (!DOCUMENTED_STATUSES.has(answer.status)) throw new Error(`HEAD → ${answer.status}`);
          return;
        }
        const found = problems(answer, method);
        if (found.length > 0) throw new Error(`${method} /api/${segments.join("/")} → ${answer.status} ${answer.text.slice(0, 200)}: ${found.join("; ")}`);
      }),
      { numRuns: RUNS }
    );
  });

  describe("Socket.IO", () => {
    let socket: Socket;
    const all: Socket[] = [];

    beforeAll(async () => {
      socket = (await connect(node.url, tokenFor(TENANT, "socket-fuzzer", { role: "user" }))).socket;
      all.push(socket);
    });
    afterAll(() => {
      for (const s of all) s.close();
    });

    /** Problems with an acknowledgement: an error must carry a documented code (never INTERNAL_ERROR); a success its event's shape. */
    function ackProblem(event: string, answer: any): string | undefined {
      if (answer && typeof answer === "object" && "code" in answer) {
        if (!ERROR_CODES.includes(answer.code)) return `unknown code ${String(answer.code)}`;
        if (answer.code === "INTERNAL_ERROR") return "INTERNAL_ERROR";
        if (typeof answer.error !== "string") return "error without a message";
        return undefined;
      }
      const shapes: Record<string, (a: any) => boolean> = {
        message: a => typeof a?.messageId === "string",
        join_room: a => typeof a?.roomId === "string",
        leave_room: a => typeof a?.roomId === "string",
        presence_update: a => ["online", "away", "offline"].includes(a?.status),
        ping: a => typeof a?.serverTime === "string"
      };
      return shapes[event]?.(answer) ? undefined : `unexpected answer ${JSON.stringify(answer)?.slice(0, 200)}`;
    }

    /** The PF-2 event schemas (protocols/pf2/pf2-schemas.ts), for shaped payloads. */
    const eventSchemas: Record<string, Record<string, unknown>> = {
      message: { type: { type: "string", min: 1, max: 128 }, interactionClass: { type: "enum", values: ["CLASS_A", "CLASS_B", "CLASS_C", "CLASS_D"] }, recipientId: "string", roomId: "string", payload: "any", metadata: "object", tenantId: { type: "enum", values: [TENANT, "other-tenant"] } },
      join_room: { roomId: { type: "string", min: 1, max: 130 }, tenantId: { type: "enum", values: [TENANT, "other-tenant"] } },
      leave_room: { roomId: { type: "string", min: 1, max: 130 }, tenantId: { type: "enum", values: [TENANT, "other-tenant"] } },
      presence_update: { status: { type: "enum", values: ["online", "away", "offline", "busy"] }, metadata: "object", tenantId: { type: "enum", values: [TENANT, "other-tenant"] } },
      ping: {}
    };
    const eventFields: Record<string, string[]> = {
      message: ["type", "interactionClass", "recipientId", "roomId", "payload", "metadata", "tenantId"],
      join_room: ["roomId", "tenantId"],
      leave_room: ["roomId", "tenantId"],
      presence_update: ["status", "metadata", "tenantId"],
      ping: []
    };

    it.each(Object.keys(eventFields))("answers every `%s` with a documented ack and keeps the connection", async event => {
      const payload = fc.oneof(
        { weight: 4, arbitrary: objectFor(eventFields[event], eventSchemas[event]) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map(bytes => Buffer.from(bytes)) },
        { weight: 1, arbitrary: fc.constantFrom(undefined, null, 0, "", [], "x".repeat(70_000)) }
      );
      await fc.assert(
        fc.asyncProperty(payload, fc.array(anyJson, { maxLength: 2 }), async (data, extra) => {
          const answer = await socket.timeout(3000).emitWithAck(event, data, ...extra);
          const problem = ackProblem(event, answer);
          if (problem) throw new Error(`${event} ${JSON.stringify(data)?.slice(0, 200)} → ${problem}`);
          if (!socket.connected) throw new Error(`${event} ${JSON.stringify(data)?.slice(0, 200)} disconnected the socket`);
        }),
        { numRuns: RUNS }
      );
    });

    it("answers unknown events with INVALID_REQUEST", async () => {
      const reserved = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", ...Object.keys(eventFields)]);
      await fc.assert(
        fc.asyncProperty(anyText(30).filter(name => !reserved.has(name)), anyJson, async (name, data) => {
          const answer = await socket.timeout(3000).emitWithAck(name, data);
          if (answer?.code !== "INVALID_REQUEST") throw new Error(`unknown event ${JSON.stringify(name)} → ${JSON.stringify(answer)}`);
        }),
        { numRuns: RUNS }
      );
      expect(socket.connected).toBe(true);
    });

    it("accepts or refuses every handshake with a documented code", async () => {
      const token = fc.oneof(fc.constant(tokenFor(TENANT, "hs-fuzzer")), printable(80), anyJson);
      const auth = fc.record({ token, lastEventId: fc.option(fc.oneof(anyJson, anyText(20)), { nil: undefined }), rooms: fc.option(fc.oneof(fc.array(anyText(20), { maxLength: 4 }), anyJson), { nil: undefined }), tenantId: fc.option(anyText(10), { nil: undefined }) }, { requiredKeys: ["token"] });
      await fc.assert(
        fc.asyncProperty(auth, fc.option(anyText(20), { nil: undefined }), fc.constantFrom("/", "/events"), async (handshake, clientId, namespace) => {
          const { token: t, ...rest } = handshake;
          const client = socketTo(namespace === "/" ? node.url : `${node.url}${namespace}`, t, { auth: rest, ...(clientId ? { clientId: clientId.replace(/[\uD800-\uDFFF]/g, "?") } : {}) });
          try {
            const { event, payload } = await firstEvent(client, namespace === "/" ? ["connected", "connect_error"] : ["snapshot", "connect_error"]);
            if (event === "connect_error") {
              const code = payload?.data?.code;
              if (!ERROR_CODES.includes(code) || code === "INTERNAL_ERROR") throw new Error(`handshake ${JSON.stringify(handshake).slice(0, 200)} → ${JSON.stringify(payload?.data)}`);
            }
          } finally {
            client.close();
          }
        }),
        { numRuns: 40 }
      );
    });

    it("answers every seed 004 feed event (replay, post_event) with events or a documented error", async () => {
      const feed = socketTo(`${node.url}/events`, tokenFor(TENANT, "feed-fuzzer"));
      all.push(feed);
      await firstEvent(feed, ["snapshot"]);
      const payload = fc.oneof(objectFor(["sinceId", "limit", "message", "tenantId"]), fc.constantFrom(undefined, null, 7, "x"));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom("replay", "post_event"), payload, async (event, data) => {
          const answer = await feed.timeout(3000).emitWithAck(event, data);
          const error = answer?.error;
          if (error !== undefined) {
            if (!ERROR_CODES.includes(error?.code) || error.code === "INTERNAL_ERROR") throw new Error(`${event} ${JSON.stringify(data)?.slice(0, 200)} → ${JSON.stringify(answer)}`);
          } else if (!(Array.isArray(answer?.events) || typeof answer?.event?.id === "string")) {
            throw new Error(`${event} → unexpected ${JSON.stringify(answer)?.slice(0, 200)}`);
          }
          if (!feed.connected) throw new Error(`${event} disconnected the feed socket`);
        }),
        { numRuns: RUNS }
      );
    });
  });

  describe("afterwards", () => {
    it("is still up and healthy", async () => {
      const health = await send(node.url, "GET", "/health");
      expect(health.status).toBe(200);
      expect(health.body?.status).toBe("healthy");
    });
  });
});
