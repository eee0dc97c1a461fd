/** What a batch request answers per item, in order: a result, or why that one item failed. */
export type BatchOutcome<O> = { ok: O } | { error: { message: string; code?: string } };

export interface TurnBatcherOptions {
  /** Items per request at most; a busier turn becomes several requests. */
  maxBatch?: number;
  /**
   * Requests in flight at most. With 1, requests go strictly one after another, so items are
   * applied in submission order even across batches, and whatever arrives while one is in flight
   * waits for the next (the busier the node, the larger the batches).
   */
  maxInFlight?: number;
}

/**
 * Gathers the items submitted during one event-loop turn into one request, so a caller on the
 * hot path pays one round trip per batch instead of one per item. Each submitter still resolves
 * only once its own item is done (or rejects with its own error), and items keep their order.
 */
export class TurnBatcher<I, O> {
  private queue: Array<{ item: I; resolve: (result: O) => void; reject: (err: Error) => void }> = [];
  private scheduled = false;
  private inFlight = 0;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly run: (items: I[]) => Promise<Array<BatchOutcome<O>>>,
    options: TurnBatcherOptions = {}
  ) {
    this.maxBatch = options.maxBatch ?? 500;
    this.maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  }

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting for a request. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight += 1;
      this.run(batch.map(entry => entry.item))
        .then(
          outcomes =>
            batch.forEach((entry, i) => {
              const outcome = outcomes[i];
              if (outcome && "ok" in outcome) entry.resolve(outcome.ok);
              else entry.reject(Object.assign(new Error(outcome?.error.message ?? "No answer for this item"), { code: outcome?.error.code }));
            }),
          (err: Error) => batch.forEach(entry => entry.reject(err))
        )
        .finally(() => {
          this.inFlight -= 1;
          this.schedule();
        });
    }
  }
}
