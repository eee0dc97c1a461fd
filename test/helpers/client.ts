import { io, type Socket } from "socket.io-client";

/** An unchanged socket.io-client, as an app would use it. */
export interface ClientOptions {
  clientId?: string;
  path?: string;
  /** Extra handshake fields beside the token (`lastEventId`, `rooms`). */
  auth?: Record<string, unknown>;
}

export function socketTo(url: string, token: unknown, options: ClientOptions = {}): Socket {
  return io(url, {
    auth: { ...options.auth, ...(token === undefined ? {} : { token: token as string }) },
    query: options.clientId ? { clientId: options.clientId } : {},
    path: options.path,
    transports: ["websocket"],
    reconnection: false,
    forceNew: true
  });
}

/** Resolves with the first `event` payload, or rejects after `timeoutMs`. */
export function nextEvent<T = any>(socket: Socket, event: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, onEvent);
      reject(new Error(`Timed out waiting for '${event}'`));
    }, timeoutMs);
    const onEvent = (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    };
    socket.once(event, onEvent);
  });
}

/** Resolves with whichever of `events` comes first (and its name); clears its timer and listeners. */
export function firstEvent(socket: Socket, events: string[], timeoutMs = 5000): Promise<{ event: string; payload: any }> {
  return new Promise((resolve, reject) => {
    const listeners = events.map(event => {
      const listener = (payload: unknown) => finish(() => resolve({ event, payload }));
      socket.once(event, listener);
      return [event, listener] as const;
    });
    const timer = setTimeout(() => finish(() => reject(new Error(`Timed out waiting for ${events.join(" or ")}`))), timeoutMs);
    function finish(then: () => void) {
      clearTimeout(timer);
      for (const [event, listener] of listeners) socket.off(event, listener);
      then();
    }
  });
}

/** Connects and resolves once the server's `connected` event arrived. */
export async function connect(url: string, token: unknown, options: ClientOptions = {}): Promise<{ socket: Socket; connected: any }> {
  const socket = socketTo(url, token, options);
  const { event, payload } = await firstEvent(socket, ["connected", "connect_error"]);
  if (event === "connect_error") {
    socket.close();
    throw Object.assign(new Error(`connect_error: ${payload.message}`), { data: payload.data });
  }
  return { socket, connected: payload };
}

/** Resolves with the connect_error a refused handshake produces. */
export async function refusal(url: string, token: unknown): Promise<{ message: string; data: any }> {
  const socket = socketTo(url, token);
  try {
    const { event, payload } = await firstEvent(socket, ["connected", "connect_error"]);
    if (event === "connected") throw new Error("connection was accepted");
    return payload;
  } finally {
    socket.close();
  }
}

/** Records every payload of `event` on the socket. */
export function recorder<T = any>(socket: Socket, event: string): T[] {
  const seen: T[] = [];
  socket.on(event, (payload: T) => seen.push(payload));
  return seen;
}

/** Waits until `predicate` holds, polling every 10 ms. */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 10));
  }
}

/** Lets in-flight events arrive; used only to prove that something did NOT arrive. */
export const settle = (ms = 150) => new Promise(r => setTimeout(r, ms));

/** emit with an acknowledgement callback, as a promise. */
export function request<T = any>(socket: Socket, event: string, ...args: unknown[]): Promise<T> {
  return socket.timeout(3000).emitWithAck(event, ...args) as Promise<T>;
}
