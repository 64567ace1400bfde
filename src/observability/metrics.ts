import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { IngestProtocol } from '../live/ingest-contract.ts';
import type { LiveMetrics } from '../live/live-metrics.ts';
import type { IngestStats } from '../live/session-registry.ts';

/**
 * Every Prometheus series Tributary exports, defined in this one place, on a registry of its own
 * (never prom-client's global one, so several App instances and tests never collide).
 *
 * Counters and histograms are pushed by the modules that see the event (through the small
 * interfaces they declare: LiveMetrics, PlaybackGuard's `metrics`, …). Gauges of current state
 * (sessions, per-input ingest rates, held requests, the spool) are read from their owners at
 * scrape time, so a live input's labels exist exactly while its session does.
 */

/** Current live sessions, read at scrape time (implemented by the SessionRegistry). */
export interface LiveMetricsSource {
  ingestStats(): Iterable<IngestStats>;
  /** Requests held by blocking playlist reload or a preload-hinted part, over every stream. */
  readonly waitingRequests: number;
}

/** The spool, read at scrape time (implemented by storage/Spool). */
export interface SpoolMetricsSource {
  readonly pendingFiles: number;
  readonly pendingBytes: number;
  readonly oldestPendingAgeMs: number;
  readonly uploadedTotal: number;
  readonly uploadedBytes: number;
  readonly failedAttempts: number;
}

/** Outcomes of a webhook delivery attempt (fed by webhooks/). */
/** A webhook attempt's outcome, as in the delivery log: retrying = failed, will try again; failed = given up. */
export type WebhookDeliveryResult = 'delivered' | 'retrying' | 'failed' | 'dropped';

