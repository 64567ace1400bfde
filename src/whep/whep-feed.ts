import { randomInt } from 'node:crypto';
import { RtpHeader, RtpPacket } from 'werift';
import { parseAvcDecoderConfig } from '../media/avc-config.ts';
import type { FlvTag } from '../media/flv-tag.ts';
import { FLV_AUDIO_FORMAT_AAC, FLV_VIDEO_CODEC_AVC, parseVideoTagHeader } from '../media/flv-tags.ts';
import type { Logger } from '../observability/logger.ts';
import { isIdrAccessUnit, packetizeAccessUnit, rtpTimestamp90k, splitAvcc } from './h264-rtp-packetizer.ts';
import { opusPacketSamples } from './ogg-opus-reader.ts';
import { WhepEncoder } from './whep-encoder.ts';
import { RtpFanout, type DropReason } from './rtp-fanout.ts';
import type { WhepViewer } from './whep-viewer.ts';

/** What a feed needs of a live session (implemented by live/LiveSession). */
export interface WhepSource {
  readonly liveInputUid: string;
  readonly id: string;
  /** Every tag the publisher sends from now on; returns the unsubscribe. */
  tapFlv(listener: (tag: FlvTag) => void): () => void;
  /** The latest codec configuration tags, for a reader that starts mid-stream. */
  sequenceHeaders(): FlvTag[];
  /** Asks the publisher for a keyframe; false when its ingest cannot (RTMP, SRT). */
  requestKeyframe(): boolean;
  /** The source has shown B-frames (WebRTC players need the low-latency rendition). */
  hasBframes(): boolean;
}

export interface WhepFeedSettings {
  ffmpegPath: string;
  maxRestarts: number;
  opusBitrateKbps: number;
  /** RTP packets a viewer may have waiting in its transport before it is dropped. */
  maxInFlightPackets: number;
  /** Keyframe requests to the publisher are at least this far apart. */
  keyframeRequestMinIntervalMs: number;
  /** Largest RTP payload (bytes). */
  maxPayloadBytes: number;
  /** The low-latency H.264 rendition for sources with B-frames. */
  rendition: { gopSeconds: number; x264Preset: string; maxBitrateKbps: number };
}

export interface WhepFeedOptions {
  source: WhepSource;
  settings: WhepFeedSettings;
  logger: Logger;
  onViewerDropped: (viewer: WhepViewer, reason: DropReason, error?: unknown) => void;
}

// The payload type and SSRC here are placeholders: werift writes each viewer's own.
const PLACEHOLDER_PT = 96;

/**
 * The WHEP side of one live session: taps the source FLV once, packetizes its H.264 (copied, not
 * re-encoded) into RTP once, has the session's one AAC → Opus encoder, and fans every packet out
 * to all connected viewers. A viewer starts at the next keyframe; the publisher is asked for one
 * (WHIP: PLI) at a limited rate when a viewer joins or loses a picture.
 */
export class WhepFeed {
  readonly liveInputUid: string;
  readonly #opts: WhepFeedOptions;
  readonly #log: Logger;
  readonly #fanout: RtpFanout<RtpPacket, WhepViewer>;
  #untap: (() => void) | undefined;
  #nalLengthSize = 4;
  #parameterSets: Buffer[] = [];
  #audioConfig: FlvTag | undefined;
  #videoConfig: FlvTag | undefined;
  #encoder: WhepEncoder | undefined;
  /** Video comes from the encoder's rendition, not from the source. */
  #transcodeVideo = false;
  readonly #videoSsrc = randomInt(1, 2 ** 32 - 1);
  readonly #audioSsrc = randomInt(1, 2 ** 32 - 1);
  #videoSeq = randomInt(0, 65536);
  #audioSeq = randomInt(0, 65536);
  readonly #videoTsBase = randomInt(0, 2 ** 32 - 1);
  #audioTs = randomInt(0, 2 ** 32 - 1);
  #lastPts: number | undefined;
  #lastKeyframeRequest = 0;
  #closed = false;
  /** Counters for metrics and tests. */
  accessUnits = 0;
  audioPackets = 0;

