import type { Logger } from '../observability/logger.ts';
import type { HlsStreamView, LivePlayback } from '../origin/live-playback.ts';
import { IngestRefusal, type IngestHandler, type PublishRequest, type PublishSession } from './ingest-contract.ts';
import { LiveSession, type LiveSessionSettings } from './live-session.ts';

/** What the registry needs to know about live inputs (implemented over the Redis repository). */
export interface LiveInputDirectory {
  findByStreamKey(streamKey: string): Promise<{ uid: string; enabled: boolean } | undefined>;
  /** Records the connection state on the input; failures are logged, never fatal. */
  setConnectionState(uid: string, state: 'connected' | 'disconnected'): Promise<void>;
}

export interface SessionRegistryOptions {
  directory: LiveInputDirectory;
  settings: LiveSessionSettings;
  logger: Logger;
  /** How long an ended stream stays playable (with EXT-X-ENDLIST) before it is forgotten. */
  endedLingerMs?: number;
  /** Sessions allowed on this node at once. */
  maxSessions?: number;
}

/** The live input's `status` while this node holds its session (Cloudflare's shape, plus health). */
export interface LiveStatusView {
  current: {
    state: 'connected';
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
  #closing = false;

  constructor(opts: SessionRegistryOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'sessions' });
  }

  async openPublish(request: PublishRequest): Promise<PublishSession> {
    if (this.#closing) throw new IngestRefusal('SHUTTING_DOWN', 'server is shutting down');
    const input = await this.#opts.directory.findByStreamKey(request.streamKey);
    if (!input) throw new IngestRefusal('STREAM_KEY_UNKNOWN', 'unknown stream key');
    if (!input.enabled) throw new IngestRefusal('LIVE_INPUT_DISABLED', 'live input is disabled', input.uid);
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
      settings: this.#opts.settings,
      logger: this.#opts.logger,
    });
    const linger = this.#lingerTimers.get(input.uid);
    if (linger) clearTimeout(linger);
    this.#sessions.set(input.uid, session);
    this.#setState(input.uid, 'connected');
    session.on('ended', () => {
      this.#setState(input.uid, 'disconnected');
      const timer = setTimeout(() => {
        if (this.#sessions.get(input.uid) === session) this.#sessions.delete(input.uid);
        this.#lingerTimers.delete(input.uid);
      }, this.#opts.endedLingerMs ?? 60_000);
      timer.unref();
      this.#lingerTimers.set(input.uid, timer);
    });
    this.#log.info(
      { liveInput: input.uid, session: session.id, protocol: request.protocol, peer: request.remoteAddress },
      'publish accepted',
    );
    return session;
  }

  #setState(uid: string, state: 'connected' | 'disconnected'): void {
    this.#opts.directory.setConnectionState(uid, state).catch((error: unknown) => {
      this.#log.warn({ err: error, liveInput: uid }, 'could not record connection state');
    });
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
        state: 'connected',
        statusEnteredAt: new Date(s.startedAt).toISOString(),
        ingestProtocol: s.protocol,
        health,
      },
    };
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

  /** Ends every session (publishers are disconnected) and waits for their FFmpeg to exit. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.terminate('shutdown')));
    for (const t of this.#lingerTimers.values()) clearTimeout(t);
    this.#lingerTimers.clear();
  }
}
