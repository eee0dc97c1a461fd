import type { Namespace } from "socket.io";
import { emitLocally, targetOfAudience } from "../../lib/delivery";
import type { DisconnectNotice, PushNotice, PushSink } from "../../lib/push";
import { disconnectSockets } from "../system-disconnect";
import { pf2EventOf } from "./pf2-adapter";

/**
 * PF-2 clients see logged events as `event` (chat messages as `message`), addressed by the event's
 * audience. Presence reaches them from the presence service's room pushes, so this sink has no
 * presence rendering of its own.
 */
export function pf2Sink(nsp: () => Namespace): PushSink {
  return {
    name: "pf2",
    push({ stored }: PushNotice) {
      const [event, payload] = pf2EventOf(stored);
      emitLocally(nsp(), { tenantId: stored.tenantId, target: targetOfAudience(stored.audience), event, payload });
    },
    disconnect(notice: DisconnectNotice) {
      return disconnectSockets(nsp(), notice);
    }
  };
}
