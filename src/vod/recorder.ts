import { randomBytes } from 'node:crypto';
import type { LiveRecorder, LiveRecording, RecordedInput, RecordedSegment } from '../live/recording-contract.ts';
import type { Logger } from '../observability/logger.ts';
import { StorageQuotaError } from '../storage/errors.ts';
import { finalizeVideo, videoPrefix, type FinalizeDeps } from './finalize.ts';
import type { InitEntry, SegmentEntry } from './vod-playlist.ts';

/**
 * Records live broadcasts into videos: every finished segment and init segment of every rendition
 * goes into the spool under `videos/<videoUid>/<rendition>/<HLS file name>` as it completes, and
 * then into the video's manifest in Redis (so the manifest never names a file the spool may not
 * have). The HLS names carry a random per-session prefix: unique across reconnects and restarts.
 */
export interface StorageIssue {
  code: 'ERR_STORAGE_QUOTA_EXHAUSTED';
  message: string;
}

export interface RecorderOptions extends FinalizeDeps {
  /**
   * Segment bytes held in memory waiting for the spool, over every recording (default 64 MiB).
   * When the disk stalls, segments beyond it are dropped from the recording (a discontinuity)
   * rather than held: memory stays bounded and the live stream goes on.
   */
  maxBufferedBytes?: number;
  /** A live input's recording is losing segments for lack of space (issue), or keeps them again (undefined). */
  onStorageIssue?: (liveInputUid: string, issue: StorageIssue | undefined) => void;
  /** How long without a refused segment before the issue clears (default 5 s: renditions differ in size). */
  quotaClearAfterMs?: number;
}

/** Shared by every recording of one Recorder. */
interface Buffered {
  bytes: number;
  readonly max: number;
}

const QUOTA = 'ERR_STORAGE_QUOTA_EXHAUSTED';

export class Recorder implements LiveRecorder {
  readonly #opts: RecorderOptions;
  readonly #active = new Set<Recording>();
  readonly #buffered: Buffered;

  constructor(opts: RecorderOptions) {
    this.#opts = opts;
    this.#buffered = { bytes: 0, max: opts.maxBufferedBytes ?? 64 * 1024 * 1024 };
  }

  start(input: RecordedInput): LiveRecording {
    const recording = new Recording(this.#opts, this.#buffered, input, () => this.#active.delete(recording));
    this.#active.add(recording);
    return recording;
  }

  /** Recordings started and not yet finalized. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Segment bytes in memory waiting for the spool. */
  get bufferedBytes(): number {
    return this.#buffered.bytes;
  }
}

class Recording implements LiveRecording {
  readonly videoUid = randomBytes(16).toString('hex');
  readonly #deps: RecorderOptions;
  readonly #buffered: Buffered;
  readonly #input: RecordedInput;
  readonly #log: Logger;
  readonly #onDone: () => void;
  /** Since when segments are refused for lack of space (0: they are not), and how many. */
  #quotaSince = 0;
  #lastQuotaAt = 0;
  #quotaDropped = 0;
  #sessions = 0;
  #currentSession = '';
  /** Resolves true once the video record exists; created with the first segment, not before. */
  #created: Promise<boolean> | undefined;
  /** Per rendition, writes in segment order. */
  readonly #chains = new Map<string, Promise<void>>();
  #sessionsWrite: Promise<void> = Promise.resolve();
  readonly #initsWritten = new Set<string>();
  /** Session of each rendition's last segment: a change is a reconnect, hence a discontinuity. */
  readonly #lastSession = new Map<string, string>();
  /** Renditions that lost a segment: their next one follows a gap. */
  readonly #lost = new Set<string>();
  #finalized: Promise<void> | undefined;
  #dropped = 0;

  constructor(deps: RecorderOptions, buffered: Buffered, input: RecordedInput, onDone: () => void) {
    this.#deps = deps;
    this.#buffered = buffered;
    this.#input = input;
    this.#onDone = onDone;
    this.#log = deps.logger.child({ component: 'recorder', liveInput: input.uid, video: this.videoUid });
  }

  beginSession(sessionId: string): void {
    this.#sessions++;
    this.#currentSession = sessionId;
    if (this.#sessions > 1 && this.#created) {
      const sessions = this.#sessions;
      const created = this.#created;
      this.#sessionsWrite = this.#sessionsWrite.then(async () => {
        if (!(await created)) return;
        await this.#deps.videos
          .update(this.videoUid, (r) => ({ ...r, recording: { sessions: Math.max(r.recording.sessions, sessions) } }))
          .catch((error: unknown) => this.#log.warn({ err: error }, 'could not count the session on the video'));
      });
    }
  }

