/**
 * The one place that builds every tenant-scoped name: Socket.IO room names and store keys.
 *
 * Each part is percent-encoded, so no identifier can contain the separator and a crafted
 * roomId such as "x:t:other" can never collide with another tenant's name.
 */
const SEPARATOR = ":";

/** The characters encodeURIComponent leaves as they are: most identifiers need no encoding. */
const UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]*$/;

function encodePart(part: string): string {
  // Names are built for every message delivered; skip the encoder for the usual identifiers.
  return UNRESERVED.test(part) ? part : encodeURIComponent(part);
}

/** `t:<tenant>:<kind>:<part>...`; the tenant always comes first. */
export function tenantKey(tenantId: string, kind: string, ...parts: string[]): string {
  let key = "t" + SEPARATOR + encodePart(tenantId) + SEPARATOR + kind;
  for (const part of parts) key += SEPARATOR + encodePart(part);
  return key;
}

/** A name that belongs to no tenant (cluster-wide indexes such as a node's connections). */
export function globalKey(kind: string, ...parts: string[]): string {
  let key = "g" + SEPARATOR + kind;
  for (const part of parts) key += SEPARATOR + encodePart(part);
  return key;
}

/** Socket.IO room holding every connection of one user (all devices). */
export const userChannel = (tenantId: string, userId: string): string => tenantKey(tenantId, "user", userId);

/** Socket.IO room holding every connection that joined a room. */
export const roomChannel = (tenantId: string, roomId: string): string => tenantKey(tenantId, "room", roomId);

/** Socket.IO room holding every connection of a tenant. */
export const tenantChannel = (tenantId: string): string => tenantKey(tenantId, "all");

/** Socket.IO room holding one connection (for targeted internal pushes). */
export const connectionChannel = (tenantId: string, connectionId: string): string =>
  tenantKey(tenantId, "conn", connectionId);

/** Socket.IO room of the sockets that joined a conversation (seed 003 `conversation:<id>`). */
export const conversationChannel = (tenantId: string, conversationId: string): string =>
  tenantKey(tenantId, "conversation", conversationId);
