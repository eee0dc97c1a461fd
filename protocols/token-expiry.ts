/** setTimeout's ceiling; tokens living longer are checked again at the next ceiling. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `onExpired` once a token's `exp` (seconds) has passed: a connection is never more trusted
 * than its token. Each protocol says "expired" its own way in `onExpired`. Every timer it arms
 * (re-armed past setTimeout's ceiling) is handed to `keep`, so the connection can clear the
 * current one when it closes. Timers are unref'd: they never hold the process open.
 */
export function scheduleTokenExpiry(exp: number | undefined, keep: (timer: NodeJS.Timeout) => void, onExpired: () => void): void {
  if (exp === undefined) return;
  const timer = setTimeout(
    () => {
      if (exp * 1000 > Date.now()) scheduleTokenExpiry(exp, keep, onExpired);
      else onExpired();
    },
    // Whole seconds (at most 1 s late): Node keeps one timer list per distinct duration, so
    // connections opened in the same second share one instead of each adding a list of its own.
    Math.max(0, Math.min(Math.ceil((exp * 1000 - Date.now()) / 1000) * 1000, MAX_TIMER_MS))
  );
  timer.unref();
  keep(timer);
}