  addSegment(segment: RecordedSegment): void {
    if (this.#finalized) {
      this.#dropped++;
      return;
    }
    const last = this.#lastSession.get(segment.rendition);
    const reconnect = last !== undefined && last !== this.#currentSession;
    this.#lastSession.set(segment.rendition, this.#currentSession);
    const previous = this.#chains.get(segment.rendition) ?? Promise.resolve();
    const bytes = segment.data.length + segment.init.data.length;
    if (this.#buffered.bytes + bytes > this.#buffered.max) {
      // The disk is not keeping up: drop this one instead of holding it, said now (the writes
      // ahead of it may hang for long) and marked in order (the next written one follows a gap).
      this.#refused(`recording buffer full: ${this.#buffered.bytes} bytes wait for the spool (storage.recordBufferBytes); segments are dropped until the disk catches up`);
      this.#chains.set(
        segment.rendition,
        previous.then(() => {
          this.#lost.add(segment.rendition);
        }),
      );
      return;
    }
    this.#buffered.bytes += bytes;
    this.#chains.set(
      segment.rendition,
      previous
        .then(() => this.#write(segment, segment.discontinuity || reconnect))
        .finally(() => {
          this.#buffered.bytes -= bytes;
        }),
    );
  }

  /** A segment was refused for lack of space: said once per episode, not once per segment. */
  #refused(message: string): void {
    this.#quotaDropped++;
    this.#lastQuotaAt = Date.now();
    if (this.#quotaSince !== 0) return;
    this.#quotaSince = this.#lastQuotaAt;
    this.#log.error({ code: QUOTA }, `${QUOTA}: ${message}`);
    this.#deps.onStorageIssue?.(this.#input.uid, { code: QUOTA, message });
  }

  #kept(): void {
    if (this.#quotaSince === 0 || Date.now() - this.#lastQuotaAt < (this.#deps.quotaClearAfterMs ?? 5_000)) return;
    this.#log.info(
      { dropped: this.#quotaDropped, seconds: Math.round((this.#lastQuotaAt - this.#quotaSince) / 1000) },
      'recording resumed: storage has room again',
    );
    this.#quotaSince = 0;
    this.#quotaDropped = 0;
    this.#deps.onStorageIssue?.(this.#input.uid, undefined);
  }

  finalize(): Promise<void> {
    this.#finalized ??= (async () => {
      try {
        await Promise.all([...this.#chains.values(), this.#sessionsWrite]);
        if (this.#dropped > 0) this.#log.warn({ dropped: this.#dropped }, 'segments arrived after the recording ended');
        if (this.#quotaSince !== 0) {
          this.#log.warn({ dropped: this.#quotaDropped }, 'recording ended while storage had no room');
          this.#deps.onStorageIssue?.(this.#input.uid, undefined);
        }
        if (!this.#created || !(await this.#created)) return; // nothing was recorded: no video
        await finalizeVideo(this.#deps, this.videoUid);
      } catch (error) {
        this.#log.error({ err: error }, 'could not finalize the recording; recovery will at the next start');
      } finally {
        this.#onDone();
      }
    })();
    return this.#finalized;
  }

  #ensureCreated(): Promise<boolean> {
    this.#created ??= this.#deps.videos
      .createLive(
        {
          liveInput: this.#input.uid,
          meta: this.#input.meta,
          requireSignedURLs: this.#input.recording.requireSignedURLs,
          allowedOrigins: this.#input.recording.allowedOrigins,
          deleteRecordingAfterDays: this.#input.deleteRecordingAfterDays,
          sessions: Math.max(1, this.#sessions),
        },
        this.#deps.nodeId,
        this.videoUid,
      )
      .then(
        () => {
          this.#log.info('recording started');
          this.#deps.onEvent?.({ type: 'video.state', videoUid: this.videoUid, state: 'live-inprogress', liveInputUid: this.#input.uid });
          return true;
        },
        (error: unknown) => {
          this.#log.error({ err: error }, 'could not create the video record; will retry with the next segment');
          this.#created = undefined;
          return false;
        },
      );
    return this.#created;
  }

  async #write(segment: RecordedSegment, discontinuity: boolean): Promise<void> {
    const { rendition, init } = segment;
    const base = `${videoPrefix(this.videoUid)}${rendition}/`;
    try {
      if (!(await this.#ensureCreated())) throw new Error('no video record');
      const initId = `${rendition}/${init.name}`;
      if (!this.#initsWritten.has(initId)) {
        await this.#deps.spool.add(base + init.name, init.data, { contentType: 'video/mp4' });
        const entry: InitEntry = { r: rendition, t: 'init', f: init.name, codecs: init.codecs, b: init.data.length };
        if (init.width !== undefined) entry.w = init.width;
        if (init.height !== undefined) entry.h = init.height;
        await this.#deps.videos.appendManifest(this.videoUid, entry);
        this.#initsWritten.add(initId);
      }
      await this.#deps.spool.add(base + segment.name, segment.data, { contentType: 'video/iso.segment' });
      const entry: SegmentEntry = { r: rendition, t: 'seg', f: segment.name, i: init.name, d: segment.duration, b: segment.data.length };
      if (discontinuity || this.#lost.has(rendition)) entry.disc = true;
      await this.#deps.videos.appendManifest(this.videoUid, entry);
      this.#lost.delete(rendition);
      this.#kept();
    } catch (error) {
      // Disk full, Redis away: this segment is lost to the recording; the live stream goes on.
      this.#lost.add(rendition);
      if (error instanceof StorageQuotaError || (error as { code?: unknown } | undefined)?.code === QUOTA) this.#refused((error as Error).message);
      else this.#log.warn({ err: error, rendition, file: segment.name }, 'segment not recorded');
    }
  }
}
