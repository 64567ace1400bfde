import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import type {
  FlvTag,
  IngestProtocol,
  PublishEndReason,
  PublishSession,
  TerminateReason,
  KeyframeWant,
} from './ingest-contract.ts';
import { encodeFlvHeader, encodeFlvTag } from '../media/flv-tags.ts';
import { readMetadataNumber } from '../media/flv-metadata.ts';
import { FlvSourceInfo } from '../media/flv-source-info.ts';
import { Fmp4Reader } from '../media/fmp4-reader.ts';
import { HlsLiveStream } from '../hls/live-stream.ts';
import { chooseLadder, type LadderRung, type RenditionSpec } from '../transcode/ladder.ts';
import { buildLiveArgs } from '../transcode/ffmpeg-args.ts';
import { Transcoder } from '../transcode/transcoder.ts';
import { InputHealth, type HealthIssue } from './input-health.ts';
import { IngestRateLimit } from './ingest-rate-limit.ts';
import { IngestClock } from './ingest-clock.ts';
import { mainFragmentTrack, type Mp4Fragment } from '../media/mp4-types.ts';
import type { LiveMetrics } from './live-metrics.ts';

export type LiveSessionState = 'waiting_for_media' | 'starting' | 'live' | 'ended';

export interface LiveSessionSettings {
  ffmpegPath: string;
  ffmpegStartTimeoutMs: number;
  maxRestarts: number;
  ladder: LadderRung[];
  includeSource: boolean;
  maxRenditions: number;
  gopSeconds: number;
  x264Preset: string;
  segmentTargetSeconds: number;
  partTargetSeconds: number;
  windowSegments: number;
  /** Ingest bitrate (10 s average) above which the publisher is disconnected; 0 or absent: no limit. */
  maxInputBitrateKbps?: number;
}

export interface LiveSessionOptions {
  liveInputUid: string;
  protocol: IngestProtocol;
  remoteAddress: string;
  settings: LiveSessionSettings;
  logger: Logger;
  metrics?: LiveMetrics | undefined;
}

export interface LiveSessionEvents {
  live: () => void;
  health: (issue: HealthIssue) => void;
  ended: (reason: PublishEndReason | TerminateReason) => void;
}

// Before the first keyframe only the codec headers are kept; a publisher that sends media
// without ever sending a keyframe must not make us buffer without bound.
const MAX_HEADER_TAGS = 16;
const MAX_TAG_BYTES = 16 * 1024 * 1024;

/**
 * One live broadcast of one live input: FLV in, one supervised FFmpeg, one fMP4 reader per
 * rendition, the LL-HLS model out. Owned by the SessionRegistry.
 */
export class LiveSession implements PublishSession {
  readonly liveInputUid: string;
  readonly id = randomBytes(8).toString('hex');
  readonly startedAt = Date.now();
  readonly hls: HlsLiveStream;
  readonly protocol: IngestProtocol;
  readonly remoteAddress: string;
  state: LiveSessionState = 'waiting_for_media';
  endReason: PublishEndReason | TerminateReason | undefined;
  renditions: RenditionSpec[] = [];
  bytesIn = 0;

  readonly #settings: LiveSessionSettings;
  readonly #log: Logger;
  readonly #sourceInfo = new FlvSourceInfo();
  readonly #headerTags = new Map<string, Buffer>();
  #scriptTag: Buffer | undefined;
  #transcoder: Transcoder | undefined;
  #readers: Fmp4Reader[] = [];
  readonly #clock = new IngestClock();
  /** From the publisher's onMetaData; sizes fMP4 fragments to whole frames. */
  #fps: number | undefined;
  #terminateListeners: Array<(reason: TerminateReason) => void> = [];
  #keyframeListeners: Array<(why: KeyframeWant) => void> = [];
  /** The latest sequence header of each tag type, as received (for readers that join late). */
  readonly #sequenceHeaders = new Map<number, FlvTag>();
  /** Readers of the source FLV (simulcast); each must return at once and never throw. */
  #taps: Array<(tag: FlvTag) => void> = [];
  #listeners: { [K in keyof LiveSessionEvents]: Array<LiveSessionEvents[K]> } = { live: [], health: [], ended: [] };
  readonly health: InputHealth;
  readonly #rateLimit: IngestRateLimit | undefined;
  readonly #metrics: LiveMetrics | undefined;
  #closed: Promise<void> | undefined;

