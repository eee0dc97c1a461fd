import { formatPosition, parsePosition } from "../../stores/event-log";

/**
 * Seed 002 cursors are numbers (`last_poll_id`, `last_sequence`, the `sequence` of a frame); the
 * stream's positions are `<epoch>.<offset>` strings. This is the one mapping between them.
 *
 * - 0 (or absent): "nothing seen yet" — start at the current end of the stream (a new client is
 *   not flooded with the retained history).
 * - 1: the beginning of what the stream retains (the cursor of an empty stream).
 * - any other number: the stream number of an event; reading continues after it.
 *
 * Stream numbers increase with the stream. Redis Streams offsets `ms-seq` become `ms * 1000 + seq`
 * (Redis runs one append script at a time, each far longer than 1 µs, so seq stays below 1000).
 * In-process offsets (a counter per process) become `tag * 2^36 + offset`, where the tag is derived
 * from the stream's epoch: a number from before a restart does not match the new epoch and is
 * answered "history lost" instead of being read as an unrelated offset.
 */
export const FROM_NOW = 0;
export const FROM_START = 1;

const REDIS_SEQ_FACTOR = 1000;
const MEMORY_OFFSET_SPAN = 2 ** 36;
const MEMORY_TAGS = 2 ** 16 - 1;

/** The stream number of a position, or undefined for a position this mapping cannot express. */
export function sequenceOf(position: string): number | undefined {
  const parsed = parsePosition(position);
  if (!parsed) return undefined;
  if (parsed.offset.length === 2) {
    const [ms, seq] = parsed.offset;
    if (seq >= REDIS_SEQ_FACTOR) return undefined;
    const n = ms * REDIS_SEQ_FACTOR + seq;
    return Number.isSafeInteger(n) && n > FROM_START ? n : undefined;
  }
  const [offset] = parsed.offset;
  if (offset >= MEMORY_OFFSET_SPAN) return undefined;
  return epochTag(parsed.epoch) * MEMORY_OFFSET_SPAN + offset;
}

export type Cursor =
  /** Start at the stream's current end. */
  | { kind: "now" }
  /** Start at the beginning of what the stream retains. */
  | { kind: "start" }
  /** Continue after this position. */
  | { kind: "after"; position: string }
  /** The number cannot belong to the current stream (restarted, or never issued). */
  | { kind: "lost" };

/**
 * What a client's number means against the stream whose newest position is `head` (null for an
 * empty stream). Whether the stream still holds what follows an `after` cursor is the log's call.
 */
export function cursorOf(sequence: number, head: string | null): Cursor {
  if (sequence === FROM_NOW) return { kind: "now" };
  if (sequence === FROM_START) return { kind: "start" };
  if (!Number.isSafeInteger(sequence) || sequence < 0) return { kind: "lost" };
  const current = head === null ? undefined : parsePosition(head);
  if (!current) return { kind: "lost" };
  if (current.offset.length === 2) {
    const ms = Math.floor(sequence / REDIS_SEQ_FACTOR);
    return { kind: "after", position: formatPosition(current.epoch, `${ms}-${sequence % REDIS_SEQ_FACTOR}`) };
  }
  if (Math.floor(sequence / MEMORY_OFFSET_SPAN) !== epochTag(current.epoch)) return { kind: "lost" };
  return { kind: "after", position: formatPosition(current.epoch, String(sequence % MEMORY_OFFSET_SPAN)) };
}

/** 1..65535 from the epoch string (FNV-1a), never 0, so no in-process number is 0 or 1. */
function epochTag(epoch: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < epoch.length; i++) {
    hash ^= epoch.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash % MEMORY_TAGS) + 1;
}
