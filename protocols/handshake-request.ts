import { IncomingMessage, ServerResponse } from "node:http";

/**
 * What Socket.IO reads of the HTTP request that opened an engine.io connection: each namespace
 * the client connects over that connection builds its `socket.handshake` from it (socket.io 4,
 * `Socket#buildHandshake`: `headers`, `url`, `_query`, `connection.encrypted`).
 */
interface HandshakeRequest {
  headers: IncomingMessage["headers"];
  url: string | undefined;
  _query: Record<string, string> | undefined;
  connection: { encrypted: boolean };
}

/** The fields of `req` Socket.IO reads, in an object of their own. */
function slimHandshakeRequest(req: IncomingMessage & { _query?: Record<string, string> }): HandshakeRequest {
  return {
    headers: req.headers,
    url: req.url,
    _query: req._query,
    connection: { encrypted: Boolean((req.socket as { encrypted?: boolean } | null)?.encrypted) }
  };
}

/** The response object engine.io made for an upgrade, kept on its request until the connection opens. */
const UPGRADE_RESPONSE = Symbol("upgradeResponse");

type EngineRequest = IncomingMessage & { [UPGRADE_RESPONSE]?: { req: unknown } };

/**
 * engine.io keeps the HTTP request that opened a connection for the connection's life, twice: as
 * `conn.request`, and, for a WebSocket upgrade, through the stand-in response it made for its
 * middlewares (`WebSocketResponse.req`, held by a `close` listener on the TCP socket). That is
 * the IncomingMessage with its raw headers, its readable-stream state and what they reference:
 * ~0.9 KiB per connection (`npm run bench:heap`) that nothing reads after the handshake.
 *
 * Socket.IO's own advice is `conn.request = null`. A namespace connected later over the same
 * connection would then build its handshake without headers, so the fields Socket.IO reads are
 * kept ({@link slimHandshakeRequest}).
 */
export const handshakeRequestRelease = {
  /** engine.io middleware (`engine.use`): remembers an upgrade's stand-in response on its request. */
  middleware(req: IncomingMessage, res: unknown, next: (err?: Error) => void): void {
    // A polling request is answered by a real ServerResponse; an upgrade by engine.io's stand-in.
    if (!(res instanceof ServerResponse)) (req as EngineRequest)[UPGRADE_RESPONSE] = res as { req: unknown };
    next();
  },
  /**
   * engine.io `connection` listener: drops both references. Runs after Socket.IO's own listener
   * and before any namespace handshake (those wait for the client's CONNECT packet).
   */
  onConnection(conn: { request?: unknown }): void {
    const req = conn.request;
    // Released already (or never an HTTP request): nothing to drop.
    if (!(req instanceof IncomingMessage)) return;
    const res = (req as EngineRequest)[UPGRADE_RESPONSE];
    if (res) res.req = null;
    conn.request = slimHandshakeRequest(req);
  }
};
