import { request as httpRequest } from "node:http";

/** Raw HTTP, so any method, header and body (malformed ones too) can be sent. */
export interface Answer {
  status: number;
  body: Record<string, any> | undefined;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

export function send(url: string, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // The path goes out as given (no URL normalisation of "..", "%", "//").
    const { hostname, port } = new URL(url);
    const framing = body === undefined ? {} : { "Content-Length": String(Buffer.byteLength(body)) };
    const req = httpRequest({ host: hostname, port, path, method, headers: { ...framing, ...headers } }, res => {
      const chunks: Buffer[] = [];
      res.on("data", chunk => chunks.push(chunk as Buffer));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: Record<string, any> | undefined;
        try {
          parsed = text ? (JSON.parse(text) as Record<string, any>) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text, headers: res.headers });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A parsed JSON response body: tests read whichever fields they assert on. */
export type JsonBody = Record<string, any>;

export interface JsonAnswer {
  status: number;
  headers: Headers;
  /** The parsed body; undefined when the response had none. */
  body: JsonBody;
}

/** `fetch`, then the status, the headers and the parsed JSON body, in one step. */
export async function fetchJson(url: string | URL, init?: RequestInit): Promise<JsonAnswer> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Seed 000's error codes and the statuses each may answer with (413/422: seed 004; 503: retryable INTERNAL_ERROR). */
export const SEED_STATUS: Record<string, number[]> = {
  AUTH_FAILED: [401],
  AUTHZ_FAILED: [403],
  TENANT_VIOLATION: [403],
  RATE_LIMIT: [429],
  INVALID_REQUEST: [400, 413, 422],
  NOT_FOUND: [404],
  INTERNAL_ERROR: [500, 503]
};

/**
 * What is wrong with an error answer, or undefined when it follows the seed: a JSON body
 * `{error, code, details?}` with a known code, the code's status, and no stack or source path.
 */
export function seedErrorProblem(answer: Answer): string | undefined {
  const body = answer.body;
  if (!body || typeof body !== "object") return `status ${answer.status} without a JSON body: ${answer.text.slice(0, 120)}`;
  const extra = Object.keys(body).filter(k => !["error", "code", "details"].includes(k));
  if (extra.length > 0) return `unexpected fields ${extra.join(",")}`;
  if (typeof body.error !== "string") return "error is not a string";
  const statuses = SEED_STATUS[body.code as string];
  if (!statuses) return `unknown code ${String(body.code)}`;
  if (!statuses.includes(answer.status)) return `code ${String(body.code)} with status ${answer.status}`;
  if (/\bstack\b|\n\s+at |node_modules|\.ts:\d+|\.js:\d+/.test(answer.text)) return "a stack or source path leaked";
  if (!/^application\/json/.test(String(answer.headers["content-type"]))) return `content-type ${String(answer.headers["content-type"])}`;
  return undefined;
}

/** Seed 002's error codes (its HTTP polling fallback under /api/v1/realtime) and their statuses. */
export const SEED002_STATUS: Record<string, number[]> = {
  MISSING_TOKEN: [401],
  INVALID_TOKEN: [401],
  TOKEN_EXPIRED: [401],
  INVALID_MESSAGE: [400, 413],
  AUTHZ_FAILED: [403],
  NOT_FOUND: [404],
  RATE_LIMITED: [429],
  INTERNAL_ERROR: [500, 503]
};

/** As seedErrorProblem, for seed 002's error body `{code, message, details?}`. */
export function seed002ErrorProblem(answer: Answer): string | undefined {
  const body = answer.body;
  if (!body || typeof body !== "object") return `status ${answer.status} without a JSON body: ${answer.text.slice(0, 120)}`;
  const extra = Object.keys(body).filter(k => !["code", "message", "details"].includes(k));
  if (extra.length > 0) return `unexpected fields ${extra.join(",")}`;
  if (typeof body.message !== "string") return "message is not a string";
  const statuses = SEED002_STATUS[body.code as string];
  if (!statuses) return `unknown code ${String(body.code)}`;
  if (!statuses.includes(answer.status)) return `code ${String(body.code)} with status ${answer.status}`;
  if (/\bstack\b|\n\s+at |node_modules|\.ts:\d+|\.js:\d+/.test(answer.text)) return "a stack or source path leaked";
  if (!/^application\/json/.test(String(answer.headers["content-type"]))) return `content-type ${String(answer.headers["content-type"])}`;
  return undefined;
}
