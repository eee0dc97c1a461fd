import type { AppendResult, BusEvent } from "../stores/event-log";

/** What `eventbus.appendMany` answers per event, in order. */
export type AppendOutcome = AppendResult | { error: { message: string; code?: string } };

export type AppendMany = (events: BusEvent[]) => Promise<AppendOutcome[]>;

/**
 * Gathers the appends made during one event-loop turn into one `appendMany` request, so a gateway
 * whose log lives on another node pays one round trip per batch instead of one per message. Each
 * caller still resolves only once its own event is durable (or rejects), with its own result, and
 * events keep the order in which they were submitted.
 */
export class AppendBatcher {
  private queue: Array<{ event: BusEvent; resolve: (result: AppendResult) => void; reject: (err: Error) => void }> = [];
  private scheduled = false;

  constructor(
    private readonly appendMany: AppendMany,
    private readonly maxBatch = 500
  ) {}

  append(event: BusEvent): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.appendMany(batch.map(entry => entry.event)).then(
        outcomes => {
          batch.forEach((entry, i) => {
            const outcome = outcomes[i];
            if (outcome && "event" in outcome) entry.resolve(outcome);
            else entry.reject(Object.assign(new Error(outcome?.error.message ?? "Append failed"), { code: outcome?.error.code }));
          });
        },
        (err: Error) => batch.forEach(entry => entry.reject(err))
      );
    }
  }
}
