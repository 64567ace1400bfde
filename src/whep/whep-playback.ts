import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import type { DropReason } from './rtp-fanout.ts';
import { WhepFeed, type WhepFeedSettings, type WhepSource } from './whep-feed.ts';
import { analyzeWhepOffer } from './whep-offer.ts';
import { WhepViewer, type WhepViewerEndReason, type WhepViewerSettings } from './whep-viewer.ts';

/** Error codes as named in the API error table (src/api/errors.ts), which gives their status. */
export type WhepErrorCode =
  | 'WHEP_SDP_INVALID'
  | 'WHEP_CODECS_UNSUPPORTED'
  | 'LIVE_INPUT_NOT_LIVE'
  | 'WHEP_SESSION_NOT_FOUND'
  | 'NODE_AT_CAPACITY'
  | 'TOO_MANY_VIEWERS'
  | 'SHUTTING_DOWN';

export class WhepError extends Error {
  readonly code: WhepErrorCode;
  constructor(code: WhepErrorCode, message: string) {
    super(message);
    this.name = 'WhepError';
    this.code = code;
  }
}

/** The live sessions of this node, as WHEP sees them (implemented over live/SessionRegistry). */
export interface WhepSources {
  /** The input's current session, if it is live on this node. */
  live(liveInputUid: string): (WhepSource & { onEnded(listener: () => void): void }) | undefined;
}

export interface WhepPlaybackSettings {
  viewer: WhepViewerSettings;
  feed: WhepFeedSettings;
  maxViewersPerSession: number;
  /** WHEP viewers (connecting or connected) on this node. */
  maxViewers: number;
  /** A session's feed (and its Opus encoder) stays this long after its last viewer left. */
  feedIdleMs: number;
}

export interface WhepPlaybackMetrics {
  viewerEnded(reason: WhepViewerEndReason): void;
}

export interface WhepPlaybackOptions {
  sources: WhepSources;
  settings: WhepPlaybackSettings;
  logger: Logger;
  metrics?: WhepPlaybackMetrics;
  /** Counts a viewer of a live input (called about every few seconds per connected viewer). */
  touchViewer?: (liveInputUid: string, viewerId: string) => void;
  /**
   * The per-stream viewer limit shared with LL-HLS (limits.maxViewersPerStream, cluster-wide):
   * false refuses the new viewer. The key is the one touchViewer later counts it under.
   */
  admitViewer?: (liveInputUid: string, viewerKey: string) => Promise<boolean>;
}

const TICK_MS = 250;
const TOUCH_MS = 5000;
const DROP_LOG_INTERVAL_MS = 5000;

/**
 * WHEP playback on this node: viewers by id, one feed per live session (created with its first
 * viewer, closed a little after its last), limits, and the end of every viewer when its session
 * ends or the server shuts down.
 */
export class WhepPlayback {
  readonly #opts: WhepPlaybackOptions;
  readonly #log: Logger;
  readonly #viewers = new Map<string, WhepViewer>();
  /** Feeds by live session id. */
  readonly #feeds = new Map<string, WhepFeed>();
  readonly #feedOf = new Map<WhepViewer, WhepFeed>();
  readonly #idleTimers = new Map<WhepFeed, NodeJS.Timeout>();
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #lastTouch = 0;
  #dropsSinceLog = 0;
  #lastDropLog = 0;

