import type { ViewerAdmission } from './viewer-admission.ts';

/** Why a viewer was refused (the metric's `reason` label): one value so far, more may come. */
export type ViewerRefusalReason = 'max_viewers_per_stream';

export interface ViewerRefusalLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface ReportedViewerAdmissionOptions {
  /** Counts each refusal (the Prometheus counter). */
  onRefused?: (reason: ViewerRefusalReason) => void;
  logger: ViewerRefusalLogger;
  /** The limit, for the log line. */
  maxViewers: number;
  /** At most one log line per this long, summing the refusals since the last one. */
  logIntervalMs?: number;
  now?: () => number;
}

const DEFAULT_LOG_INTERVAL_MS = 60_000;

/**
 * A ViewerAdmission that counts and logs what the one it wraps refuses. A popular stream at its
 * limit refuses every newcomer (and bots refuse-loop), so the log gets a summary at most once per
 * interval: the first refusal after a quiet interval is logged at once, with how many went unlogged.
 */
export class ReportedViewerAdmission implements ViewerAdmission {
  readonly #inner: ViewerAdmission;
  readonly #opts: ReportedViewerAdmissionOptions;
  readonly #now: () => number;
  #refused = 0;
  #logged = 0;
  #lastLog = Number.NEGATIVE_INFINITY;

  constructor(inner: ViewerAdmission, opts: ReportedViewerAdmissionOptions) {
    this.#inner = inner;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  get retryAfterSeconds(): number {
    return this.#inner.retryAfterSeconds;
  }

  /** Refusals since this node started. */
  get refused(): number {
    return this.#refused;
  }

  async admit(liveInputUid: string, viewerKey: string): Promise<boolean> {
    const ok = await this.#inner.admit(liveInputUid, viewerKey);
    if (!ok) this.#report(liveInputUid);
    return ok;
  }

  #report(liveInputUid: string): void {
    this.#refused++;
    this.#opts.onRefused?.('max_viewers_per_stream');
    const now = this.#now();
    if (now - this.#lastLog < (this.#opts.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS)) return;
    // The viewer key (a playback session derived from the client) stays out of the log.
    this.#opts.logger.warn(
      { count: this.#refused - this.#logged, liveInput: liveInputUid, maxViewersPerStream: this.#opts.maxViewers, code: 'TOO_MANY_VIEWERS' },
      'viewers refused: live stream at its viewer limit',
    );
    this.#lastLog = now;
    this.#logged = this.#refused;
  }
}
