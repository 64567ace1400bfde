import type { Logger } from '../observability/logger.ts';
import type { LadderRung } from '../transcode/ladder.ts';
import type { HlsStreamView, LivePlayback } from '../origin/live-playback.ts';
import { IngestRefusal, type IngestHandler, type PublishRequest, type PublishSession } from './ingest-contract.ts';
import { LiveSession, type LiveSessionSettings } from './live-session.ts';
import type { LiveRecorder, LiveRecording, RecordedInput } from './recording-contract.ts';
import { recordSegments } from './session-recording.ts';
import type { LiveMetrics } from './live-metrics.ts';
import type { LiveInputEvent } from '../events/event-bus.ts';
import { stateAfterSession, stateOnPublish, WINDOW_EXPIRED_STATE, type ConnectionState } from './live-status.ts';

export type { ConnectionState } from './live-status.ts';

/** What the registry needs to know about live inputs (implemented over the Redis repository). */
export interface LiveInputDirectory {
  /** The input and, for recording, its settings (a broadcast keeps those it started with). */
  findByStreamKey(
    streamKey: string,
  ): Promise<({ enabled: boolean; ladder?: LadderRung[] | null } & RecordedInput) | undefined>;
  /** Records the connection state on the input; failures are logged, never fatal. */
  setConnectionState(uid: string, state: ConnectionState, reason?: string): Promise<void>;
}

/** Counts failed publish authentications per address (access/'s AuthFailureLimiter fits). */
export interface PublishAuthLimiter {
  /** Seconds until the address may try again; 0: not blocked. */
  retryAfterSeconds(ip: string): number;
  /** Records a failure; true when it blocked the address. */
  fail(ip: string): boolean;
}

export interface SessionRegistryOptions {
  directory: LiveInputDirectory;
  settings: LiveSessionSettings;
  logger: Logger;
  /** How long an ended stream stays playable (with EXT-X-ENDLIST) before it is forgotten. */
  endedLingerMs?: number;
  /** Sessions allowed on this node at once. */
  maxSessions?: number;
  /** Records inputs with `recording.mode: automatic`; none: nothing is recorded. */
  recorder?: LiveRecorder;
  /** Blocks publisher addresses that keep presenting unknown stream keys (any ingest protocol). */
  authLimiter?: PublishAuthLimiter;
  /** Told of every session as soon as it is accepted, before its first tag (simulcast taps it). */
  onSession?: (session: LiveSession) => void;
  /** Session counts, transcoder restarts, part publish delay. */
  metrics?: LiveMetrics;
  /** Told of connects, disconnects and input errors (webhooks, metrics). Must not throw. */
  onEvent?: (event: LiveInputEvent) => void;
}

/** Ingest figures of one live session now (read by metrics at scrape time). */
export interface IngestStats {
  liveInputUid: string;
  protocol: string;
  /** Received bits per second over the last 5 s (audio + video). */
  bitrateBitsPerSecond: number | undefined;
  /** Video frames received per second over the last 5 s. */
  framesPerSecond: number | undefined;
  /** Mean interval between the publisher's recent keyframes. */
  keyframeIntervalSeconds: number | undefined;
}

/** The recording of an input's broadcast, kept across reconnects within its window. */
interface OpenRecording {
  recording: LiveRecording;
  timeoutSeconds: number;
  /** Set while the publisher is away: ends the recording when it fires. */
  window: NodeJS.Timeout | undefined;
}

/** The live input's `status` while this node holds its session (Cloudflare's shape, plus health). */
export interface LiveStatusView {
  current: {
    state: 'connected' | 'reconnected';
    statusEnteredAt: string;
    ingestProtocol: string;
    health: {
      videoCodec?: string;
      audioCodec?: string;
      width?: number;
      height?: number;
      keyframeIntervalSeconds?: number;
      bframes: boolean;
      bitrateKbps?: number;
      renditions: string[];
      issues: Array<{ code: string; message: string }>;
    };
  };
}

/**
 * The per-node set of live sessions: authenticates publishers (IngestHandler), serves their
 * streams to the origin (LivePlayback), and ends them all on shutdown.
 */
