import { Adapter, type BroadcastOptions } from "socket.io-adapter";

/** Packets held for one socket; beyond this the socket is too far behind and is disconnected. */
export const MAX_HELD_PACKETS = 10_000;

type Packet = { data: unknown[] };

/**
 * Socket.IO's in-memory adapter, plus the ability to hold a socket's live traffic while it is
 * being replayed from the log: broadcasts meant for a held socket are queued instead of written,
 * and handed back in order on release, so replay and live traffic meet without gap or duplicate.
 */
export class HoldingAdapter extends Adapter {
  private readonly held = new Map<string, unknown[][]>();
  private readonly overflowed = new Set<string>();

  hold(socketId: string): void {
    this.held.set(socketId, []);
  }

  /** Stops holding; returns the held events' `[name, ...args]` in arrival order, or undefined after an overflow. */
  release(socketId: string): unknown[][] | undefined {
    const queue = this.held.get(socketId) ?? [];
    this.held.delete(socketId);
    if (this.overflowed.delete(socketId)) return undefined;
    return queue;
  }

  override broadcast(packet: Packet & Record<string, unknown>, opts: BroadcastOptions): void {
    if (this.held.size > 0) {
      const except = new Set(opts.except ?? []);
      let diverted = false;
      for (const [socketId, queue] of this.held) {
        if (!this.targets(socketId, opts)) continue;
        diverted = true;
        except.add(socketId); // every socket is in the room named by its id
        if (queue.length >= MAX_HELD_PACKETS) this.overflowed.add(socketId);
        else queue.push([...packet.data]);
      }
      if (diverted) opts = { ...opts, except };
    }
    super.broadcast(packet as never, opts);
  }

  /** Whether a broadcast with these options reaches the socket (the same rule as Adapter.apply). */
  private targets(socketId: string, opts: BroadcastOptions): boolean {
    const rooms = this.sids.get(socketId);
    if (!rooms) return false;
    for (const room of opts.except ?? []) if (rooms.has(room)) return false;
    if (opts.rooms.size === 0) return true;
    for (const room of opts.rooms) if (rooms.has(room)) return true;
    return false;
  }
}
