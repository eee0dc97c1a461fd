import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "moleculer";
import { bearerToken, type Principal } from "../../lib/auth";
import type { CallerMeta } from "../../lib/context";
import { reportTenantViolation } from "../../mixins/tenant-scope.mixin";
import type { ReadResult } from "../../stores/event-log";
import { appliedRateLimit } from "../../stores/rate-limit/rate-limit-store";
import { jsonBody } from "../json-body";
import { bindTenant } from "../rest-auth";
import { countRefusedRequest, restRateLimitMiddlewares, setRateLimitHeaders, tighter, type RateLimitState } from "../rest-rate-limit";
import type { RawWsHost } from "./ws-adapter";
import { FROM_NOW, FROM_START, cursorOf, sequenceOf } from "./ws-cursor";
import { WsError, WsErrorCode, toWsError } from "./ws-envelope";
import { WS_RENDERED_TYPES, frameOf, pollItemOf, renderStored, type RenderedEvent } from "./ws-render";

/**
 * Seed 002's HTTP polling fallback, `/api/v1/realtime/poll` and `/poll/missed`: the same stream,
 * the same renderer and the same numbers as the WebSocket, so a client moves between the two
 * without a gap or a duplicate. The long poll itself is the event bus's (`eventbus.pollFor`).
 *
 * Authentication is the WebSocket's: the JWT as `Authorization: Bearer` (or `?token=`), the tenant
 * taken from it (no X-Tenant-ID needed; one naming another tenant is refused). A `user_id`
 * parameter, which seed 002 clients send, must be the token's user.
 */
export const POLL_MAX_TIMEOUT_SECONDS = 30;
const POLL_DEFAULT_LIMIT = 100;
const POLL_MAX_LIMIT = 500;
const WINDOW_MS = 60_000;

const sequence = { type: "number", integer: true, min: 0, max: Number.MAX_SAFE_INTEGER, convert: true } as const;
const common = {
  tenantId: { type: "string", min: 1, max: 128 },
  user_id: { type: "any", optional: true },
  limit: { type: "number", integer: true, min: 1, max: POLL_MAX_LIMIT, convert: true, optional: true }
} as const;

export const pollParams = { ...common, last_poll_id: { ...sequence, optional: true }, timeout: { type: "number", min: 0, max: POLL_MAX_TIMEOUT_SECONDS, convert: true, optional: true } } as const;
export const missedParams = { ...common, last_sequence: sequence } as const;

export interface PollParams {
  tenantId: string;
  last_poll_id?: number;
  timeout?: number;
  limit?: number;
}

export interface MissedParams {
  tenantId: string;
  last_sequence: number;
  limit?: number;
}

export class Seed002Polling {
  constructor(private readonly host: RawWsHost) {}

  /**
   * moleculer-web `onBeforeCall` of the polling routes: authenticates, binds the tenant, checks
   * `user_id`, and counts the poll against POLL_V1_RATE_LIMIT. The X-RateLimit-* headers show the
   * tighter of it and the general API_RATE_LIMIT (counted by the route's middlewares).
   */
  async admit(ctx: Context<unknown, CallerMeta>, req: IncomingMessage & { $params: Record<string, unknown>; $rateLimit?: RateLimitState }, res: ServerResponse): Promise<void> {
    const params = req.$params;
    const queryToken = typeof params.token === "string" ? params.token : undefined;
    delete params.token;
    const token = bearerToken(req.headers.authorization) ?? queryToken;
    if (!token) throw new WsError(WsErrorCode.MISSING_TOKEN, "Missing token: send Authorization: Bearer <JWT>");
    const principal = this.host.verifier.verify(token);
    const onViolation = (p: Principal, requested: string) =>
      reportTenantViolation(this.host.broker, this.host.logger, { tenantId: p.tenantId, userId: p.userId, requestedTenantId: requested, via: "rest", action: (req.url ?? "").split("?")[0] });
    const claimed = req.headers["x-tenant-id"];
    if (typeof claimed === "string" && claimed.length > 0 && claimed !== principal.tenantId) {
      onViolation(principal, claimed);
      throw new WsError(WsErrorCode.AUTHZ_FAILED, "Cross-tenant access is not allowed", { header: "X-Tenant-ID" });
    }
    bindTenant(principal, params, onViolation);
    if (params.user_id !== undefined && params.user_id !== null && params.user_id !== "" && String(params.user_id) !== principal.userId) {
      throw new WsError(WsErrorCode.AUTHZ_FAILED, "user_id must be the token's user", { field: "user_id" });
    }
    const limit = this.host.config.pollV1RateLimit;
    const now = Date.now();
    const quota = await this.host.consumeRate(principal.tenantId, `poll-v1:${principal.userId}`, limit, WINDOW_MS);
    const applied = tighter(req.$rateLimit, appliedRateLimit(quota, limit, WINDOW_MS, now));
    if (applied) setRateLimitHeaders(res, applied);
    if (!quota.allowed) throw new WsError(WsErrorCode.RATE_LIMITED, `At most ${limit} polls per minute`, { limit, retry_after_ms: quota.retryAfterMs });
    ctx.meta.auth = principal;
  }

  /** `GET|POST /poll`: `{events, last_poll_id, has_more}`, waiting up to `timeout` s for something new. */
  async poll(principal: Principal, params: PollParams) {
    const timeout = params.timeout ?? POLL_MAX_TIMEOUT_SECONDS;
    const { result, lost, after } = await this.read(principal, params.last_poll_id ?? FROM_NOW, params.limit ?? POLL_DEFAULT_LIMIT, timeout);
    const events = rendered(result).map(pollItemOf);
    return { events, last_poll_id: cursorAfter(result, after), has_more: result.hasMore, ...(lost ? { history_lost: true } : {}) };
  }

