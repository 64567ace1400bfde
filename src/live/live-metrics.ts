/**
 * What the live layer reports to metrics, named where it is used (observability/Metrics
 * implements it). Every call is cheap and never throws.
 */
export interface LiveMetrics {
  sessionStarted(protocol: string): void;
  /** Also drops every per-input series the session had. */
  sessionEnded(liveInputUid: string, reason: string): void;
  transcoderRestarted(): void;
  transcoderFailed(): void;
  /** Seconds from the ingest of a part's last frame to the part being listed. */
  partPublished(delaySeconds: number): void;
}
