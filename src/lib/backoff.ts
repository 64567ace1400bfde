export interface BackoffOptions {
  /** First delay in ms. */
  baseMs: number;
  /** Upper bound in ms. */
  maxMs: number;
  /** Fraction of the delay randomised (0..1), so that many retries do not fire in lockstep. */
  jitter?: number;
}

/** Exponential backoff delay for the given 0-based attempt. */
export function backoffDelay(attempt: number, { baseMs, maxMs, jitter = 0.2 }: BackoffOptions): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  const spread = raw * jitter;
  return Math.max(0, Math.round(raw - spread + Math.random() * 2 * spread));
}
