import { randomUUID } from "node:crypto";
import WebSocket from "ws";

/** A seed 002 client over the `ws` package, as an app outside the browser would use it. */
export interface Frame {
  id: string;
  type: string;
  payload: any;
  channel?: string;
  ack_id?: string;
  timestamp: string;
  sequence?: number;
}

export interface WsClient {
  ws: WebSocket;
  /** Every frame received, in order. */
  frames: Frame[];
  /** The `connect` frame. */
  connected: Frame;
  /** Resolves with the first frame (already received or coming) that matches. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs?: number, what?: string): Promise<Frame>;
  /** Frames of one type received so far. */
  ofType(type: string): Frame[];
  send(frame: Record<string, unknown> | string): void;
  /** Sends a frame with an `ack_id` and resolves with the `ack` payload `{ack_id, status, data}`. */
  request(type: string, payload?: Record<string, unknown>, extra?: Record<string, unknown>): Promise<{ ack_id: string; status: "success" | "error"; data: any }>;
  close(): Promise<void>;
}

export function wsUrl(baseUrl: string, query: Record<string, string | number | undefined> = {}, path = "/ws"): string {
  const url = new URL(path, baseUrl.replace(/^http/, "ws"));
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  return url.toString();
}

/** Opens `/ws?token=…` and resolves once the server's `connect` frame arrived. */
export async function wsConnect(baseUrl: string, token: string | undefined, query: Record<string, string | number | undefined> = {}, headers: Record<string, string> = {}): Promise<WsClient> {
  const ws = new WebSocket(wsUrl(baseUrl, { token, ...query }), { headers });
  const frames: Frame[] = [];
  const waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  ws.on("message", (data: WebSocket.RawData) => {
    const frame = JSON.parse(data.toString()) as Frame;
    frames.push(frame);
    for (const waiter of [...waiters]) {
      if (waiter.match(frame)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(frame);
      }
    }
  });
  const waitFor = (match: (f: Frame) => boolean, timeoutMs = 3000, what = "frame") => {
    const found = frames.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Frame>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        }
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`Timed out waiting for ${what}`));
      }, timeoutMs);
      waiters.push(waiter);
    });
  };
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
  });
  const connected = await waitFor(f => f.type === "connect", 5000, "connect frame");
  const send = (frame: Record<string, unknown> | string) => ws.send(typeof frame === "string" ? frame : JSON.stringify({ id: randomUUID(), timestamp: new Date().toISOString(), ...frame }));
  return {
    ws,
    frames,
    connected,
    waitFor,
    ofType: type => frames.filter(f => f.type === type),
    send,
    async request(type, payload = {}, extra = {}) {
      const ackId = randomUUID();
      const ack = waitFor(f => f.type === "ack" && f.payload?.ack_id === ackId, 5000, `ack of ${type}`);
      send({ type, payload, ack_id: ackId, ...extra });
      return (await ack).payload;
    },
    close() {
      if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
      return new Promise<void>(resolve => {
        // A client that stopped reading (tests of dead connections) never completes the handshake.
        const timer = setTimeout(() => ws.terminate(), 1000);
        ws.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        ws.close();
      });
    }
  };
}

/** The HTTP answer to a refused upgrade: status and JSON body. */
export function wsRefusal(baseUrl: string, query: Record<string, string | number | undefined> = {}, headers: Record<string, string> = {}, path = "/ws"): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(baseUrl, query, path), { headers });
    ws.once("open", () => {
      ws.close();
      reject(new Error("upgrade was accepted"));
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => {
        let parsed: unknown = body;
        try {
          parsed = JSON.parse(body);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    ws.once("error", err => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}
