/**
 * One live session's HLS output: per rendition a segmenter and a sliding window, plus the master
 * and media playlists rendered from them. Pure apart from the injected clock; the live session
 * feeds it the init and fragment events of each rendition's Fmp4Reader.
 */
import { fragmentDurationSeconds, mainFragmentTrack } from '../media/mp4-types.ts';
import type { Mp4Fragment, Mp4Init } from '../media/mp4-types.ts';
import { buildMediaPlaylistModel } from './media-playlist.ts';
import type { SkipDirective } from './media-playlist.ts';
import { renderMasterPlaylist, renderMediaPlaylist } from './playlist.ts';
import type { RenditionReport, Variant } from './playlist.ts';
import { RenditionWindow } from './rendition-window.ts';
import type { PartPosition, WindowSegment } from './rendition-window.ts';
import { LeaderTimeline } from './segment-alignment.ts';
import { Segmenter } from './segmenter.ts';
import type { SegmenterEvent } from './segmenter.ts';
import { Waiters } from './waiters.ts';
import type { WaitResult } from './waiters.ts';

export type { SkipDirective } from './media-playlist.ts';
export type { WaitResult } from './waiters.ts';

export interface HlsLiveStreamOptions {
  /** Random per-session prefix for every file name (lower-case letters and digits). */
  prefix: string;
  /** Target segment duration, seconds. */
  segmentTarget: number;
  /** Complete segments kept per rendition. */
  windowSegments: number;
  /** LL-HLS part target (PART-TARGET), seconds; FFmpeg's fragment duration. The server passes hls.partTargetSeconds; 0.25 when omitted. */
  partTarget?: number;
  /** Wall clock in ms (default Date.now); stamps EXT-X-PROGRAM-DATE-TIME. */
  now?: () => number;
  /** Told when a fragment becomes a part listed in its rendition's playlist (for metrics). */
  onPartListed?: (rendition: string, fragment: Mp4Fragment) => void;
}

export interface RenditionMeta {
  /** BANDWIDTH to announce before any segment has been measured, bits/s. */
  bandwidthHint?: number;
  /** Media playlist URI relative to the master playlist (default `<name>/index.m3u8`). */
  playlistUri?: string;
}

export interface LiveSegmentEvent {
  rendition: string;
  segment: WindowSegment;
  init: { name: string; data: Buffer };
}

export interface HlsResource {
  body: Buffer;
  contentType: string;
}

/** Whether a blocking playlist request (`_HLS_msn`/`_HLS_part`) can be answered. */
export type BlockingState = 'ready' | 'wait' | 'too-far';

const RENDITION_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i;
/**
 * Fragments whose frame rates FRAME-RATE is the median of: robust to the odd first fragment
 * (FFmpeg stretches its first sample) and to jitter from variable-frame-rate input.
 */
const FRAME_RATE_WINDOW = 31;

/**
 * Follower fragments held until the leader has reached their media time, at most this many per
 * rendition: beyond it (a stalled leader) the follower cuts on its own rule rather than buffer.
 */
const MAX_PENDING = 64;

type PendingItem = { type: 'init'; init: Mp4Init } | { type: 'fragment'; fragment: Mp4Fragment; wallClockMs: number };

interface Rendition {
  name: string;
  meta: RenditionMeta;
  window: RenditionWindow;
  segmenter: Segmenter;
  init: Mp4Init | undefined;
  /** An init was pushed (it may still wait in `pending`). */
  initPushed: boolean;
  /** FFmpeg run this rendition's packaging is in: 0 from the first init, +1 at each new one. */
  epoch: number;
  /** Follower input not yet placed on the leader's timeline, in arrival order. */
  pending: PendingItem[];
  peakBandwidth: number;
  /** Frame rates of recent video fragments, for FRAME-RATE. */
  frameRates: number[];
}

