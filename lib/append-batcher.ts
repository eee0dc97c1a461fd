import { withPosition, type AppendResult, type BusEvent, type StoredEvent } from "../stores/event-log/event-log";
import { TurnBatcher, type BatchOutcome } from "./turn-batcher";

/**
 * What `eventbus.appendMany` answers per event: only the position of a new event (the caller
 * already holds the rest of it, so it does not cross the transporter twice), or the event stored
 * earlier under the same eventId.
 */
export type AppendReceipt = { position: string } | { duplicate: StoredEvent };

export type AppendOutcome = BatchOutcome<AppendReceipt>;

export type AppendMany = (events: BusEvent[]) => Promise<AppendOutcome[]>;

/** The receipt of an append as it goes back to the node that asked for it. */
export function receiptOf(result: AppendResult): AppendReceipt {
  return result.duplicate ? { duplicate: result.event } : { position: result.event.position };
}

/** The append result of `event` from its receipt. */
export function resultOf(event: BusEvent, receipt: AppendReceipt): AppendResult {
  return "duplicate" in receipt ? { event: receipt.duplicate, duplicate: true } : { event: withPosition(event, receipt.position), duplicate: false };
}

/**
 * The appends a gateway makes during one event-loop turn, sent as one `appendMany` request, so a
 * gateway whose log lives on another node pays one round trip per batch instead of one per
 * message. Each caller still resolves only once its own event is durable (or rejects).
 */
export class AppendBatcher {
  private readonly batcher: TurnBatcher<BusEvent, AppendReceipt>;

  constructor(appendMany: AppendMany, maxBatch = 500) {
    this.batcher = new TurnBatcher(appendMany, { maxBatch });
  }

  async append(event: BusEvent): Promise<AppendResult> {
    return resultOf(event, await this.batcher.submit(event));
  }
}
