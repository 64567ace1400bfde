import type { FlvTag } from './ingest-contract.ts';
import { parseVideoTagHeader } from '../media/flv-tags.ts';

/**
 * Watches the publisher's media for what makes low-latency playback worse or impossible: long or
 * irregular keyframe intervals, B-frames, codecs we cannot serve. Pure: fed with FLV tags (and
 * their arrival times, for the ingest rates), it reports issues as they appear (each once until
 * it clears).
 */

export type HealthIssueCode =
  | 'ERR_GOP_OUT_OF_RANGE'
  | 'ERR_GOP_IRREGULAR'
  | 'WARN_BFRAMES'
  | 'ERR_UNSUPPORTED_VIDEO_CODEC'
  | 'ERR_UNSUPPORTED_AUDIO_CODEC'
  /** Raised from outside (the recording): the spool is full or the disk is not keeping up. */
  | 'ERR_STORAGE_QUOTA_EXHAUSTED';

export interface HealthIssue {
  code: HealthIssueCode;
  message: string;
}

export interface InputHealthReport {
  videoCodec: string | undefined;
  audioCodec: string | undefined;
  /** Mean keyframe interval over the recent keyframes, seconds. */
  keyframeIntervalSeconds: number | undefined;
  bframes: boolean;
  issues: HealthIssue[];
}

export interface InputHealthOptions {
  /** Longest keyframe interval that still gives LL-HLS segments near the target (s). */
  maxKeyframeIntervalSeconds: number;
  /** Relative spread (max/min) of recent intervals above which the GOP counts as irregular. */
  maxIrregularity?: number;
}

const AUDIO_CODECS: Record<number, string> = { 2: 'mp3', 10: 'aac', 11: 'speex', 1: 'adpcm', 7: 'g711a', 8: 'g711u', 9: 'exheader' };
const VIDEO_CODECS: Record<number, string> = { 7: 'h264', 12: 'hevc', 2: 'h263', 4: 'vp6', 3: 'screen' };
const ENHANCED_CODECS: Record<string, string> = { avc1: 'h264', hvc1: 'hevc', av01: 'av1', vp09: 'vp9' };
const SUPPORTED_VIDEO = new Set(['h264']);
const SUPPORTED_AUDIO = new Set(['aac', 'mp3']);
const RECENT = 8;
/** Ingest rates are measured over the arrivals of the last RATE_SLOTS × RATE_SLOT_MS. */
const RATE_SLOT_MS = 500;
const RATE_SLOTS = 10;

/** What arrived from the publisher recently, by wall clock: the rate it really delivers. */
export interface IngestRates {
  bitsPerSecond: number;
  framesPerSecond: number;
}

export class InputHealth {
  readonly #opts: Required<InputHealthOptions>;
  #videoCodec: string | undefined;
  #audioCodec: string | undefined;
  #keyframes: number[] = [];
  #bframes = false;
  #issues = new Map<HealthIssueCode, HealthIssue>();
  // A ring of fixed time slots (bytes and video frames per slot): O(1) per tag.
  readonly #slotIds = new Array<number>(RATE_SLOTS).fill(-1);
  readonly #slotBytes = new Array<number>(RATE_SLOTS).fill(0);
  readonly #slotFrames = new Array<number>(RATE_SLOTS).fill(0);
  #firstArrival: number | undefined;

  constructor(opts: InputHealthOptions) {
    this.#opts = { maxIrregularity: 2, ...opts };
  }