export class HlsLiveStream {
  readonly prefix: string;
  readonly #segmentTarget: number;
  readonly #windowSegments: number;
  readonly #now: () => number;
  readonly #renditions = new Map<string, Rendition>();
  readonly #listeners = new Set<(event: LiveSegmentEvent) => void>();
  readonly #timeline: LeaderTimeline;
  readonly #waiters = new Waiters();
  /** Rendered playlists by rendition and skip mode, valid while `#version` is unchanged. */
  readonly #playlistCache = new Map<string, { version: number; text: string }>();
  #version = 0;
  #leader: Rendition | undefined;
  /** Largest segment duration of any rendition, so EXT-X-TARGETDURATION never shrinks and is shared. */
  #maxSegmentDuration = 0;
  #ended = false;
  readonly #onPartListed: ((rendition: string, fragment: Mp4Fragment) => void) | undefined;

  readonly partTarget: number;

  constructor(opts: HlsLiveStreamOptions) {
    this.prefix = opts.prefix;
    this.#segmentTarget = opts.segmentTarget;
    this.#windowSegments = opts.windowSegments;
    this.partTarget = opts.partTarget ?? 0.25;
    this.#now = opts.now ?? Date.now;
    this.#onPartListed = opts.onPartListed;
    // Validate the options once, here, rather than at the first rendition.
    new RenditionWindow({ prefix: opts.prefix, maxSegments: opts.windowSegments });
    new Segmenter({ targetSegmentDuration: opts.segmentTarget });
    if (!(this.partTarget > 0 && this.partTarget <= opts.segmentTarget)) {
      throw new RangeError('partTarget must be > 0 and at most segmentTarget');
    }
    // Half a part: wider than B-frame reordering shifts, narrower than half a GOP.
    this.#timeline = new LeaderTimeline(this.partTarget / 2);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** EXT-X-TARGETDURATION of every rendition, integer seconds. */
  get targetDuration(): number {
    const longest = Math.round(Number(this.#maxSegmentDuration.toFixed(5)));
    return Math.max(1, Math.round(this.#segmentTarget), longest);
  }

  /** Requests held by blocking reload and preload-hinted parts. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** Every rendition has its init segment and at least one complete segment. */
  get ready(): boolean {
    if (this.#renditions.size === 0) return false;
    for (const r of this.#renditions.values()) {
      if (!r.init || r.window.segments.length === 0) return false;
    }
    return true;
  }

  get renditionNames(): string[] {
    return [...this.#renditions.keys()];
  }

  /** Subscribes to completed segments (for recording); returns the unsubscribe function. */
  onSegment(listener: (event: LiveSegmentEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  addRendition(name: string, meta: RenditionMeta = {}): void {
    if (!RENDITION_NAME.test(name)) throw new RangeError(`invalid rendition name: ${JSON.stringify(name)}`);
    if (this.#renditions.has(name)) throw new Error(`rendition ${name} already exists`);
    const r: Rendition = {
      name,
      meta,
      window: new RenditionWindow({ prefix: this.prefix, maxSegments: this.#windowSegments }),
      segmenter: new Segmenter({ targetSegmentDuration: this.#segmentTarget, partTarget: this.partTarget }),
      init: undefined,
      initPushed: false,
      epoch: -1,
      pending: [],
      peakBandwidth: 0,
      frameRates: [],
    };
    this.#renditions.set(name, r);
    // The first rendition (the copied source when there is one) decides segment boundaries.
    this.#leader ??= r;
  }

  /**
   * A rendition's init segment. A second init means FFmpeg restarted: the open segment is closed
   * as it is and the next segment starts a discontinuity (timestamps restart).
   */
  pushInit(name: string, init: Mp4Init): void {
    const r = this.#rendition(name);
    if (this.#ended) return;
    r.initPushed = true;
    if (r === this.#leader) {
      this.#applyInit(r, init);
      this.#timeline.startEpoch();
      this.#drainFollowers(false);
    } else {
      r.pending.push({ type: 'init', init });
      this.#drain(r, false);
    }
    this.#changed();
  }

  /**
   * `wallClockMs`: when the fragment's first frame entered ingest (EXT-X-PROGRAM-DATE-TIME);
   * defaults to now.
   */
  pushFragment(name: string, fragment: Mp4Fragment, wallClockMs: number = this.#now()): void {
    const r = this.#rendition(name);
    if (this.#ended) return; // a pipe may still drain after end(); the playlists are final
    if (!r.initPushed) throw new Error(`rendition ${name}: fragment before init`);
    const main = mainFragmentTrack(fragment);
    if (main?.kind === 'video' && main.duration > 0 && main.sampleCount > 0) {
      r.frameRates.push((main.sampleCount * main.timescale) / main.duration);
      if (r.frameRates.length > FRAME_RATE_WINDOW) r.frameRates.shift();
    }
    if (r === this.#leader) {
      const events = r.segmenter.push(fragment, wallClockMs);
      const start = startTime(fragment);
      for (const e of events) {
        if (e.type === 'part' && e.partIndex === 0 && start !== undefined) {
          const open = r.segmenter.openSegment;
          this.#timeline.addBoundary({ msn: e.msn, time: start, programDateTime: open?.programDateTime ?? wallClockMs });
        }
      }
      if (start !== undefined) this.#timeline.advance(start + fragmentDurationSeconds(fragment));
      this.#applyFragment(r, fragment, events);
      this.#drainFollowers(false);
    } else {
      r.pending.push({ type: 'fragment', fragment, wallClockMs });
      this.#drain(r, false);
    }
    this.#changed();
  }

  /**
   * Closes every open segment; playlists then end with EXT-X-ENDLIST and every held request is
   * released (answered with the final playlist). Idempotent.
   */
  end(): void {
    if (this.#ended) return;
    this.#drainFollowers(true);
    for (const r of this.#renditions.values()) this.#apply(r, r.segmenter.flush());
    this.#ended = true;
    this.#changed();
    this.#waiters.releaseAll();
  }

  /**
   * Checks a blocking playlist request against the rendition now (rfc8216bis 6.2.5.2); undefined
   * for an unknown rendition or one without a playlist yet. After the end, every request is
   * ready (the directives are ignored once the playlist has EXT-X-ENDLIST).
   */
  blockingState(name: string, msn: number, part?: number): BlockingState | undefined {
    const r = this.#renditions.get(name);
    if (!r || (r.window.segments.length === 0 && !this.#ended)) return undefined;
    if (this.#ended || r.window.reached(msn, part)) return 'ready';
    // More than two segments past the last one, or a part beyond the Advance Part Limit: 400.
    if (msn > r.window.lastMsn + 2) return 'too-far';
    if (part !== undefined) {
      const limit = this.partTarget < 1 ? 3 / this.partTarget : 3;
      const last = r.window.lastPart;
      if (last && msn === last.msn && part - last.part > limit) return 'too-far';
      if (last && msn > last.msn && part + 1 > limit) return 'too-far';
    }
    return 'wait';
  }

  /**
   * Resolves when the rendition's playlist holds segment `msn` (or part `part` of it), or with
   * 'released' when the stream ends. Rejects with the signal's reason when it aborts.
   */
  waitForPlaylist(name: string, msn: number, part?: number, signal?: AbortSignal): Promise<WaitResult> {
    const r = this.#rendition(name);
    if (this.#ended) return Promise.resolve('released');
    return this.#waiters.wait(`p/${name}/${msn}/${part ?? ''}`, () => r.window.reached(msn, part), signal);
  }

  /**
   * For the part a preload hint names (or could name next: the next part of the segment in
   * progress, or the first of the next segment), a wait until it exists or never will; then
   * `resource()` answers. Undefined for any other name: it is there already, gone, or too far.
   */
  waitForPart(name: string, fileName: string, signal?: AbortSignal): Promise<WaitResult> | undefined {
    const r = this.#renditions.get(name);
    if (!r || this.#ended) return undefined;
    const pos = r.window.parsePartName(fileName);
    if (!pos || r.window.partSettled(pos.msn, pos.part)) return undefined;
    const open = r.window.openSegment;
    const nextInSegment = open ? { msn: open.msn, part: open.parts.length } : undefined;
    const firstOfNext = { msn: (open?.msn ?? r.window.lastMsn) + 1, part: 0 };
    const upcoming = [nextInSegment, firstOfNext].some((p) => p && p.msn === pos.msn && p.part === pos.part);
    if (!upcoming) return undefined;
    return this.#waiters.wait(`f/${name}/${pos.msn}/${pos.part}`, () => r.window.partSettled(pos.msn, pos.part), signal);
  }

  masterPlaylist(): string | undefined {
    if (!this.ready) return undefined;
    const variants: Variant[] = [];
    for (const r of this.#renditions.values()) variants.push(this.#variant(r));
    return renderMasterPlaylist({ variants });
  }

  /**
   * The LL-HLS media playlist of a rendition; `skip` asks for a delta update (`_HLS_skip`),
   * ignored once ended. Undefined until the rendition has a complete segment.
   */
  mediaPlaylist(name: string, skip?: SkipDirective): string | undefined {
    const r = this.#renditions.get(name);
    if (!r || (r.window.segments.length === 0 && !this.#ended)) return undefined;
    // Rendered once per change: a thousand blocked requests released together share one text.
    const key = `${name}/${skip ?? ''}`;
    const cached = this.#playlistCache.get(key);
    if (cached?.version === this.#version) return cached.text;
    const text = renderMediaPlaylist(
      buildMediaPlaylistModel({
        window: r.window,
        targetDuration: this.targetDuration,
        partTarget: this.partTarget,
        ended: this.#ended,
        nextPart: this.#nextPart(r),
        renditionReports: this.#renditionReports(r),
        ...(skip ? { skip } : {}),
      }),
    );
    this.#playlistCache.set(key, { version: this.#version, text });
    return text;
  }

  /** Init, segment or part bytes by file name; undefined for unknown renditions and names. */
  resource(name: string, fileName: string): HlsResource | undefined {
    const body = this.#renditions.get(name)?.window.lookup(fileName);
    if (!body) return undefined;
    return { body, contentType: fileName.endsWith('.mp4') ? 'video/mp4' : 'video/iso.segment' };
  }

  #rendition(name: string): Rendition {
    const r = this.#renditions.get(name);
    if (!r) throw new Error(`unknown rendition ${JSON.stringify(name)}`);
    return r;
  }

  /** The part a preload hint names: the segment in progress ends at the next keyframe once it is long enough. */
  #nextPart(r: Rendition): PartPosition {
    const open = r.window.openSegment;
    if (!open) return { msn: r.window.lastMsn + 1, part: 0 };
    if (open.duration >= this.#segmentTarget - 1e-3) return { msn: open.msn + 1, part: 0 };
    return { msn: open.msn, part: open.parts.length };
  }

  #renditionReports(self: Rendition): RenditionReport[] {
    const reports: RenditionReport[] = [];
    for (const r of this.#renditions.values()) {
      if (r === self) continue;
      // Media playlists sit one level below the master playlist, next to each other.
      const report: RenditionReport = { uri: `../${r.meta.playlistUri ?? `${r.name}/index.m3u8`}` };
      const last = r.window.lastPart;
      if (last) {
        report.lastMsn = last.msn;
        report.lastPart = last.part;
      }
      reports.push(report);
    }
    return reports;
  }

  #changed(): void {
    this.#version++;
    this.#waiters.notify();
  }

  #applyInit(r: Rendition, init: Mp4Init): void {
    if (r.init) {
      this.#apply(r, r.segmenter.flush());
      r.window.markDiscontinuity();
      r.frameRates = [];
    }
    r.epoch++;
    r.init = init;
    r.window.setInit(init.data);
  }

  #drainFollowers(force: boolean): void {
    for (const r of this.#renditions.values()) if (r !== this.#leader) this.#drain(r, force);
  }

  /**
   * Places a follower's pending input on the leader's timeline, in order, as far as the leader
   * has decided it. `force` (end of stream) or an overlong queue falls back to the follower's own
   * segmenter rule for what the leader has not decided.
   */
  #drain(r: Rendition, force: boolean): void {
    while (r.pending.length > 0) {
      const item = r.pending[0];
      if (!item) break;
      if (item.type === 'init') {
        r.pending.shift();
        this.#applyInit(r, item.init);
        continue;
      }
      const { fragment, wallClockMs } = item;
      const decision = this.#timeline.decide(r.epoch, startTime(fragment), fragment.independent);
      if (decision.type === 'wait' && !force && r.pending.length <= MAX_PENDING) break;
      r.pending.shift();
      if (decision.type === 'wait') {
        this.#applyFragment(r, fragment, r.segmenter.push(fragment, wallClockMs));
        continue;
      }
      const boundary =
        decision.type === 'cut' && decision.boundary.msn >= r.segmenter.nextMsn ? decision.boundary : undefined;
      this.#applyFragment(r, fragment, r.segmenter.pushFollowing(fragment, boundary));
    }
  }

  /** The events of pushing one fragment: it is listed as a part unless the segmenter dropped it. */
  #applyFragment(r: Rendition, fragment: Mp4Fragment, events: SegmenterEvent[]): void {
    this.#apply(r, events);
    if (this.#onPartListed && events.some((e) => e.type === 'part')) this.#onPartListed(r.name, fragment);
  }

  #apply(r: Rendition, events: SegmenterEvent[]): void {
    for (const event of events) {
      if (event.type === 'part') {
        r.window.addPart(event.msn, event.part, r.segmenter.openSegment?.programDateTime);
        continue;
      }
      const segment = r.window.addSegment(event.segment);
      this.#maxSegmentDuration = Math.max(this.#maxSegmentDuration, segment.duration);
      if (segment.duration > 0) r.peakBandwidth = Math.max(r.peakBandwidth, (segment.byteSize * 8) / segment.duration);
      const initData = r.window.lookup(segment.initName);
      if (!initData) throw new Error('init of a segment just added is missing');
      for (const listener of this.#listeners) {
        listener({ rendition: r.name, segment, init: { name: segment.initName, data: initData } });
      }
    }
  }

  #variant(r: Rendition): Variant {
    let bytes = 0;
    let seconds = 0;
    for (const s of r.window.segments) {
      bytes += s.byteSize;
      seconds += s.duration;
    }
    const average = seconds > 0 ? (bytes * 8) / seconds : undefined;
    const peak = r.peakBandwidth > 0 ? r.peakBandwidth : (r.meta.bandwidthHint ?? average ?? 0);
    const tracks = r.init?.tracks ?? [];
    const video = tracks.find((t) => t.kind === 'video');
    const audio = tracks.find((t) => t.kind === 'audio');
    const codecs = [video?.codec, audio?.codec].filter((c): c is string => !!c);
    const variant: Variant = { uri: r.meta.playlistUri ?? `${r.name}/index.m3u8`, bandwidth: peak, codecs };
    if (average !== undefined) variant.averageBandwidth = average;
    if (video?.width && video.height) variant.resolution = { width: video.width, height: video.height };
    const frameRate = median(r.frameRates);
    if (frameRate !== undefined) variant.frameRate = frameRate;
    return variant;
  }
}

/** Media time of a fragment's start, seconds, on its main track. */
function startTime(fragment: Mp4Fragment): number | undefined {
  const track = mainFragmentTrack(fragment);
  if (!track || track.timescale <= 0) return undefined;
  return track.baseMediaDecodeTime / track.timescale;
}

function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
