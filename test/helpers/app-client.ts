import { io, type Socket } from "socket.io-client";
import { firstEvent } from "./client";

/** An unchanged socket.io-client on the seed 003 namespace, as a seed 003 app would connect. */
export interface AppClientOptions {
  userAgent?: string;
}

export function appSocketTo(url: string, token: unknown, options: AppClientOptions = {}): Socket {
  return io(`${url}/ws/app`, {
    auth: token === undefined ? {} : { token: token as string },
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    ...(options.userAgent ? { extraHeaders: { "user-agent": options.userAgent } } : {})
  });
}

/** Connects and resolves once `notifications:ready` arrived. */
export async function connectApp(url: string, token: unknown, options: AppClientOptions = {}): Promise<{ socket: Socket; ready: any }> {
  const socket = appSocketTo(url, token, options);
  const { event, payload } = await firstEvent(socket, ["notifications:ready", "connect_error"]);
  if (event === "connect_error") {
    socket.close();
    throw Object.assign(new Error(`connect_error: ${payload.message}`), { data: payload.data });
  }
  return { socket, ready: payload };
}

/** The `connect_error` of a refused `/ws/app` handshake. */
export async function appRefusal(url: string, token: unknown): Promise<{ message: string; data: any }> {
  const socket = appSocketTo(url, token);
  try {
    const { event, payload } = await firstEvent(socket, ["notifications:ready", "connect_error"]);
    if (event !== "connect_error") throw new Error("connection was accepted");
    return payload;
  } finally {
    socket.close();
  }
}