  constructor(opts: LiveSessionOptions) {
    this.liveInputUid = opts.liveInputUid;
    this.protocol = opts.protocol;
    this.remoteAddress = opts.remoteAddress;
    this.#settings = opts.settings;
    this.#metrics = opts.metrics;
    this.#log = opts.logger.child({ liveInput: opts.liveInputUid, session: this.id });
    // A GOP longer than two segment targets makes every segment (and player hold-back) longer.
    this.health = new InputHealth({ maxKeyframeIntervalSeconds: Math.max(4, opts.settings.segmentTargetSeconds * 2) });
    const maxKbps = opts.settings.maxInputBitrateKbps ?? 0;
    this.#rateLimit = maxKbps > 0 ? new IngestRateLimit({ maxKbps }) : undefined;
    this.hls = new HlsLiveStream({
      // A random prefix per session: a CDN can never serve one session's part for another's.
      prefix: randomBytes(4).toString('hex'),
      segmentTarget: opts.settings.segmentTargetSeconds,
      partTarget: opts.settings.partTargetSeconds,
      windowSegments: opts.settings.windowSegments,
      ...(opts.metrics ? { onPartListed: (_rendition: string, fragment: Mp4Fragment) => this.#partListed(fragment) } : {}),
    });
  }

  /** Part publish delay: from the arrival of the part's last frame to now, when it is listed. */
  #partListed(fragment: Mp4Fragment): void {
    const track = mainFragmentTrack(fragment);
    if (!track || track.timescale <= 0 || track.sampleCount <= 0) return;
    const lastFrame = track.baseMediaDecodeTime + track.duration - track.duration / track.sampleCount;
    const wall = this.#clock.wallFor(lastFrame / track.timescale);
    if (wall !== undefined) this.#metrics?.partPublished((Date.now() - wall) / 1000);
  }

  on<K extends keyof LiveSessionEvents>(event: K, listener: LiveSessionEvents[K]): void {
    this.#listeners[event].push(listener);
  }

  onTerminate(listener: (reason: TerminateReason) => void): void {
    this.#terminateListeners.push(listener);
  }

  onKeyframeWanted(listener: (why: KeyframeWant) => void): void {
    this.#keyframeListeners.push(listener);
  }

  /** Asks the publisher for a keyframe; false when its ingest cannot ask (RTMP, SRT). */
  requestKeyframe(): boolean {
    this.#wantKeyframe('playback');
    return this.#keyframeListeners.length > 0;
  }

  #wantKeyframe(why: KeyframeWant): void {
    for (const l of this.#keyframeListeners) {
      try {
        l(why);
      } catch (error) {
        this.#log.warn({ err: error }, 'keyframe listener threw');
      }
    }
  }