  constructor(opts: WhepFeedOptions) {
    this.#opts = opts;
    this.liveInputUid = opts.source.liveInputUid;
    this.#log = opts.logger.child({ liveInputUid: this.liveInputUid, whepFeed: opts.source.id });
    this.#fanout = new RtpFanout({
      maxInFlight: opts.settings.maxInFlightPackets,
      onDrop: (viewer, reason, error) => opts.onViewerDropped(viewer, reason, error),
    });
  }

  get sourceId(): string {
    return this.#opts.source.id;
  }

  get viewerCount(): number {
    return this.#fanout.size;
  }

  /** H.264 profile_idc of the source (66, 77, 100…), once its configuration is known. */
  profileIdc: number | undefined;

  start(): void {
    if (this.#opts.source.hasBframes()) this.#switchToRendition();
    for (const tag of this.#opts.source.sequenceHeaders()) this.#onTag(tag);
    this.#untap = this.#opts.source.tapFlv((tag) => this.#onTag(tag));
  }

  /** A connected viewer: gets video from the next keyframe on, audio at once. */
  add(viewer: WhepViewer): void {
    if (this.#closed) return;
    this.#fanout.add(viewer);
    this.#startEncoder();
    this.requestKeyframe();
  }

  remove(viewer: WhepViewer): void {
    this.#fanout.remove(viewer);
  }

  /** Asks the publisher for a keyframe, at most once per interval. */
  requestKeyframe(): void {
    const now = Date.now();
    if (now - this.#lastKeyframeRequest < this.#opts.settings.keyframeRequestMinIntervalMs) return;
    this.#lastKeyframeRequest = now;
    this.#opts.source.requestKeyframe();
  }

  /** The session's encoder: Opus always (when the source has audio), the rendition when needed. */
  #startEncoder(): void {
    if (this.#encoder || this.#closed) return;
    if (!this.#audioConfig && !this.#transcodeVideo) return;
    const s = this.#opts.settings;
    this.#encoder = new WhepEncoder({
      ffmpegPath: s.ffmpegPath,
      opusBitrateKbps: s.opusBitrateKbps,
      maxRestarts: s.maxRestarts,
      logger: this.#log,
      ...(this.#transcodeVideo ? { video: s.rendition } : {}),
      onOpus: (packet) => this.#onOpus(packet),
      onVideoTag: (tag) => this.#packetizeVideo(tag),
    });
    this.#encoder.start([this.#audioConfig, this.#transcodeVideo ? this.#videoConfig : undefined].filter((t): t is FlvTag => t !== undefined));
  }

  /** From now on video comes from the low-latency rendition (B-frames seen in the source). */
  #switchToRendition(): void {
    this.#transcodeVideo = true;
    this.#log.warn('whep: the source has B-frames; WebRTC viewers get a low-latency H.264 rendition (x264, no B-frames)');
    const old = this.#encoder;
    this.#encoder = undefined;
    void old?.close();
    if (this.#fanout.size > 0) this.#startEncoder();
  }

  #onTag(tag: FlvTag): void {
    if (this.#closed) return;
    try {
      if (tag.type === 9) this.#onVideo(tag);
      else if (tag.type === 8) this.#onAudio(tag);
    } catch (error) {
      // One corrupt tag is skipped; the stream goes on (viewers recover at the next keyframe).
      this.#log.debug({ err: error }, 'whep: tag skipped');
    }
  }

  #onVideo(tag: FlvTag): void {
    const h = parseVideoTagHeader(tag.data);
    if (!h) return;
    const avc = h.enhanced ? h.codec === 'avc1' : h.codec === FLV_VIDEO_CODEC_AVC;
    if (!avc) return;
    if (tag.sequenceHeader) this.#videoConfig = tag;
    else {
      const pts = presentationTime(tag, h);
      if (pts === undefined) return;
      // A frame presented before the previous one: B-frames, which WebRTC players cannot reorder.
      if (this.#lastPts !== undefined && pts < this.#lastPts && !this.#transcodeVideo) this.#switchToRendition();
      this.#lastPts = pts;
    }
    if (this.#transcodeVideo) {
      if (this.#fanout.size > 0) this.#encoder?.write(tag);
      return;
    }
    this.#packetizeVideo(tag);
  }

  /** One H.264 FLV video tag (the source's, or the rendition's) into RTP for every viewer. */
  #packetizeVideo(tag: FlvTag): void {
    const h = parseVideoTagHeader(tag.data);
    if (!h) return;
    if (tag.sequenceHeader) {
      const config = parseAvcDecoderConfig(tag.data.subarray(5));
      this.#nalLengthSize = config.nalLengthSize;
      this.#parameterSets = [...config.sps, ...config.pps];
      this.profileIdc = config.profile;
      return;
    }
    const pts = presentationTime(tag, h);
    if (pts === undefined || this.#fanout.size === 0) return;
    const nals = splitAvcc(tag.data.subarray(h.payloadOffset), this.#nalLengthSize);
    const keyframe = isIdrAccessUnit(nals);
    const payloads = packetizeAccessUnit(nals, { maxPayload: this.#opts.settings.maxPayloadBytes, parameterSets: this.#parameterSets });
    const timestamp = rtpTimestamp90k(pts, this.#videoTsBase);
    const packets = payloads.map((payload, i) => {
      const header = new RtpHeader({
        payloadType: PLACEHOLDER_PT,
        sequenceNumber: this.#videoSeq,
        timestamp,
        ssrc: this.#videoSsrc,
        marker: i === payloads.length - 1,
      });
      this.#videoSeq = (this.#videoSeq + 1) & 0xffff;
      return new RtpPacket(header, payload);
    });
    this.accessUnits++;
    this.#fanout.broadcast('video', packets, keyframe);
  }

  #onAudio(tag: FlvTag): void {
    const format = (tag.data[0] ?? 0) >> 4;
    if (format !== FLV_AUDIO_FORMAT_AAC) return;
    if (tag.sequenceHeader) {
      this.#audioConfig = tag;
      if (this.#fanout.size > 0) this.#startEncoder();
    }
    if (this.#fanout.size > 0) this.#encoder?.write(tag);
  }

  #onOpus(packet: Buffer): void {
    const samples = opusPacketSamples(packet) || 960;
    const header = new RtpHeader({
      payloadType: PLACEHOLDER_PT,
      sequenceNumber: this.#audioSeq,
      timestamp: this.#audioTs,
      ssrc: this.#audioSsrc,
      marker: false,
    });
    this.#audioSeq = (this.#audioSeq + 1) & 0xffff;
    this.#audioTs = (this.#audioTs + samples) >>> 0;
    this.audioPackets++;
    this.#fanout.broadcast('audio', [new RtpPacket(header, packet)]);
  }

  /** Stops the tap and the encoder; viewers are closed by the owner. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#untap?.();
    await this.#encoder?.close();
  }

  viewers(): WhepViewer[] {
    return [...this.#fanout.viewers()];
  }
}

/** The presentation time (ms) of a coded AVC frame tag: DTS + composition time offset. */
function presentationTime(tag: FlvTag, h: NonNullable<ReturnType<typeof parseVideoTagHeader>>): number | undefined {
  // Legacy AVC: packet type 1 is a frame (CTS in bytes 2-4); enhanced: 1 (CTS in 5-7) or 3 (CTS 0).
  if (!h.enhanced) return h.packetType === 1 ? tag.timestamp + tag.data.readIntBE(2, 3) : undefined;
  if (h.packetType === 1) return tag.timestamp + tag.data.readIntBE(5, 3);
  return h.packetType === 3 ? tag.timestamp : undefined;
}