  /**
   * Feeds one tag that arrived at `arrivalMs` (wall clock); returns the issues that appeared with
   * it (already-known ones are not repeated).
   */
  push(tag: FlvTag, arrivalMs?: number): HealthIssue[] {
    if (arrivalMs !== undefined) this.#count(tag, arrivalMs);
    const before = new Set(this.#issues.keys());
    if (tag.type === 8 && tag.data.length > 0 && this.#audioCodec === undefined) {
      this.#audioCodec = AUDIO_CODECS[tag.data[0]! >> 4] ?? `flv-audio-${tag.data[0]! >> 4}`;
      if (!SUPPORTED_AUDIO.has(this.#audioCodec)) {
        this.#set('ERR_UNSUPPORTED_AUDIO_CODEC', `audio codec ${this.#audioCodec} is not supported (use AAC)`);
      }
    } else if (tag.type === 9 && tag.data.length > 0) {
      this.#video(tag);
    }
    return [...this.#issues.values()].filter((i) => !before.has(i.code));
  }

  #video(tag: FlvTag): void {
    if (this.#videoCodec === undefined) {
      const header = parseVideoTagHeader(tag.data);
      if (header?.enhanced) {
        this.#videoCodec = ENHANCED_CODECS[String(header.codec)] ?? 'unknown';
      } else {
        this.#videoCodec = VIDEO_CODECS[tag.data[0]! & 0x0f] ?? `flv-video-${tag.data[0]! & 0x0f}`;
      }
      if (!SUPPORTED_VIDEO.has(this.#videoCodec)) {
        this.#set('ERR_UNSUPPORTED_VIDEO_CODEC', `video codec ${this.#videoCodec} is not supported (use H.264)`);
      }
    }
    if (tag.sequenceHeader) return;
    // Legacy AVC tags carry the composition time offset in bytes 2..4: non-zero means reordering.
    if (!this.#bframes && (tag.data[0]! & 0x0f) === 7 && tag.data.length >= 5 && tag.data.readIntBE(2, 3) !== 0) {
      this.#bframes = true;
      this.#set('WARN_BFRAMES', 'the source uses B-frames: they add decode delay; turn them off in the encoder');
    }
    if (!tag.keyframe) return;
    this.#keyframes.push(tag.timestamp);
    if (this.#keyframes.length > RECENT + 1) this.#keyframes.shift();
    const intervals = this.#intervals();
    if (intervals.length === 0) return;
    const last = intervals.at(-1)!;
    const max = this.#opts.maxKeyframeIntervalSeconds;
    if (last > max) {
      this.#set('ERR_GOP_OUT_OF_RANGE', `keyframe interval ${last.toFixed(1)} s exceeds ${max} s; set the encoder's keyframe interval to 1–2 s`);
    } else if (intervals.every((i) => i <= max)) {
      this.#issues.delete('ERR_GOP_OUT_OF_RANGE');
    }
    if (intervals.length >= 3) {
      const spread = Math.max(...intervals) / Math.max(1e-3, Math.min(...intervals));
      if (spread > this.#opts.maxIrregularity) {
        this.#set('ERR_GOP_IRREGULAR', `keyframe intervals vary from ${Math.min(...intervals).toFixed(1)} s to ${Math.max(...intervals).toFixed(1)} s; use a fixed keyframe interval`);
      } else {
        this.#issues.delete('ERR_GOP_IRREGULAR');
      }
    }
  }

  #intervals(): number[] {
    const out: number[] = [];
    for (let i = 1; i < this.#keyframes.length; i++) {
      // RTMP timestamps are 32-bit ms and may wrap; a negative step is a wrap, not an interval.
      const d = (this.#keyframes[i]! - this.#keyframes[i - 1]!) / 1000;
      if (d > 0) out.push(d);
    }
    return out;
  }

  #count(tag: FlvTag, at: number): void {
    this.#firstArrival ??= at;
    const id = Math.floor(at / RATE_SLOT_MS);
    const i = id % RATE_SLOTS;
    if (this.#slotIds[i] !== id) {
      this.#slotIds[i] = id;
      this.#slotBytes[i] = 0;
      this.#slotFrames[i] = 0;
    }
    this.#slotBytes[i]! += tag.data.length;
    if (tag.type === 9 && !tag.sequenceHeader) this.#slotFrames[i]! += 1;
  }

  /** Bits and video frames per second received over the last 5 s (less at the start); undefined in the first second. */
  rates(nowMs: number): IngestRates | undefined {
    // Under a second of arrivals says little (and a tiny divisor would say it loudly).
    if (this.#firstArrival === undefined || nowMs - this.#firstArrival < 1000) return undefined;
    const id = Math.floor(nowMs / RATE_SLOT_MS);
    const windowStart = Math.max((id - RATE_SLOTS + 1) * RATE_SLOT_MS, this.#firstArrival);
    const seconds = (nowMs - windowStart) / 1000;
    if (seconds <= 0) return undefined;
    let bytes = 0;
    let frames = 0;
    for (let i = 0; i < RATE_SLOTS; i++) {
      const slot = this.#slotIds[i]!;
      if (slot > id - RATE_SLOTS && slot <= id) {
        bytes += this.#slotBytes[i]!;
        frames += this.#slotFrames[i]!;
      }
    }
    return { bitsPerSecond: (bytes * 8) / seconds, framesPerSecond: frames / seconds };
  }

  /** An issue found outside the media (e.g. by the recording); true when it is new. */
  raise(issue: HealthIssue): boolean {
    const known = this.#issues.has(issue.code);
    this.#issues.set(issue.code, issue);
    return !known;
  }

  /** Ends an issue raised with raise(); true when it was there. */
  clear(code: HealthIssueCode): boolean {
    return this.#issues.delete(code);
  }

  #set(code: HealthIssueCode, message: string): void {
    if (!this.#issues.has(code)) this.#issues.set(code, { code, message });
  }

  get report(): InputHealthReport {
    const intervals = this.#intervals();
    return {
      videoCodec: this.#videoCodec,
      audioCodec: this.#audioCodec,
      keyframeIntervalSeconds: intervals.length ? intervals.reduce((a, b) => a + b, 0) / intervals.length : undefined,
      bframes: this.#bframes,
      issues: [...this.#issues.values()],
    };
  }
}