  constructor(opts: WhepPlaybackOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  get viewerCount(): number {
    return this.#viewers.size;
  }

  /** Viewers of one live input on this node (connecting or connected). */
  viewersOf(liveInputUid: string): number {
    let n = 0;
    for (const v of this.#viewers.values()) if (v.liveInputUid === liveInputUid) n++;
    return n;
  }

  /** Checks the offer and the stream, then sets up the peer; resolves with the SDP answer. */
  async play(req: { liveInputUid: string; sdp: string; remoteAddress: string }): Promise<{ viewer: WhepViewer; answer: string }> {
    if (this.#closing) throw new WhepError('SHUTTING_DOWN', 'the server is shutting down');
    const first = analyzeWhepOffer(req.sdp);
    if (!first.ok) throw new WhepError(first.status === 406 ? 'WHEP_CODECS_UNSUPPORTED' : 'WHEP_SDP_INVALID', first.reason);
    const source = this.#opts.sources.live(req.liveInputUid);
    if (!source) throw new WhepError('LIVE_INPUT_NOT_LIVE', 'the live input is not live (no publisher is connected); retry when it is');
    const s = this.#opts.settings;
    if (this.#viewers.size >= s.maxViewers) throw new WhepError('NODE_AT_CAPACITY', 'this node holds its maximum of WHEP viewers');
    if (this.viewersOf(req.liveInputUid) >= s.maxViewersPerSession) {
      throw new WhepError('NODE_AT_CAPACITY', 'this live input has its maximum of WHEP viewers on this node');
    }
    const id = randomBytes(16).toString('hex');
    if (this.#opts.admitViewer && !(await this.#opts.admitViewer(req.liveInputUid, `whep:${id}`))) {
      throw new WhepError('TOO_MANY_VIEWERS', 'this live stream has as many viewers as it may have; retry later');
    }
    const feed = this.#feedFor(source);
    // The H.264 variant closest to the source's profile, now that the feed has read its configuration.
    const analysis = analyzeWhepOffer(req.sdp, feed.profileIdc);
    if (!analysis.ok) throw new WhepError('WHEP_SDP_INVALID', analysis.reason);
    const viewer = new WhepViewer({
      id,
      liveInputUid: req.liveInputUid,
      choice: analysis.choice,
      offer: req.sdp,
      remoteAddress: req.remoteAddress,
      settings: s.viewer,
      logger: this.#log,
      onConnected: (v) => {
        const f = this.#feedOf.get(v);
        if (f) f.add(v);
      },
      onKeyframeRequest: (v) => this.#feedOf.get(v)?.requestKeyframe(),
      onClosed: (v, reason) => this.#viewerClosed(v, reason),
    });
    this.#viewers.set(viewer.id, viewer);
    this.#feedOf.set(viewer, feed);
    this.#cancelIdle(feed);
    this.#ensureTimer();
    try {
      const answer = await viewer.start();
      this.#log.info({ liveInputUid: req.liveInputUid, whepViewer: viewer.id, audio: Boolean(analysis.choice.audio), ms: Date.now() - viewer.createdAt }, 'whep viewer answered');
      return { viewer, answer };
    } catch (error) {
      this.#log.warn({ err: error, liveInputUid: req.liveInputUid }, 'whep viewer setup failed');
      await viewer.close('setup_failed');
      throw new WhepError('WHEP_SDP_INVALID', 'the offer could not be answered');
    }
  }

  #feedFor(source: WhepSource & { onEnded(listener: () => void): void }): WhepFeed {
    let feed = this.#feeds.get(source.id);
    if (feed) return feed;
    feed = new WhepFeed({
      source,
      settings: this.#opts.settings.feed,
      logger: this.#log,
      onViewerDropped: (viewer, reason, error) => this.#dropped(viewer, reason, error),
    });
    const created = feed;
    this.#feeds.set(source.id, created);
    created.start();
    source.onEnded(() => void this.#closeFeed(created, 'session_ended'));
    return created;
  }

  #dropped(viewer: WhepViewer, reason: DropReason, error: unknown): void {
    this.#dropsSinceLog++;
    const now = Date.now();
    if (now - this.#lastDropLog >= DROP_LOG_INTERVAL_MS) {
      this.#log.warn({ reason, dropped: this.#dropsSinceLog, err: error, liveInputUid: viewer.liveInputUid }, 'whep viewer dropped: its transport fell behind');
      this.#lastDropLog = now;
      this.#dropsSinceLog = 0;
    }
    void viewer.close(reason);
  }

  #viewerClosed(viewer: WhepViewer, reason: WhepViewerEndReason): void {
    if (this.#viewers.get(viewer.id) === viewer) this.#viewers.delete(viewer.id);
    const feed = this.#feedOf.get(viewer);
    this.#feedOf.delete(viewer);
    this.#opts.metrics?.viewerEnded(reason);
    if (!feed) return;
    feed.remove(viewer);
    let left = 0;
    for (const f of this.#feedOf.values()) if (f === feed) left++;
    if (left === 0 && this.#feeds.get(feed.sourceId) === feed) this.#scheduleIdle(feed);
  }

  #scheduleIdle(feed: WhepFeed): void {
    this.#cancelIdle(feed);
    const timer = setTimeout(() => void this.#closeFeed(feed, 'idle'), this.#opts.settings.feedIdleMs);
    timer.unref();
    this.#idleTimers.set(feed, timer);
  }

  #cancelIdle(feed: WhepFeed): void {
    const timer = this.#idleTimers.get(feed);
    if (timer) clearTimeout(timer);
    this.#idleTimers.delete(feed);
  }

  async #closeFeed(feed: WhepFeed, why: 'idle' | 'session_ended' | 'shutdown'): Promise<void> {
    this.#cancelIdle(feed);
    if (this.#feeds.get(feed.sourceId) === feed) this.#feeds.delete(feed.sourceId);
    const viewers = [...this.#feedOf].filter(([, f]) => f === feed).map(([v]) => v);
    await Promise.all(viewers.map((v) => v.close(why === 'shutdown' ? 'shutdown' : 'session_ended')));
    await feed.close();
    this.#log.debug({ liveInputUid: feed.liveInputUid, why }, 'whep feed closed');
  }

  #ensureTimer(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  #tick(): void {
    const now = Date.now();
    for (const v of [...this.#viewers.values()]) v.tick(now);
    if (now - this.#lastTouch >= TOUCH_MS && this.#opts.touchViewer) {
      this.#lastTouch = now;
      for (const v of this.#viewers.values()) if (v.state === 'connected') this.#opts.touchViewer(v.liveInputUid, `whep:${v.id}`);
    }
    if (this.#viewers.size === 0 && this.#feeds.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** The viewer at `/{id}/webRTC/play/{viewerId}`, only if it plays that input. */
  find(liveInputUid: string, viewerId: string): WhepViewer {
    const viewer = this.#viewers.get(viewerId);
    if (!viewer || viewer.liveInputUid !== liveInputUid) throw new WhepError('WHEP_SESSION_NOT_FOUND', 'no such WHEP session');
    return viewer;
  }

  /** DELETE: the viewer is done. */
  async end(liveInputUid: string, viewerId: string): Promise<void> {
    await this.find(liveInputUid, viewerId).close('deleted');
  }

  /** Ends every viewer and feed. Idempotent. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#feeds.values()].map((f) => this.#closeFeed(f, 'shutdown')));
    await Promise.all([...this.#viewers.values()].map((v) => v.close('shutdown')));
  }
}
