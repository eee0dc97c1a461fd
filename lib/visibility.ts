import type { ReadResult, StoredEvent } from "../stores/event-log";

/** Whose view of a tenant's log a read is for. */
export interface Viewer {
  userId: string;
  rooms: ReadonlySet<string>;
  /** Only these event types (a protocol that renders a few types); absent = every type. */
  eventTypes?: ReadonlySet<string>;
}

/** An event is for the whole tenant, for one user, or for the members of one room. */
export function visibleTo(event: StoredEvent, viewer: Viewer): boolean {
  if (viewer.eventTypes && !viewer.eventTypes.has(event.eventType)) return false;
  const audience = event.audience;
  if (!audience) return true;
  if ("userId" in audience) return audience.userId === viewer.userId;
  if ("userIds" in audience) return audience.userIds.includes(viewer.userId);
  return viewer.rooms.has(audience.roomId);
}

export type LogReader = (after: string | undefined, limit: number) => Promise<ReadResult>;

/**
 * Reads up to `limit` events visible to `viewer` after `after`, scanning at most `maxScan` log
 * entries. `next` is the position of the last entry scanned, so skipped (invisible) entries are
 * never scanned again and no visible one is passed over.
 */
export async function readVisible(read: LogReader, after: string | undefined, limit: number, viewer: Viewer, maxScan = Math.max(1000, limit * 10)): Promise<ReadResult> {
  const events: StoredEvent[] = [];
  let cursor = after;
  let scanned = 0;
  let first = true;
  for (;;) {
    const page = await read(cursor, Math.min(1000, Math.max(limit, 100)));
    if (page.lost) {
      // A lost cursor can only be the caller's; positions the log returned stay valid.
      return first ? page : { events, hasMore: true, next: cursor ?? null, lost: false };
    }
    first = false;
    for (let i = 0; i < page.events.length; i++) {
      const event = page.events[i];
      scanned += 1;
      cursor = event.position;
      if (visibleTo(event, viewer)) events.push(event);
      if (events.length >= limit || scanned >= maxScan) {
        const hasMore = i < page.events.length - 1 || page.hasMore;
        return { events, hasMore, next: cursor, lost: false };
      }
    }
    if (!page.hasMore) return { events, hasMore: false, next: cursor ?? page.next, lost: false };
  }
}