export class SessionRegistry implements IngestHandler, LivePlayback {
  readonly #opts: SessionRegistryOptions;
  readonly #log: Logger;
  /** The current or most recent session of each live input. */
  readonly #sessions = new Map<string, LiveSession>();
  readonly #lingerTimers = new Map<string, NodeJS.Timeout>();
  readonly #recordings = new Map<string, OpenRecording>();
  /** Sessions that continue a recording after a reconnect. */
  readonly #reconnected = new WeakSet<LiveSession>();
  readonly #finalizing = new Set<Promise<void>>();
  readonly #finalizingVideos = new Set<string>();
  #closing = false;

  constructor(opts: SessionRegistryOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'sessions' });
  }

  async openPublish(request: PublishRequest): Promise<PublishSession> {
    if (this.#closing) throw new IngestRefusal('SHUTTING_DOWN', 'server is shutting down');
    const limiter = this.#opts.authLimiter;
    const retryAfter = limiter?.retryAfterSeconds(request.remoteAddress) ?? 0;
    if (retryAfter > 0) {
      throw new IngestRefusal('TOO_MANY_AUTH_FAILURES', `too many unknown stream keys from this address; retry in ${retryAfter} s`);
    }
    const input = await this.#opts.directory.findByStreamKey(request.streamKey);
    if (!input) {
      if (limiter?.fail(request.remoteAddress)) {
        this.#log.warn({ peer: request.remoteAddress, protocol: request.protocol }, 'publisher address blocked after repeated unknown stream keys');
      }
      throw new IngestRefusal('STREAM_KEY_UNKNOWN', 'unknown stream key');
    }
    if (request.liveInputUid !== undefined && request.liveInputUid !== input.uid) {
      throw new IngestRefusal('STREAM_KEY_UNKNOWN', 'the stream key belongs to another live input');
    }
    if (!input.enabled) {
      this.#setState(input.uid, 'failed_to_connect', 'live_input_disabled');
      throw new IngestRefusal('LIVE_INPUT_DISABLED', 'live input is disabled', input.uid);
    }
    const current = this.#sessions.get(input.uid);
    if (current && current.state !== 'ended') {
      throw new IngestRefusal('LIVE_INPUT_BUSY', 'live input already has a publisher', input.uid);
    }
    if (this.#opts.maxSessions !== undefined && this.liveCount >= this.#opts.maxSessions) {
      throw new IngestRefusal('NODE_AT_CAPACITY', 'this node holds its maximum of live sessions', input.uid);
    }
    // Re-check after the await: two publishers with the same key may race here.
    const raced = this.#sessions.get(input.uid);
    if (raced && raced !== current && raced.state !== 'ended') {
      throw new IngestRefusal('LIVE_INPUT_BUSY', 'live input already has a publisher', input.uid);
    }

    const session = new LiveSession({
      liveInputUid: input.uid,
      protocol: request.protocol,
      remoteAddress: request.remoteAddress,
      // An input's own ladder replaces the server default for its broadcasts.
      settings: input.ladder ? { ...this.#opts.settings, ladder: input.ladder } : this.#opts.settings,
      logger: this.#opts.logger,
      metrics: this.#opts.metrics,
    });
    const linger = this.#lingerTimers.get(input.uid);
    if (linger) clearTimeout(linger);
    this.#sessions.set(input.uid, session);
    const reconnected = this.#attachRecording(input, session);
    if (reconnected) this.#reconnected.add(session);
    this.#setState(input.uid, stateOnPublish(reconnected));
    this.#emit({ type: 'live_input.connected', liveInputUid: input.uid, ingestProtocol: request.protocol, remoteAddress: request.remoteAddress });
    let wentLive = false;
    session.on('live', () => {
      wentLive = true;
    });
    session.on('health', (issue) => {
      if (!issue.code.startsWith('ERR_')) return;
      const report = session.health.report;
      this.#emit({
        type: 'live_input.errored',
        liveInputUid: input.uid,
        code: issue.code,
        message: issue.message,
        ...(report.videoCodec ? { videoCodec: report.videoCodec } : {}),
        ...(report.audioCodec ? { audioCodec: report.audioCodec } : {}),
      });
    });
    this.#opts.metrics?.sessionStarted(request.protocol);
    session.on('ended', (reason) => {
      this.#opts.metrics?.sessionEnded(input.uid, reason);
      this.#emit({ type: 'live_input.disconnected', liveInputUid: input.uid, reason });
      // A deleted or disabled input will not reconnect: no window.
      this.#recordingSessionEnded(
        input.uid,
        reason === 'input_deleted' || reason === 'input_disabled',
        (windowOpen) => stateAfterSession(reason, { wentLive, windowOpen }),
        reason,
      );
      const timer = setTimeout(() => {
        if (this.#sessions.get(input.uid) === session) this.#sessions.delete(input.uid);
        this.#lingerTimers.delete(input.uid);
      }, this.#opts.endedLingerMs ?? 60_000);
      timer.unref();
      this.#lingerTimers.set(input.uid, timer);
    });
    try {
      this.#opts.onSession?.(session);
    } catch (error) {
      this.#log.error({ err: error, liveInput: input.uid }, 'session listener failed');
    }
    this.#log.info(
      { liveInput: input.uid, session: session.id, protocol: request.protocol, peer: request.remoteAddress },
      'publish accepted',
    );
    return session;
  }

  /**
   * Records the session into the input's open recording (a reconnect within the window: returns
   * true) or into a new one when the input records; does nothing otherwise.
   */
  #attachRecording(input: RecordedInput, session: LiveSession): boolean {
    let open = this.#recordings.get(input.uid);
    const reconnected = open?.window !== undefined;
    if (open?.window) {
      clearTimeout(open.window);
      open.window = undefined;
    }
    if (!open) {
      if (!this.#opts.recorder || input.recording.mode !== 'automatic') return false;
      open = { recording: this.#opts.recorder.start(input), timeoutSeconds: input.recording.timeoutSeconds, window: undefined };
      this.#recordings.set(input.uid, open);
    }
    open.recording.beginSession(session.id);
    recordSegments(session, open.recording, this.#log);
    if (reconnected) this.#log.info({ liveInput: input.uid, video: open.recording.videoUid }, 'publisher reconnected within the window');
    return reconnected;
  }

  /** The publisher is gone: the recording waits for a reconnect for its window, then ends. */
  #recordingSessionEnded(
    uid: string,
    final: boolean,
    stateAfter: (windowOpen: boolean) => ConnectionState,
    reason: string,
  ): void {
    const open = this.#recordings.get(uid);
    if (!open) {
      this.#setState(uid, stateAfter(false), reason);
      return;
    }
    if (final || this.#closing || open.timeoutSeconds <= 0) {
      this.#endRecording(uid, open, stateAfter(false), reason);
      return;
    }
    this.#setState(uid, stateAfter(true), reason);
    open.window = setTimeout(() => this.#endRecording(uid, open, WINDOW_EXPIRED_STATE), open.timeoutSeconds * 1000);
  }

  #endRecording(uid: string, open: OpenRecording, state: ConnectionState, reason?: string): void {
    if (open.window) clearTimeout(open.window);
    open.window = undefined;
    if (this.#recordings.get(uid) === open) this.#recordings.delete(uid);
    this.#setState(uid, state, reason);
    const videoUid = open.recording.videoUid;
    this.#log.info({ liveInput: uid, video: videoUid }, 'recording ended; finalizing');
    this.#finalizingVideos.add(videoUid);
    const done = open.recording.finalize().finally(() => {
      this.#finalizing.delete(done);
      this.#finalizingVideos.delete(videoUid);
    });
    this.#finalizing.add(done);
  }

  #setState(uid: string, state: ConnectionState, reason?: string): void {
    this.#opts.directory.setConnectionState(uid, state, reason).catch((error: unknown) => {
      this.#log.warn({ err: error, liveInput: uid }, 'could not record connection state');
    });
  }

  #emit(event: LiveInputEvent): void {
    try {
      this.#opts.onEvent?.(event);
    } catch (error) {
      this.#log.warn({ err: error, event: event.type }, 'event listener threw');
    }
  }

  stream(liveInputUid: string): HlsStreamView | undefined {
    const session = this.#sessions.get(liveInputUid);
    if (!session) return undefined;
    const hls = session.hls;
    return {
      masterPlaylist: () => hls.masterPlaylist(),
      mediaPlaylist: (rendition, skip) => hls.mediaPlaylist(rendition, skip),
      blockingState: (rendition, msn, part) => hls.blockingState(rendition, msn, part),
      waitForPlaylist: (rendition, msn, part, signal) => hls.waitForPlaylist(rendition, msn, part, signal),
      waitForPart: (rendition, file, signal) => hls.waitForPart(rendition, file, signal),
      resource: (rendition, file) => hls.resource(rendition, file),
      get targetDuration() {
        return hls.targetDuration;
      },
      get partTarget() {
        return hls.partTarget;
      },
      get ended() {
        return session.state === 'ended';
      },
    };
  }

  session(liveInputUid: string): LiveSession | undefined {
    return this.#sessions.get(liveInputUid);
  }

  /** Status of a connected input, or undefined (the stored status then applies). */
  status(liveInputUid: string): LiveStatusView | undefined {
    const s = this.#sessions.get(liveInputUid);
    if (!s || s.state === 'ended') return undefined;
    const report = s.health.report;
    const info = s.sourceInfo;
    const seconds = (Date.now() - s.startedAt) / 1000;
    const health: LiveStatusView['current']['health'] = {
      bframes: report.bframes,
      renditions: s.renditions.map((r) => r.name),
      issues: report.issues,
      bitrateKbps: seconds > 0 ? Math.round((s.bytesIn * 8) / 1000 / seconds) : 0,
    };
    if (report.videoCodec) health.videoCodec = report.videoCodec;
    if (report.audioCodec) health.audioCodec = report.audioCodec;
    if (info.video?.width) health.width = info.video.width;
    if (info.video?.height) health.height = info.video.height;
    if (report.keyframeIntervalSeconds !== undefined) health.keyframeIntervalSeconds = Math.round(report.keyframeIntervalSeconds * 1000) / 1000;
    return {
      current: {
        state: this.#reconnected.has(s) ? 'reconnected' : 'connected',
        statusEnteredAt: new Date(s.startedAt).toISOString(),
        ingestProtocol: s.protocol,
        health,
      },
    };
  }

  /** Ingest figures of every session that has not ended. */
  *ingestStats(now = Date.now()): Iterable<IngestStats> {
    for (const s of this.#sessions.values()) {
      if (s.state === 'ended') continue;
      const rates = s.health.rates(now);
      yield {
        liveInputUid: s.liveInputUid,
        protocol: s.protocol,
        bitrateBitsPerSecond: rates?.bitsPerSecond,
        framesPerSecond: rates?.framesPerSecond,
        keyframeIntervalSeconds: s.health.report.keyframeIntervalSeconds,
      };
    }
  }

  /** Requests held (blocking reload, preload-hinted parts) over every stream on this node. */
  get waitingRequests(): number {
    let n = 0;
    for (const s of this.#sessions.values()) n += s.hls.waiterCount;
    return n;
  }

  get liveCount(): number {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.state !== 'ended') n++;
    return n;
  }

  /** Ends the live session of an input (disabled, deleted, key rotated). */
  async terminate(liveInputUid: string, reason: 'input_disabled' | 'input_deleted'): Promise<void> {
    const s = this.#sessions.get(liveInputUid);
    if (s && s.state !== 'ended') await s.terminate(reason);
  }

  /** True while a broadcast on this node records into the video. */
  isRecording(videoUid: string): boolean {
    if (this.#finalizingVideos.has(videoUid)) return true;
    for (const open of this.#recordings.values()) if (open.recording.videoUid === videoUid) return true;
    return false;
  }

  /** The video being recorded from an input's current broadcast (live or in its reconnect window). */
  recordingVideo(liveInputUid: string): string | undefined {
    return this.#recordings.get(liveInputUid)?.recording.videoUid;
  }

  /**
   * Ends every session (publishers are disconnected), waits for their FFmpeg to exit, and ends
   * their recordings (also those waiting for a reconnect), waiting up to `finalizeGraceMs` for
   * them: one that takes longer stays unfinished and is recovered at the next start.
   */
  async close(finalizeGraceMs = 10_000): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.terminate('shutdown')));
    for (const t of this.#lingerTimers.values()) clearTimeout(t);
    this.#lingerTimers.clear();
    for (const [uid, open] of [...this.#recordings]) this.#endRecording(uid, open, 'disconnected', 'shutdown');
    if (this.#finalizing.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, finalizeGraceMs);
      });
      await Promise.race([Promise.all([...this.#finalizing]), grace]);
      clearTimeout(timer);
    }
  }
}
