/**
 * One live session's HLS output: per rendition a segmenter and a sliding window, plus the master
 * and media playlists rendered from them. Pure apart from the injected clock; the live session
 * feeds it the init and fragment events of each rendition's Fmp4Reader.
 */
import { mainFragmentTrack } from '../media/mp4-types.ts';
import type { Mp4Fragment, Mp4Init } from '../media/mp4-types.ts';
import { renderMasterPlaylist, renderMediaPlaylist } from './playlist.ts';
import type { Variant } from './playlist.ts';
import { RenditionWindow } from './rendition-window.ts';
import type { WindowSegment } from './rendition-window.ts';
import { Segmenter } from './segmenter.ts';
import type { SegmenterEvent } from './segmenter.ts';

export interface HlsLiveStreamOptions {
  /** Random per-session prefix for every file name (lower-case letters and digits). */
  prefix: string;
  /** Target segment duration, seconds. */
  segmentTarget: number;
  /** Complete segments kept per rendition. */
  windowSegments: number;
  /** Wall clock in ms (default Date.now); stamps EXT-X-PROGRAM-DATE-TIME. */
  now?: () => number;
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

const RENDITION_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i;
/**
 * Fragments whose frame rates FRAME-RATE is the median of: robust to the odd first fragment
 * (FFmpeg stretches its first sample) and to jitter from variable-frame-rate input.
 */
const FRAME_RATE_WINDOW = 31;

interface Rendition {
  name: string;
  meta: RenditionMeta;
  window: RenditionWindow;
  segmenter: Segmenter;
  init: Mp4Init | undefined;
  /** Largest segment duration seen, so EXT-X-TARGETDURATION never shrinks between reloads. */
  maxSegmentDuration: number;
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
  #ended = false;

  constructor(opts: HlsLiveStreamOptions) {
    this.prefix = opts.prefix;
    this.#segmentTarget = opts.segmentTarget;
    this.#windowSegments = opts.windowSegments;
    this.#now = opts.now ?? Date.now;
    // Validate the options once, here, rather than at the first rendition.
    new RenditionWindow({ prefix: opts.prefix, maxSegments: opts.windowSegments });
    new Segmenter({ targetSegmentDuration: opts.segmentTarget });
  }

  get ended(): boolean {
    return this.#ended;
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
    this.#renditions.set(name, {
      name,
      meta,
      window: new RenditionWindow({ prefix: this.prefix, maxSegments: this.#windowSegments }),
      segmenter: new Segmenter({ targetSegmentDuration: this.#segmentTarget }),
      init: undefined,
      maxSegmentDuration: 0,
      peakBandwidth: 0,
      frameRates: [],
    });
  }

  /**
   * A rendition's init segment. A second init means FFmpeg restarted: the open segment is closed
   * as it is and the next segment starts a discontinuity (timestamps restart).
   */
  pushInit(name: string, init: Mp4Init): void {
    const r = this.#rendition(name);
    if (this.#ended) return;
    if (r.init) {
      this.#apply(r, r.segmenter.flush());
      r.window.markDiscontinuity();
      r.frameRates = [];
    }
    r.init = init;
    r.window.setInit(init.data);
  }

  pushFragment(name: string, fragment: Mp4Fragment): void {
    const r = this.#rendition(name);
    if (this.#ended) return; // a pipe may still drain after end(); the playlists are final
    if (!r.init) throw new Error(`rendition ${name}: fragment before init`);
    const main = mainFragmentTrack(fragment);
    if (main?.kind === 'video' && main.duration > 0 && main.sampleCount > 0) {
      r.frameRates.push((main.sampleCount * main.timescale) / main.duration);
      if (r.frameRates.length > FRAME_RATE_WINDOW) r.frameRates.shift();
    }
    this.#apply(r, r.segmenter.push(fragment, this.#now()));
  }

  /** Closes every open segment; playlists then end with EXT-X-ENDLIST. Idempotent. */
  end(): void {
    if (this.#ended) return;
    for (const r of this.#renditions.values()) this.#apply(r, r.segmenter.flush());
    this.#ended = true;
  }

  masterPlaylist(): string | undefined {
    if (!this.ready) return undefined;
    const variants: Variant[] = [];
    for (const r of this.#renditions.values()) variants.push(this.#variant(r));
    return renderMasterPlaylist({ variants });
  }

  mediaPlaylist(name: string): string | undefined {
    const r = this.#renditions.get(name);
    if (!r || (r.window.segments.length === 0 && !this.#ended)) return undefined;
    return renderMediaPlaylist({
      targetDuration: Math.max(this.#segmentTarget, r.maxSegmentDuration),
      mediaSequence: r.window.mediaSequence,
      discontinuitySequence: r.window.discontinuitySequence,
      endList: this.#ended,
      segments: r.window.segments.map((s) => ({
        uri: r.window.segmentName(s.msn),
        duration: s.duration,
        mapUri: s.initName,
        programDateTime: s.programDateTime,
        discontinuity: s.discontinuity,
      })),
    });
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

  #apply(r: Rendition, events: SegmenterEvent[]): void {
    for (const event of events) {
      if (event.type === 'part') {
        r.window.addPart(event.msn, event.part);
        continue;
      }
      const segment = r.window.addSegment(event.segment);
      r.maxSegmentDuration = Math.max(r.maxSegmentDuration, segment.duration);
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

function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
