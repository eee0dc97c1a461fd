import type { Principal } from "./auth";
import { FifoMap } from "./fifo-map";

/** Enough for every token in use by a busy node's REST callers; ~3 MB at the bound. */
export const VERIFIED_TOKEN_CACHE_SIZE = 10_000;

/**
 * Tokens that passed verification, by their exact text, so a caller that sends the same token
 * on every request (a backend's service token, a polling client) costs one signature check, not
 * one per request (REST checked it twice: once for the rate-limit bucket, once to authenticate).
 * The text includes the signature, so the same text verifies the same way, except for time:
 * a hit is served only while `exp` (with the clock tolerance) has not passed; `nbf` had passed
 * already. Refused tokens are never kept, so garbage cannot fill it. The oldest entry goes first
 * when it is full; an expired one stays until then as a refusal, so no later hit (even one with an
 * earlier clock reading) is served it.
 */
export class VerifiedTokenCache {
  private readonly entries: FifoMap<string, Principal | null>;

  constructor(
    private readonly clockToleranceSeconds: number,
    maxEntries = VERIFIED_TOKEN_CACHE_SIZE
  ) {
    this.entries = new FifoMap(maxEntries);
  }

  /** The principal a still-valid cached token stands for (a copy: callers may extend it). */
  get(token: string, nowMs = Date.now()): Principal | undefined {
    const principal = this.entries.get(token);
    if (!principal) return undefined;
    if (principal.exp !== undefined && Math.floor(nowMs / 1000) >= principal.exp + this.clockToleranceSeconds) {
      this.entries.set(token, null);
      return undefined;
    }
    return { ...principal };
  }

  set(token: string, principal: Principal): void {
    this.entries.set(token, { ...principal });
  }

  get size(): number {
    return this.entries.size;
  }
}