  /** `GET /poll/missed?last_sequence=`: `{messages}` (WebSocket frames, oldest first), at once. */
  async missed(principal: Principal, params: MissedParams) {
    const { result, lost, after } = await this.read(principal, params.last_sequence, params.limit ?? POLL_DEFAULT_LIMIT, 0);
    const messages = rendered(result).map(frameOf);
    return { messages, last_sequence: cursorAfter(result, after), has_more: result.hasMore, ...(lost ? { history_lost: true } : {}) };
  }

  /**
   * Reads after a client's number. A number the stream can no longer serve (trimmed, restarted) is
   * answered from the oldest retained event with `history_lost`, at once.
   */
  private async read(principal: Principal, from: number, limit: number, wait: number): Promise<{ result: ReadResult; lost: boolean; after: string | undefined }> {
    const head = (await this.host.tailEvents(principal.tenantId, 1))[0]?.position ?? null;
    const cursor = cursorOf(from, head);
    if (cursor.kind !== "lost") {
      const after = cursor.kind === "after" ? cursor.position : cursor.kind === "now" ? (head ?? undefined) : undefined;
      const result = await this.pollFor(principal, after, limit, wait);
      if (!result.lost) return { result, lost: false, after };
    }
    return { result: await this.pollFor(principal, undefined, limit, 0), lost: true, after: undefined };
  }

  private pollFor(principal: Principal, after: string | undefined, limit: number, wait: number): Promise<ReadResult> {
    return this.host.broker.call<ReadResult, object>(
      "eventbus.pollFor",
      { tenantId: principal.tenantId, userId: principal.userId, ...(after !== undefined ? { lastEventId: after } : {}), limit, wait, eventTypes: [...WS_RENDERED_TYPES] },
      { meta: { auth: principal }, timeout: wait * 1000 + 5000, retries: 0 }
    );
  }

}

function rendered(result: ReadResult): RenderedEvent[] {
  return result.events.map(renderStored).filter((r): r is RenderedEvent => r !== undefined);
}

/** The number to poll from next: the last position read, else the cursor the read started from. */
function cursorAfter(result: ReadResult, after: string | undefined): number {
  const position = result.next ?? after;
  return (position !== undefined && sequenceOf(position)) || FROM_START;
}

/** Writes a seed 002 error `{code, message, details?}` with its HTTP status (the polling routes' `onError`). */
export function sendWsError(res: ServerResponse, err: unknown): number {
  const parserStatus = (err as { status?: unknown; type?: unknown } | null)?.status;
  const { status, body } =
    typeof parserStatus === "number" && (parserStatus === 400 || parserStatus === 413) && !(err instanceof WsError)
      ? { status: parserStatus, body: { code: WsErrorCode.INVALID_MESSAGE, message: parserStatus === 413 ? "Request body too large" : "Request body is not valid JSON" } }
      : toWsError(err);
  if (res.headersSent) {
    res.end();
    return status;
  }
  const details = body.details as { retry_after_ms?: unknown; retryAfterMs?: unknown } | undefined;
  const retryAfterMs = details?.retry_after_ms ?? details?.retryAfterMs;
  if (status === 429 && typeof retryAfterMs === "number") res.setHeader("Retry-After", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.writeHead(status);
  res.end(JSON.stringify(body));
  return status;
}

/** The moleculer-web route of the polling fallback; `this` is the gateway service (it holds `rawWs`). */
export function seed002PollRoute() {
  return {
    name: "seed002-poll",
    path: "/api/v1/realtime",
    authentication: false,
    authorization: false,
    mappingPolicy: "restrict",
    // Strict JSON up to 16 KiB, then API_RATE_LIMIT and X-RateLimit-* like every /api route.
    bodyParsers: false,
    use: [jsonBody(16 * 1024), ...restRateLimitMiddlewares()],
    // Long polls wait up to 30 s.
    callOptions: { timeout: (POLL_MAX_TIMEOUT_SECONDS + 10) * 1000 },
    aliases: {
      "GET /poll": "gateway.realtimePoll",
      "POST /poll": "gateway.realtimePoll",
      "GET /poll/missed": "gateway.realtimeMissed"
    },
    onBeforeCall(this: { rawPolling: Seed002Polling }, ctx: Context<unknown, CallerMeta>, _route: unknown, req: IncomingMessage & { $params: Record<string, unknown> }, res: ServerResponse) {
      return this.rawPolling.admit(ctx, req, res);
    },
    async onError(this: RawWsHost, req: IncomingMessage, res: ServerResponse, err: unknown) {
      await countRefusedRequest(this, req, res);
      const status = sendWsError(res, err);
      if (status >= 500) this.logger.error("Seed 002 poll failed", { url: (req.url ?? "").split("?")[0], error: (err as Error)?.message });
    }
  };
}

/** The gateway actions behind the polling routes (`this` is the gateway service). */
export function seed002PollActions() {
  const principalOf = (ctx: Context<unknown, CallerMeta>): Principal => {
    if (!ctx.meta.auth) throw new WsError(WsErrorCode.MISSING_TOKEN, "Polling is made on behalf of a user");
    return ctx.meta.auth;
  };
  return {
    /** `GET|POST /api/v1/realtime/poll`. */
    realtimePoll: {
      params: pollParams,
      handler(this: { rawPolling: Seed002Polling }, ctx: Context<PollParams, CallerMeta>) {
        return this.rawPolling.poll(principalOf(ctx), ctx.params);
      }
    },
    /** `GET /api/v1/realtime/poll/missed`. */
    realtimeMissed: {
      params: missedParams,
      handler(this: { rawPolling: Seed002Polling }, ctx: Context<MissedParams, CallerMeta>) {
        return this.rawPolling.missed(principalOf(ctx), ctx.params);
      }
    }
  };
}
