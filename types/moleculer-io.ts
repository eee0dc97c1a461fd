import type { ServiceSchema } from "moleculer";
import SocketIO from "moleculer-io";

/**
 * moleculer-io 2.2 types its mixin with optional methods (`Partial<IOMethods>`), which Moleculer's
 * `ServiceSchema.methods` (an index of required functions) rejects. The runtime object is an
 * ordinary mixin; this is its one corrected typing, used instead of casts at each use.
 */
export const SocketIOMixin: Partial<ServiceSchema> = SocketIO as unknown as Partial<ServiceSchema>;
