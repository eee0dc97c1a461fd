import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import bodyParser from "body-parser";
import { jsonBody, type JsonBodyMiddleware } from "../../protocols/json-body";

/**
 * protocols/json-body.ts must answer every request exactly as body-parser's `json({strict: true,
 * limit})` does: each case goes to a server running it and to one running body-parser.
 */
const LIMIT = 64;

type Outcome = { parsed: unknown } | { status: number; type: string };

function serve(middleware: JsonBodyMiddleware): Promise<Server> {
  const server = createServer((req: IncomingMessage & { body?: unknown }, res: ServerResponse) => {
    middleware(req, res, (err?: unknown) => {
      const e = err as { status?: number; type?: string } | undefined;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(e ? { status: e.status, type: e.type } : { parsed: req.body }));
    });
  });
  return new Promise(resolve => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Sends the body in the given pieces (a string is one piece), with the given headers only. */
function post(server: Server, headers: Record<string, string>, pieces: Array<string | Buffer>): Promise<Outcome> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/", headers }, res => {
      const chunks: Buffer[] = [];
      res.on("data", chunk => chunks.push(chunk as Buffer));
      res.on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Outcome));
    });
    req.on("error", reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}

const JSON_TYPE = "application/json";
const length = (pieces: Array<string | Buffer>) => String(pieces.reduce((n, p) => n + Buffer.byteLength(p), 0));
const framed = (type: string | undefined, pieces: Array<string | Buffer>, extra: Record<string, string> = {}) => ({
  headers: { ...(type ? { "Content-Type": type } : {}), "Content-Length": length(pieces), ...extra },
  pieces
});
const accented = Buffer.from(JSON.stringify({ text: "h\u00e9llo \u2713" }), "utf8");

const cases: Array<[string, { headers: Record<string, string>; pieces: Array<string | Buffer> }, Outcome]> = [
  ["an object", framed(JSON_TYPE, ['{"a":1,"b":[true,null]}']), { parsed: { a: 1, b: [true, null] } }],
  ["an array", framed(JSON_TYPE, ["[1,2]"]), { parsed: [1, 2] }],
  ["leading whitespace", framed(JSON_TYPE, [' \r\n\t{"a":1}']), { parsed: { a: 1 } }],
  ["a UTF-8 charset", framed("application/json; charset=utf-8", ['{"a":1}']), { parsed: { a: 1 } }],
  ["an upper-case charset", framed("Application/JSON; charset=UTF-8", ['{"a":1}']), { parsed: { a: 1 } }],
  ["a character split over two writes", framed(JSON_TYPE, [accented.subarray(0, 12), accented.subarray(12)]), { parsed: { text: "h\u00e9llo \u2713" } }],
  ["a string (strict)", framed(JSON_TYPE, ['"text"']), { status: 400, type: "entity.parse.failed" }],
  ["a number (strict)", framed(JSON_TYPE, ["42"]), { status: 400, type: "entity.parse.failed" }],
  ["only whitespace", framed(JSON_TYPE, ["   "]), { status: 400, type: "entity.parse.failed" }],
  ["malformed JSON", framed(JSON_TYPE, ['{"a": ']), { status: 400, type: "entity.parse.failed" }],
  ["a body over the limit", framed(JSON_TYPE, [JSON.stringify({ a: "x".repeat(LIMIT) })]), { status: 413, type: "entity.too.large" }],
  ["a body at the limit", framed(JSON_TYPE, [JSON.stringify({ a: "x".repeat(LIMIT - 8) })]), { parsed: { a: "x".repeat(LIMIT - 8) } }],
  ["an empty body", framed(JSON_TYPE, []), { parsed: {} }],
  ["a gzip body", framed(JSON_TYPE, [gzipSync('{"a":1}')], { "Content-Encoding": "gzip" }), { parsed: { a: 1 } }],
  ["a chunked body", { headers: { "Content-Type": JSON_TYPE, "Transfer-Encoding": "chunked" }, pieces: ['{"a":', "1}"] }, { parsed: { a: 1 } }],
  ["another charset", framed("application/json; charset=latin1", ['{"a":1}']), { status: 415, type: "charset.unsupported" }],
  ["another media type", framed("text/plain", ['{"a":1}']), { parsed: {} }],
  ["a JSON-suffixed media type", framed("application/vnd.api+json", ['{"a":1}']), { parsed: {} }],
  ["no media type", framed(undefined, ['{"a":1}']), { parsed: {} }]
];

describe("jsonBody", () => {
  let lean: Server;
  let reference: Server;

  beforeAll(async () => {
    lean = await serve(jsonBody(LIMIT));
    reference = await serve(bodyParser.json({ strict: true, limit: LIMIT }) as unknown as JsonBodyMiddleware);
  });

  afterAll(async () => {
    await Promise.all([lean, reference].map(server => new Promise(resolve => server.close(resolve))));
  });

  it.each(cases)("answers %s as body-parser does", async (_name, { headers, pieces }, expected) => {
    const [ours, theirs] = await Promise.all([post(lean, headers, pieces), post(reference, headers, pieces)]);
    expect(theirs).toEqual(expected);
    expect(ours).toEqual(expected);
  });

  it("passes a request another parser already read", async () => {
    const middleware = jsonBody(LIMIT);
    const req = { _body: true, body: { kept: true }, headers: { "content-type": JSON_TYPE, "content-length": "7" } } as unknown as IncomingMessage;
    const next = jest.fn();
    middleware(req, {} as ServerResponse, next);
    expect(next).toHaveBeenCalledWith();
    expect((req as IncomingMessage & { body: unknown }).body).toEqual({ kept: true });
  });
});