  /** The latest codec configuration tags (AVC, AAC), for a reader that taps mid-stream. */
  sequenceHeaders(): FlvTag[] {
    return [...this.#sequenceHeaders.values()];
  }

  /** Every tag the publisher sends from now on, as received; returns the unsubscribe. */
  tapFlv(listener: (tag: FlvTag) => void): () => void {
    this.#taps.push(listener);
    return () => {
      this.#taps = this.#taps.filter((l) => l !== listener);
    };
  }

  pushFlvTag(tag: FlvTag): void {
    if (this.state === 'ended') return;
    if (tag.data.length > MAX_TAG_BYTES) return;
    this.bytesIn += tag.data.length;
    if (this.#rateLimit?.add(tag.data.length)) {
      this.#log.warn(
        { averageKbps: Math.round(this.#rateLimit.averageBitsPerSecond / 1000), limitKbps: this.#settings.maxInputBitrateKbps },
        'publisher over the ingest bitrate limit: disconnecting',
      );
      void this.terminate('over_limit');
      return;
    }
    for (const tap of this.#taps) {
      try {
        tap(tag);
      } catch (error) {
        this.#log.error({ err: error }, 'FLV tap failed');
      }
    }
    for (const issue of this.health.push(tag, Date.now())) {
      this.#log.warn({ code: issue.code }, issue.message);
      for (const l of this.#listeners.health) l(issue);
    }
    if (tag.type === 18) {
      this.#scriptTag = encodeFlvTag({ ...tag, timestamp: 0 });
      const fps = readMetadataNumber(tag.data, 'framerate');
      if (fps !== undefined && fps >= 1 && fps <= 240) this.#fps = fps;
      return;
    }
    if (tag.sequenceHeader) {
      this.#sourceInfo.push(tag);
      this.#sequenceHeaders.set(tag.type, tag);
      if (this.#headerTags.size < MAX_HEADER_TAGS) this.#headerTags.set(String(tag.type), encodeFlvTag({ ...tag, timestamp: 0 }));
      // A changed codec configuration mid-stream goes to FFmpeg as is; it handles SPS changes.
      this.#transcoder?.write(encodeFlvTag(tag), { keyframe: false });
      return;
    }
    if (!this.#transcoder) {
      if (tag.type !== 9 || !tag.keyframe) return; // wait for the first keyframe
      this.#startTranscoder();
    }
    const written = this.#transcoder?.write(encodeFlvTag(tag), { keyframe: tag.type === 9 && tag.keyframe });
    if (written && tag.type === 9) this.#clock.record(tag.timestamp, Date.now());
  }

  /** Source codecs and size as seen in the sequence headers. */
  get sourceInfo(): FlvSourceInfo['info'] {
    return this.#sourceInfo.info;
  }

  #startTranscoder(): void {
    const info = this.#sourceInfo.info;
    const s = this.#settings;
    this.renditions = chooseLadder(
      { width: info.video?.width, height: info.video?.height },
      s.ladder,
      { includeSource: s.includeSource, maxRenditions: s.maxRenditions },
    );
    const args = buildLiveArgs({
      renditions: this.renditions,
      gopSeconds: s.gopSeconds,
      partDurationSeconds: s.partTargetSeconds,
      ...(this.#fps !== undefined ? { fps: this.#fps } : {}),
      sourceAudio: info.audio ? (info.audio.codec === 'aac' ? 'aac' : 'other') : 'none',
      input: 'flv-stdin',
      sourceSize: { width: info.video?.width, height: info.video?.height },
      x264Preset: s.x264Preset,
    });
    this.#log.info(
      { source: info, renditions: this.renditions.map((r) => r.name) },
      'starting transcoder',
    );
    for (const r of this.renditions) this.hls.addRendition(r.name, { bandwidthHint: (r.videoBitrateKbps ?? 0) * 1000 });
    this.#resetReaders();

    const transcoder = new Transcoder({
      ffmpegPath: s.ffmpegPath,
      args,
      outputs: this.renditions.length,
      logger: this.#log,
      startTimeoutMs: s.ffmpegStartTimeoutMs,
      restart: { maxRestarts: s.maxRestarts, windowMs: 60_000, backoff: { baseMs: 250, maxMs: 5000 } },
    });
    this.#transcoder = transcoder;
    const headers = [encodeFlvHeader({ audio: info.audio !== undefined, video: true })];
    if (this.#scriptTag) headers.push(this.#scriptTag);
    headers.push(...this.#headerTags.values());
    transcoder.setHeaders(headers);
    transcoder.on('data', (index: number, chunk: Buffer) => this.#onOutput(index, chunk));
    transcoder.on('restart', (attempt: number, error: unknown) => {
      this.#log.warn({ attempt, err: error }, 'transcoder restarted');
      this.#metrics?.transcoderRestarted();
      this.#resetReaders();
      this.#clock.reset();
    });
    transcoder.on('keyframeWanted', () => this.#wantKeyframe('restart'));
    transcoder.on('failed', (error: unknown) => {
      this.#log.error({ err: error }, 'transcoder failed for good');
      this.#metrics?.transcoderFailed();
      this.terminate('transcoder_failed');
    });
    this.state = 'starting';
    transcoder.start().then(
      () => {
        if (this.state === 'ended') return;
        this.state = 'live';
        this.#log.info({ ms: Date.now() - this.startedAt }, 'live');
        for (const l of this.#listeners.live) l();
      },
      (error: unknown) => {
        this.#log.error({ err: error }, 'transcoder did not start');
        this.#metrics?.transcoderFailed();
        this.terminate('transcoder_failed');
      },
    );
  }

  #resetReaders(): void {
    this.#readers = this.renditions.map(() => new Fmp4Reader());
  }

  #onOutput(index: number, chunk: Buffer): void {
    const reader = this.#readers[index];
    const rendition = this.renditions[index];
    if (!reader || !rendition) return;
    let events;
    try {
      events = reader.push(chunk);
    } catch (error) {
      // A corrupt output stream: drop this reader's state; the next init resynchronises it.
      this.#log.error({ err: error, rendition: rendition.name }, 'unreadable FFmpeg output');
      this.#readers[index] = new Fmp4Reader();
      return;
    }
    for (const event of events) {
      if (event.type === 'init') this.hls.pushInit(rendition.name, event.init);
      else {
        const track = mainFragmentTrack(event.fragment);
        const wall = track && track.timescale > 0 ? this.#clock.wallFor(track.baseMediaDecodeTime / track.timescale) : undefined;
        this.hls.pushFragment(rendition.name, event.fragment, wall);
      }
    }
  }

  /** The publisher went away. */
  end(reason: PublishEndReason): void {
    void this.#finish(reason);
  }

  /** The server wants the publisher gone: tell the ingest adapter, then finish. */
  terminate(reason: TerminateReason): Promise<void> {
    if (this.state !== 'ended') {
      for (const l of this.#terminateListeners) {
        try {
          l(reason);
        } catch (error) {
          this.#log.warn({ err: error }, 'terminate listener threw');
        }
      }
    }
    return this.#finish(reason);
  }

  /** Resolves when FFmpeg is gone and the playlists are final. */
  get closed(): Promise<void> {
    return this.#closed ?? Promise.resolve();
  }

  #finish(reason: PublishEndReason | TerminateReason): Promise<void> {
    if (this.#closed) return this.#closed;
    this.state = 'ended';
    this.endReason = reason;
    this.#closed = (async () => {
      this.#log.info({ reason, bytesIn: this.bytesIn }, 'session ending');
      try {
        await this.#transcoder?.close();
      } catch (error) {
        this.#log.warn({ err: error }, 'transcoder close failed');
      }
      this.hls.end();
      for (const l of this.#listeners.ended) l(reason);
    })();
    return this.#closed;
  }
}
