import type { IncomingMessage, ServerResponse } from "node:http";
import bodyParser from "body-parser";

/**
 * The JSON body parser of the REST routes: body-parser's `json({strict: true, limit})`, with the
 * request every API client sends (`Content-Type: application/json`, UTF-8, a `Content-Length`
 * within the limit, not compressed) read and parsed here.
 *
 * body-parser's general path (media-type parsing, charset lookup, raw-body's stream handling, its
 * error objects) cost a durable publish more CPU than reading a few hundred bytes does. Every
 * other request (compressed, chunked, another charset or media type, empty, over the limit) goes
 * to body-parser itself, so its answers (400, 413, 415, or no body parsed) stay the same.
 */
type BodyRequest = IncomingMessage & { body?: unknown; _body?: boolean };
type Next = (err?: unknown) => void;
export type JsonBodyMiddleware = (req: BodyRequest, res: ServerResponse, next: Next) => void;

/** `application/json`, alone or with a UTF-8 charset: what the fast path accepts. */
const PLAIN_JSON = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** A body-parser-shaped client error; moleculer-web turns its `status` into the HTTP status. */
function bodyError(status: number, message: string, type: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, expose: true, type });
}

/** True when the first character that is not JSON whitespace opens an object or an array (strict mode). */
function opensObjectOrArray(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x7b || c === 0x5b;
  }
  return false;
}

export function jsonBody(limitBytes: number): JsonBodyMiddleware {
  const general = bodyParser.json({ strict: true, limit: limitBytes }) as unknown as JsonBodyMiddleware;
  return function jsonBodyParser(req, res, next) {
    if (req._body) return next();
    const { headers } = req;
    const type = headers["content-type"];
    const encoding = headers["content-encoding"];
    const declared = headers["content-length"] === undefined ? Number.NaN : Number(headers["content-length"]);
    if (
      type === undefined ||
      !PLAIN_JSON.test(type) ||
      (encoding !== undefined && encoding.toLowerCase() !== "identity") ||
      headers["transfer-encoding"] !== undefined ||
      !Number.isSafeInteger(declared) ||
      declared <= 0 ||
      declared > limitBytes
    ) {
      return general(req, res, next);
    }
    req._body = true;
    req.body = {};
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      next(err);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      chunks.push(chunk);
    };
    const onEnd = () => {
      // Node's HTTP parser stops at Content-Length; fewer bytes means the client went away.
      if (received !== declared) return settle(bodyError(400, "request size did not match content length", "request.size.invalid"));
      const text = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received)).toString("utf8");
      if (!opensObjectOrArray(text)) return settle(bodyError(400, "JSON body must be an object or an array", "entity.parse.failed"));
      try {
        req.body = JSON.parse(text);
      } catch (err) {
        return settle(bodyError(400, (err as Error).message, "entity.parse.failed"));
      }
      settle();
    };
    const onError = (err: Error) => settle(bodyError(400, err.message, "request.aborted"));
    const onClose = () => {
      if (!req.complete) settle(bodyError(400, "request aborted", "request.aborted"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  };
}
