import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import WebSocket from "ws";

/**
 * A Socket.IO v4 client spoken by hand over a `ws` WebSocket (engine.io protocol 4), for the
 * slow-consumer tests: unlike socket.io-client it can stop reading its TCP socket (`pause`), which
 * makes the server's buffers fill exactly as with a client that hangs.
 */
export interface RawSocketIo {
  ws: WebSocket;
  /** Socket.IO events received, `[name, payload]`, in order. */
  events: Array<[string, any]>;
  /** Resolves when the TCP connection is closed. */
  closed: Promise<void>;
  /** Stops reading from the TCP socket (the kernel buffers fill, then the server's). */
  pause(): void;
  resume(): void;
  close(): void;
}

/** Connects to the default namespace with `auth`, resolves once the server's `connected` event arrived. */
export async function rawSocketIo(baseUrl: string, auth: Record<string, unknown>, path = "/socket.io"): Promise<RawSocketIo> {
  const url = `${baseUrl.replace(/^http/, "ws")}${path}/?EIO=4&transport=websocket`;
  const ws = new WebSocket(url);
  const events: Array<[string, any]> = [];
  let onConnected: () => void = () => undefined;
  let onRefused: (err: Error) => void = () => undefined;
  const connected = new Promise<void>((resolve, reject) => {
    onConnected = resolve;
    onRefused = reject;
  });
  const closed = new Promise<void>(resolve => ws.once("close", () => resolve()));
  ws.on("message", (data: WebSocket.RawData) => {
    const frame = data.toString();
    if (frame.startsWith("0")) ws.send(`40${JSON.stringify(auth)}`);
    else if (frame === "2") ws.send("3");
    else if (frame.startsWith("44")) onRefused(new Error(`connect_error: ${frame.slice(2)}`));
    else if (frame.startsWith("42")) {
      const [name, payload] = JSON.parse(frame.slice(2)) as [string, unknown];
      events.push([name, payload]);
      if (name === "connected") onConnected();
    }
  });
  ws.once("error", err => onRefused(err));
  await connected;
  const socket = (ws as unknown as { _socket: Socket })._socket;
  return {
    ws,
    events,
    closed,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => ws.terminate()
  };
}

/** Reads a process's memory from /proc (Linux): resident now and its peak, in bytes. */
export function processMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}
