import { createServer, IncomingMessage, type Server as HttpServer } from "node:http";
import { Socket as NetSocket, type AddressInfo } from "node:net";
import { Server, type Socket } from "socket.io";
import { io as connect, Manager, type Socket as ClientSocket } from "socket.io-client";
import { handshakeRequestRelease } from "../../protocols/handshake-request";

/**
 * A real Socket.IO server wired as the gateway wires it: after the connection opens, engine.io
 * holds no IncomingMessage any more, and every namespace's handshake still sees what it read.
 */
describe("handshakeRequestRelease", () => {
  let http: HttpServer;
  let io: Server;
  let url: string;
  const responses: Array<{ req: unknown }> = [];
  const clients: ClientSocket[] = [];

  beforeEach(async () => {
    http = createServer();
    io = new Server(http);
    io.engine.use(handshakeRequestRelease.middleware);
    // After the product's middleware: sees the same stand-in response engine.io made.
    io.engine.use((_req: IncomingMessage, res: { req: unknown }, next: () => void) => {
      responses.push(res);
      next();
    });
    io.engine.on("connection", handshakeRequestRelease.onConnection);
    await new Promise<void>(resolve => http.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    responses.splice(0);
    await new Promise<void>(resolve => io.close(() => resolve()));
  });

  function connected(nsp: string): Promise<Socket> {
    return new Promise(resolve => io.of(nsp).once("connection", resolve));
  }

  it("keeps no IncomingMessage after a WebSocket upgrade, and the handshake keeps its headers, url and query", async () => {
    const server = connected("/");
    clients.push(connect(url, { transports: ["websocket"], extraHeaders: { "user-agent": "Desk/1.0" }, query: { app: "chat" } }));
    const socket = await server;
    const request = socket.conn.request as unknown;
    expect(request).not.toBeInstanceOf(IncomingMessage);
    expect(request).toMatchObject({ headers: expect.objectContaining({ "user-agent": "Desk/1.0" }), url: expect.stringContaining("/socket.io/") });
    // engine.io's stand-in response for the upgrade no longer holds the request either.
    expect(responses).toHaveLength(1);
    expect(responses[0]).toHaveProperty("req", null);
    expect(socket.handshake.headers["user-agent"]).toBe("Desk/1.0");
    expect(socket.handshake.query).toMatchObject({ app: "chat", EIO: "4" });
    expect(socket.handshake.url).toContain("/socket.io/");
    expect(socket.handshake.secure).toBe(false);
    expect(socket.handshake.address).toMatch(/127\.0\.0\.1/);
  });

  it("gives a namespace connected later over the same connection the same handshake headers", async () => {
    const manager = new Manager(url, { transports: ["websocket"], extraHeaders: { "user-agent": "Phone/2.0", authorization: "Bearer abc" } });
    const first = connected("/");
    clients.push(manager.socket("/"));
    await first;
    const second = connected("/feed");
    clients.push(manager.socket("/feed"));
    const socket = await second;
    expect(socket.conn.request).not.toBeInstanceOf(IncomingMessage);
    expect(socket.handshake.headers).toMatchObject({ "user-agent": "Phone/2.0", authorization: "Bearer abc" });
    expect(responses).toHaveLength(1);
  });

  it("releases the request of a long-polling connection as well", async () => {
    const server = connected("/");
    clients.push(connect(url, { transports: ["polling"], extraHeaders: { "user-agent": "Poller/1.0" } }));
    const socket = await server;
    expect(socket.conn.request).not.toBeInstanceOf(IncomingMessage);
    expect(socket.handshake.headers["user-agent"]).toBe("Poller/1.0");
    // A real ServerResponse answers a polling request: nothing of it is kept or changed.
    expect(responses.every(res => res.req instanceof IncomingMessage)).toBe(true);
  });

  it("leaves an already released connection as it is", () => {
    const request = new IncomingMessage(new NetSocket());
    request.url = "/socket.io/";
    const conn: { request: unknown } = { request };
    handshakeRequestRelease.onConnection(conn);
    const slim = conn.request;
    handshakeRequestRelease.onConnection(conn);
    expect(conn.request).toBe(slim);
  });
});
