import type { FlvTag } from './flv-tag.ts';
import { parseAacConfig } from './aac-config.ts';
import { parseAvcDecoderConfig } from './avc-config.ts';
import {
  FLV_AUDIO_FORMAT_AAC,
  FLV_AUDIO_FORMAT_EX_HEADER,
  FLV_AUDIO_FORMAT_MP3,
  FLV_TAG_AUDIO,
  FLV_TAG_VIDEO,
  FLV_VIDEO_CODEC_AVC,
  FLV_VIDEO_CODEC_HEVC_LEGACY,
  parseVideoTagHeader,
} from './flv-tags.ts';

export type SourceVideoCodec = 'h264' | 'hevc' | 'av1' | 'vp9' | 'other';
export type SourceAudioCodec = 'aac' | 'mp3' | 'other';

export interface SourceVideoInfo {
  codec: SourceVideoCodec;
  width?: number;
  height?: number;
  codecString?: string;
}

export interface SourceAudioInfo {
  codec: SourceAudioCodec;
  sampleRate?: number;
  channels?: number;
  codecString?: string;
}

export interface SourceInfo {
  video?: SourceVideoInfo;
  audio?: SourceAudioInfo;
}

// FLV SoundRate bits for formats without a decoder configuration (MP3 and the PCM family).
const LEGACY_SOUND_RATES = [5512, 11025, 22050, 44100];

/**
 * What the publisher sends, learnt from its tags: codecs, and dimensions / sample rate from the
 * decoder configurations. Pure; a malformed configuration leaves the fields it could not read
 * unset rather than throwing, since ingest must keep flowing.
 */
export class FlvSourceInfo {
  #video: SourceVideoInfo | undefined;
  #audio: SourceAudioInfo | undefined;

  push(tag: FlvTag): void {
    if (tag.type === FLV_TAG_VIDEO) this.#pushVideo(tag);
    else if (tag.type === FLV_TAG_AUDIO) this.#pushAudio(tag);
  }

  get info(): SourceInfo {
    const out: SourceInfo = {};
    if (this.#video) out.video = { ...this.#video };
    if (this.#audio) out.audio = { ...this.#audio };
    return out;
  }

  #pushVideo(tag: FlvTag): void {
    const h = parseVideoTagHeader(tag.data);
    if (!h) return;
    let codec: SourceVideoCodec;
    if (h.enhanced) {
      codec = h.codec === 'hvc1' ? 'hevc' : h.codec === 'av01' ? 'av1' : h.codec === 'vp09' ? 'vp9' : h.codec === 'avc1' ? 'h264' : 'other';
    } else {
      codec = h.codec === FLV_VIDEO_CODEC_AVC ? 'h264' : h.codec === FLV_VIDEO_CODEC_HEVC_LEGACY ? 'hevc' : 'other';
    }
    // A codec change (rare, but encoders restart) invalidates what we knew.
    if (this.#video?.codec !== codec) this.#video = { codec };
    if (!tag.sequenceHeader || codec !== 'h264') return;
    try {
      const cfg = parseAvcDecoderConfig(tag.data.subarray(h.payloadOffset));
      this.#video = { codec, width: cfg.width, height: cfg.height, codecString: cfg.codecString };
    } catch {
      this.#video = { codec };
    }
  }

  #pushAudio(tag: FlvTag): void {
    const b0 = tag.data[0];
    if (b0 === undefined) return;
    const format = b0 >> 4;
    let codec: SourceAudioCodec;
    if (format === FLV_AUDIO_FORMAT_EX_HEADER) {
      const fourCc = tag.data.toString('latin1', 1, 5);
      codec = fourCc === 'mp4a' ? 'aac' : fourCc === '.mp3' ? 'mp3' : 'other';
    } else {
      codec = format === FLV_AUDIO_FORMAT_AAC ? 'aac' : format === FLV_AUDIO_FORMAT_MP3 ? 'mp3' : 'other';
    }
    if (this.#audio?.codec !== codec) this.#audio = { codec };
    if (format === FLV_AUDIO_FORMAT_AAC && tag.sequenceHeader) {
      try {
        const cfg = parseAacConfig(tag.data.subarray(2));
        this.#audio = { codec, sampleRate: cfg.sampleRate, channels: cfg.channels, codecString: cfg.codecString };
      } catch {
        this.#audio = { codec };
      }
    } else if (format === FLV_AUDIO_FORMAT_EX_HEADER && tag.sequenceHeader && codec === 'aac') {
      try {
        const cfg = parseAacConfig(tag.data.subarray(5));
        this.#audio = { codec, sampleRate: cfg.sampleRate, channels: cfg.channels, codecString: cfg.codecString };
      } catch {
        this.#audio = { codec };
      }
    } else if (format !== FLV_AUDIO_FORMAT_AAC && format !== FLV_AUDIO_FORMAT_EX_HEADER && this.#audio.sampleRate === undefined) {
      // Legacy formats describe themselves in every tag's first byte.
      this.#audio = { codec, sampleRate: LEGACY_SOUND_RATES[(b0 >> 2) & 3], channels: (b0 & 1) + 1 };
    }
  }
}