const INGEST_PROTOCOLS: readonly IngestProtocol[] = ['rtmp', 'rtmps', 'whip', 'srt'];
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export class Metrics implements LiveMetrics {
  readonly registry = new Registry();
  #live: LiveMetricsSource | undefined;
  #spool: SpoolMetricsSource | undefined;

  readonly #sessionsStarted: Counter<'protocol'>;
  readonly #sessionsEnded: Counter<'reason'>;
  readonly #transcoderRestarts: Counter;
  readonly #transcoderFailures: Counter;
  readonly #partDelay: Histogram;
  readonly #viewers: Gauge<'live_input'>;
  readonly #httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly #httpDuration: Histogram<'method' | 'route' | 'status_class'>;
  readonly #playbackChecks: Counter<'result'>;
  readonly #playbackRefusals: Counter<'reason'>;
  readonly #viewersRefused: Counter<'reason'>;
  readonly #webhookDeliveries: Counter<'result'>;
  #viewersOf: ((liveInputUid: string) => Promise<number>) | undefined;
  #whipCount: (() => number) | undefined;
  #whepCount: (() => number) | undefined;
  readonly #whepViewersEnded: Counter<'reason'>;

  constructor() {
    const registers = [this.registry];
    // collect() runs with `this` bound to its metric; these reach the sources.
    const live = () => this.#live;
    const spoolSource = () => this.#spool;
    const viewersSource = () => this.#viewersOf;
    const whipSource = () => this.#whipCount;
    const whepSource = () => this.#whepCount;

    new Gauge({
      name: 'tributary_live_sessions',
      help: 'Live sessions on this node (publisher connected), by ingest protocol.',
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        // Known protocols read 0 rather than vanish, so sums and alerts see an idle node.
        for (const protocol of INGEST_PROTOCOLS) this.set({ protocol }, 0);
        for (const s of live()?.ingestStats() ?? []) this.inc({ protocol: s.protocol });
      },
    });
    this.#sessionsStarted = new Counter({
      name: 'tributary_live_sessions_started_total',
      help: 'Publishes accepted, by ingest protocol.',
      labelNames: ['protocol'],
      registers,
    });
    this.#sessionsEnded = new Counter({
      name: 'tributary_live_sessions_ended_total',
      help: 'Live sessions ended, by reason (client_disconnect, timeout, protocol_error, transcoder_failed, input_deleted, input_disabled, shutdown, over_limit).',
      labelNames: ['reason'],
      registers,
    });
    const perInput = (name: string, help: string, pick: (s: IngestStats) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['live_input'],
        registers,
        // Rebuilt at every scrape: a live input's series vanish with its session.
        collect() {
          this.reset();
          for (const s of live()?.ingestStats() ?? []) {
            const v = pick(s);
            if (v !== undefined && Number.isFinite(v)) this.set({ live_input: s.liveInputUid }, v);
          }
        },
      });
    perInput('tributary_ingest_bitrate_bits_per_second', 'Bits per second received from the publisher (last 5 s), per live input.', (s) => s.bitrateBitsPerSecond);
    perInput('tributary_ingest_frames_per_second', 'Video frames per second received from the publisher (last 5 s), per live input.', (s) => s.framesPerSecond);
    perInput('tributary_ingest_keyframe_interval_seconds', "Mean interval of the publisher's recent keyframes, per live input.", (s) => s.keyframeIntervalSeconds);

    this.#transcoderRestarts = new Counter({
      name: 'tributary_transcoder_restarts_total',
      help: 'FFmpeg processes restarted after a crash.',
      registers,
    });
    this.#transcoderFailures = new Counter({
      name: 'tributary_transcoder_failures_total',
      help: 'Sessions ended because FFmpeg would not start or crashed too often.',
      registers,
    });
    this.#partDelay = new Histogram({
      name: 'tributary_hls_part_publish_delay_seconds',
      help: "Time from the ingest of a part's last frame to the part being listed in its playlist (transcode + packaging).",
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
      registers,
    });
    new Gauge({
      name: 'tributary_hls_blocking_requests_waiting',
      help: 'Requests held by LL-HLS blocking playlist reload or a preload-hinted part.',
      registers,
      collect() {
        this.set(live()?.waitingRequests ?? 0);
      },
    });
    this.#viewers = new Gauge({
      name: 'tributary_viewers',
      help: 'Current viewers per live input live on this node (distinct playback sessions, counted across nodes in Redis).',
      labelNames: ['live_input'],
      registers,
      async collect() {
        this.reset();
        const count = viewersSource();
        const source = live();
        if (!count || !source) return;
        const uids = [...source.ingestStats()].map((s) => s.liveInputUid);
        const counts = await Promise.all(uids.map((uid) => count(uid).catch(() => undefined)));
        uids.forEach((uid, i) => {
          const n = counts[i];
          if (n !== undefined) this.set({ live_input: uid }, n);
        });
      },
    });
    new Gauge({
      name: 'tributary_whip_sessions',
      help: 'WHIP (WebRTC) publisher sessions open on this node, including those still connecting.',
      registers,
      collect() {
        this.set(whipSource()?.() ?? 0);
      },
    });

    new Gauge({
      name: 'tributary_whep_viewers',
      help: 'WHEP (WebRTC) playback viewers on this node, including those still connecting.',
      registers,
      collect() {
        this.set(whepSource()?.() ?? 0);
      },
    });
    this.#whepViewersEnded = new Counter({
      name: 'tributary_whep_viewers_ended_total',
      help: 'WHEP viewers ended, by reason (deleted, peer_gone, timeout, slow, send_failed, session_ended, shutdown, setup_failed).',
      labelNames: ['reason'],
      registers,
    });

    this.#httpRequests = new Counter({
      name: 'tributary_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: 'tributary_http_request_duration_seconds',
      help: 'HTTP request latency by method, route pattern and status class (blocking reloads include their hold).',
      labelNames: ['method', 'route', 'status_class'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#playbackChecks = new Counter({
      name: 'tributary_playback_checks_total',
      help: 'Playback access checks (token, policy, access rules, origin), by result: allowed or refused.',
      labelNames: ['result'],
      registers,
    });
    this.#playbackRefusals = new Counter({
      name: 'tributary_playback_refusals_total',
      help: 'Playback refused, by reason code (TOKEN_EXPIRED, TOKEN_REQUIRED, ACCESS_RULE_BLOCKED, …).',
      labelNames: ['reason'],
      registers,
    });
    this.#viewersRefused = new Counter({
      name: 'tributary_viewers_refused_total',
      help: 'New viewers refused (429 TOO_MANY_VIEWERS), by reason (max_viewers_per_stream).',
      labelNames: ['reason'],
      registers,
    });

    const spool = (name: string, help: string, read: (s: SpoolMetricsSource) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const source = spoolSource();
          this.set(source ? read(source) : 0);
        },
      });
    spool('tributary_spool_files', 'Files in the spool not yet uploaded to the object store.', (s) => s.pendingFiles);
    spool('tributary_spool_bytes', 'Bytes in the spool not yet uploaded to the object store.', (s) => s.pendingBytes);
    spool('tributary_spool_upload_lag_seconds', 'Age of the oldest file still waiting in the spool (0 when empty).', (s) => s.oldestPendingAgeMs / 1000);
    const spoolCounter = (name: string, help: string, read: (s: SpoolMetricsSource) => number) =>
      new Counter({
        name,
        help,
        registers,
        // The spool keeps the running totals; the counter mirrors them.
        collect() {
          this.reset();
          const source = spoolSource();
          if (source) this.inc(read(source));
        },
      });
    spoolCounter('tributary_spool_uploads_total', 'Files uploaded from the spool to the object store.', (s) => s.uploadedTotal);
    spoolCounter('tributary_spool_uploaded_bytes_total', 'Bytes uploaded from the spool to the object store.', (s) => s.uploadedBytes);
    spoolCounter('tributary_spool_upload_failures_total', 'Upload attempts from the spool that failed (each retry counts).', (s) => s.failedAttempts);

    this.#webhookDeliveries = new Counter({
      name: 'tributary_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by result: delivered, failed (will retry) or dropped (gave up).',
      labelNames: ['result'],
      registers,
    });

    // Known label values start at 0, so a rate() over them works before the first event.
    for (const result of ['allowed', 'refused']) this.#playbackChecks.inc({ result }, 0);
    for (const result of ['delivered', 'retrying', 'failed', 'dropped']) this.#webhookDeliveries.inc({ result }, 0);
    this.#viewersRefused.inc({ reason: 'max_viewers_per_stream' }, 0);

    // Node process metrics (CPU, memory, event loop lag, GC, handles), unprefixed as usual.
    collectDefaultMetrics({ register: this.registry });
  }

  /** Where the scrape reads live sessions and held requests from. */
  observeLive(source: LiveMetricsSource): void {
    this.#live = source;
  }

  observeSpool(source: SpoolMetricsSource): void {
    this.#spool = source;
  }

  /** The viewer count of a live input (read at scrape time for the inputs live on this node). */
  observeViewers(count: (liveInputUid: string) => Promise<number>): void {
    this.#viewersOf = count;
  }

  /** WHIP sessions open on this node. */
  observeWhip(count: () => number): void {
    this.#whipCount = count;
  }

  /** WHEP viewers open on this node. */
  observeWhep(count: () => number): void {
    this.#whepCount = count;
  }

  /** A WHEP viewer ended (a slow one dropped: reason `slow`). */
  whepViewerEnded(reason: string): void {
    this.#whepViewersEnded.inc({ reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  // --- pushed by live/ (LiveMetrics) ---

  sessionStarted(protocol: string): void {
    this.#sessionsStarted.inc({ protocol });
  }

  /** A session ended: its reason is counted and every per-input series it had is dropped. */
  sessionEnded(liveInputUid: string, reason: string): void {
    this.#sessionsEnded.inc({ reason });
    this.#viewers.remove({ live_input: liveInputUid });
  }

  transcoderRestarted(): void {
    this.#transcoderRestarts.inc();
  }

  transcoderFailed(): void {
    this.#transcoderFailures.inc();
  }

  partPublished(delaySeconds: number): void {
    if (Number.isFinite(delaySeconds) && delaySeconds >= 0) this.#partDelay.observe(delaySeconds);
  }

  // --- pushed by access/ (PlaybackGuard) ---

  playbackChecked(result: { ok: true } | { ok: false; code: string }): void {
    this.#playbackChecks.inc({ result: result.ok ? 'allowed' : 'refused' });
    if (!result.ok) this.#playbackRefusals.inc({ reason: result.code });
  }

  /** A new viewer was refused (the per-stream viewer limit). */
  viewerRefused(reason: string): void {
    this.#viewersRefused.inc({ reason });
  }

  // --- pushed by the HTTP listeners ---

  /** `route` must be a route pattern (bounded), never a raw URL. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    const m = KNOWN_METHODS.has(method) ? method : 'OTHER';
    this.#httpRequests.inc({ method: m, route, status: String(status) });
    this.#httpDuration.observe({ method: m, route, status_class: `${Math.floor(status / 100)}xx` }, seconds);
  }

  // --- fed by modules built elsewhere (wired by the composition root) ---

  webhookDelivery(result: WebhookDeliveryResult): void {
    this.#webhookDeliveries.inc({ result });
  }
}
