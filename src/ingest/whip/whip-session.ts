import { randomBytes } from 'node:crypto';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtcpSrPacket,
  useNACK,
  usePLI,
  type MediaStreamTrack,
  type RTCRtpReceiver,
  type RtcpPacket,
  type RtpPacket,
} from 'werift';
import type { PublishEndReason, PublishSession, TerminateReason } from '../../live/ingest-contract.ts';
import type { Logger } from '../../observability/logger.ts';
import { BRIDGE_AUDIO_PT, BRIDGE_VIDEO_PT } from './bridge-args.ts';
import { isDecoderStart, isKeyframeStart } from './rtp-keyframe.ts';
import { announcePublicAddresses } from '../../webrtc/public-candidates.ts';
import { iceGathered, icePeerOptions, type IceNetworkSettings } from '../../webrtc/ice-network.ts';
import { WhipBridge } from './whip-bridge.ts';
import type { OfferChoice } from './whip-offer.ts';

/** The ICE network settings (shared with WHEP playback). */
export type WhipNetworkSettings = IceNetworkSettings;

export interface WhipSessionSettings {
  network: WhipNetworkSettings;
  ffmpegPath: string;
  maxRestarts: number;
  gopSeconds: number;
  x264Preset: string;
  /** ICE + DTLS must complete within this after the answer. */
  connectTimeoutMs: number;
  /** No consent check (STUN) and no RTP for this long ends the session. */
  consentTimeoutMs: number;
  /** A keyframe is requested when the publisher has sent none for this long. */
  keyframeIntervalMs: number;
}

export interface WhipSessionOptions {
  choice: OfferChoice;
  offer: string;
  publish: PublishSession;
  remoteAddress: string;
  settings: WhipSessionSettings;
  logger: Logger;
  onClosed: (session: WhipSession) => void;
}

const TICK_MS = 250;
/** Keyframe requests while waiting for the first one are this far apart. */
const PLI_WAITING_MS = 500;
/** Keyframe requests for playback viewers reach the publisher at most this often. */
const PLAYBACK_PLI_MIN_MS = 500;
/** At most this much RTP is held for a bridge that is not ready yet (~2 s at 8 Mbit/s). */
const HELD_MAX_BYTES = 2 * 1024 * 1024;

type State = 'new' | 'pending' | 'connected' | 'closed';

/**
 * One WHIP publisher: a werift peer (ICE-lite, receive only), its RTP forwarded to the bridge
 * FFmpeg with payload types rewritten, held until a keyframe; FLV tags from the bridge go to the
 * live session. Ends on DELETE, on the peer's departure, on consent timeout, or when the live
 * session terminates it.
 */
export class WhipSession {
  readonly id = randomBytes(16).toString('hex');
  readonly etag = `"${randomBytes(8).toString('hex')}"`;
  readonly liveInputUid: string;
  readonly remoteAddress: string;
  readonly createdAt = Date.now();
  readonly #opts: WhipSessionOptions;
  readonly #log: Logger;
  readonly #pc: RTCPeerConnection;
  readonly #bridge: WhipBridge;
  #state: State = 'new';
  #sessionDone = false;
  #timer: NodeJS.Timeout | undefined;
  #lastActivity = Date.now();
  #videoReceiver: RTCRtpReceiver | undefined;
  #videoSsrc: number | undefined;
  /** Video is forwarded from a keyframe on; audio once video flows. Reset on bridge restart. */
  #videoFlowing = false;
  /** The bridge FFmpeg has bound its ports: what is sent now is not lost. */
  #bridgeReady = false;
  /** RTP received while the bridge was not ready, from a keyframe on (see #hold). */
  #held: { packets: Array<{ kind: 'video' | 'audio'; packet: Buffer }>; bytes: number } | undefined;
  #lastKeyframeAt: number | undefined;
  #lastPliAt = 0;
  #closing: Promise<void> | undefined;
  /** Milestones for the log (and the benchmark). */
  connectedAt: number | undefined;
  firstRtpAt: number | undefined;
  firstKeyframeAt: number | undefined;
  firstTagAt: number | undefined;

  constructor(opts: WhipSessionOptions) {
    this.#opts = opts;
    this.liveInputUid = opts.publish.liveInputUid;
    this.remoteAddress = opts.remoteAddress;
    this.#log = opts.logger.child({ whipSession: this.id, liveInputUid: this.liveInputUid });
    const { choice, settings } = opts;
    const net = settings.network;
    const feedback = [useNACK(), usePLI()];
    const video = new RTCRtpCodecParameters({
      mimeType: `video/${choice.video.name}`,
      clockRate: 90000,
      payloadType: choice.video.payloadType,
      rtcpFeedback: feedback,
      // For H.264 the offered profile is taken as is: werift matches profile-level-id exactly.
      ...(choice.video.fmtp ? { parameters: choice.video.fmtp } : {}),
    });
    const audio = choice.audio
      ? [
          new RTCRtpCodecParameters({
            mimeType: `audio/${choice.audio.name}`,
            clockRate: 48000,
            channels: 2,
            payloadType: choice.audio.payloadType,
            ...(choice.audio.fmtp ? { parameters: choice.audio.fmtp } : {}),
          }),
        ]
      : [];
    this.#pc = new RTCPeerConnection({
      codecs: { video: [video], audio },
      headerExtensions: { video: [], audio: [] },
      // Every authenticated STUN binding request is a consent check (RFC 7675) from the peer.
      ...icePeerOptions(net, () => {
        this.#lastActivity = Date.now();
      }),
    });
    this.#bridge = new WhipBridge({
      ffmpegPath: settings.ffmpegPath,
      video: { codec: choice.video.codec, fmtp: choice.video.fmtp },
      audio: choice.audio !== undefined,
      gopSeconds: settings.gopSeconds,
      x264Preset: settings.x264Preset,
      maxRestarts: settings.maxRestarts,
      logger: this.#log,
      onTag: (tag) => {
        if (this.#state === 'closed') return;
        if (this.firstTagAt === undefined) {
          this.firstTagAt = Date.now();
          this.#log.info({ ms: this.firstTagAt - this.createdAt, sinceKeyframeMs: this.firstTagAt - (this.firstKeyframeAt ?? this.firstTagAt) }, 'whip bridge output started');
        }
        opts.publish.pushFlvTag(tag);
      },
      onReady: (restarted) => {
        // A new FFmpeg knows nothing yet: start it at a keyframe, held or asked for now.
        this.#bridgeReady = true;
        const held = this.#held;
        this.#held = undefined;
        this.#videoFlowing = held !== undefined;
        this.#log.info({ ms: Date.now() - this.createdAt, restarted, heldPackets: held?.packets.length ?? 0 }, 'whip bridge ready');
        for (const p of held?.packets ?? []) this.#bridge.send(p.kind, p.packet);
        if (!held) this.#requestKeyframe(restarted ? 'bridge restarted' : 'bridge ready');
      },
      onExit: () => {
        this.#bridgeReady = false;
        this.#videoFlowing = false;
        // Asked now, the keyframe can be held while FFmpeg restarts and start it at once.
        this.#requestKeyframe('bridge exited');
      },
      onFailed: (error) => {
        this.#log.error({ err: error }, 'whip bridge failed for good');
        void this.close('protocol_error');
      },
    });
  }

  /** The ICE ufrag of the offer: a PATCH with another one is an ICE restart. */
  get offerUfrag(): string | undefined {
    return this.#opts.choice.iceUfrag;
  }

  get state(): State {
    return this.#state;
  }

  /** Sets up the peer and the bridge; resolves with the SDP answer (every host candidate in it). */
  async start(): Promise<string> {
    this.#state = 'pending';
    this.#opts.publish.onTerminate((reason) => this.#onTerminate(reason));
    // The session's FFmpeg restarts at the next keyframe (browsers send one only when asked); WHEP
    // viewers joining ask too, and those requests reach the publisher at most once per interval.
    this.#opts.publish.onKeyframeWanted?.((why) => {
      if (why === 'restart') this.#requestKeyframe('session ffmpeg restarting');
      else if (Date.now() - this.#lastPliAt >= PLAYBACK_PLI_MIN_MS) this.#requestKeyframe('playback viewer');
    });
    const pc = this.#pc;
    pc.onTrack.subscribe((track) => this.#onTrack(track));
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.#state === 'pending') {
        this.#state = 'connected';
        this.connectedAt = Date.now();
        this.#lastActivity = Date.now();
        this.#log.info({ ms: this.connectedAt - this.createdAt }, 'whip peer connected');
        this.#requestKeyframe('start');
      } else if (state === 'failed' || state === 'closed') {
        this.#log.info({ state }, 'whip peer gone');
        void this.close('client_disconnect');
      }
    });
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    await this.#bridge.start();
    await pc.setRemoteDescription({ type: 'offer', sdp: this.#opts.offer });
    // DTLS server (a=setup:passive), as ICE-lite servers are: the publisher, which runs the ICE
    // checks, also starts the handshake once it is ready (a ClientHello from us could beat it).
    for (const dtls of pc.dtlsTransports) dtls.role = 'server';
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await iceGathered(pc);
    const sdp = pc.localDescription?.sdp;
    if (!sdp) throw new Error('werift produced no answer');
    return announcePublicAddresses(sdp, this.#opts.settings.network.publicIps);
  }

  #onTrack(track: MediaStreamTrack): void {
    const receiver = this.#pc.getTransceivers().find((t) => t.receiver.tracks.includes(track))?.receiver;
    if (track.kind === 'video') this.#videoReceiver = receiver;
    receiver?.onRtcp.subscribe((packet: RtcpPacket) => this.#onRtcp(track.kind === 'video' ? 'video' : 'audio', packet));
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => this.#onRtp(track.kind === 'video' ? 'video' : 'audio', rtp));
  }

  #onRtp(kind: 'video' | 'audio', rtp: RtpPacket): void {
    if (this.#state === 'closed') return;
    this.#lastActivity = Date.now();
    if (kind === 'video' && this.firstRtpAt === undefined) {
      this.firstRtpAt = this.#lastActivity;
      this.#log.info({ ms: this.firstRtpAt - this.createdAt, bridgeReady: this.#bridgeReady }, 'whip first video rtp');
    }
    // Padding-only packets (bandwidth probes) carry no media.
    if (rtp.payload.length === 0) return;
    let start = false;
    if (kind === 'video') {
      this.#videoSsrc = rtp.header.ssrc;
      const key = isKeyframeStart(this.#opts.choice.video.codec, rtp.payload);
      if (key) {
        this.#lastKeyframeAt = Date.now();
        if (this.firstKeyframeAt === undefined) {
          this.firstKeyframeAt = this.#lastKeyframeAt;
          this.#log.info({ ms: this.firstKeyframeAt - this.createdAt, bridgeReady: this.#bridgeReady }, 'whip first keyframe');
        }
        start = isDecoderStart(this.#opts.choice.video.codec, rtp.payload);
      }
    }
    const packet = rtp.serialize();
    // Byte 1: marker bit and payload type; FFmpeg's SDP names fixed payload types.
    packet[1] = ((packet[1] ?? 0) & 0x80) | (kind === 'video' ? BRIDGE_VIDEO_PT : BRIDGE_AUDIO_PT);
    if (!this.#bridgeReady) {
      this.#hold(kind, packet, start);
      return;
    }
    if (!this.#videoFlowing) {
      if (kind === 'audio' || !start) return;
      this.#videoFlowing = true;
    }
    this.#bridge.send(kind, packet);
  }

  /**
   * Keeps what arrives while the bridge FFmpeg is not listening yet (a publisher can be faster
   * than FFmpeg's start on a busy host), from the latest keyframe on, so that the bridge starts
   * with it instead of waiting for another one (a browser answers a PLI in 0.1–0.7 s).
   */
  #hold(kind: 'video' | 'audio', packet: Buffer, start: boolean): void {
    if (start) this.#held = { packets: [], bytes: 0 };
    const held = this.#held;
    if (!held) return; // nothing before a keyframe is of use
    if (held.bytes + packet.length > HELD_MAX_BYTES) {
      this.#held = undefined;
      return;
    }
    held.packets.push({ kind, packet });
    held.bytes += packet.length;
  }

  #onRtcp(kind: 'video' | 'audio', packet: RtcpPacket): void {
    // Sender reports map RTP time to wall clock: FFmpeg uses them to align audio and video.
    if (packet.type !== RtcpSrPacket.type || this.#state === 'closed') return;
    this.#bridge.send(kind, (packet as RtcpSrPacket).serialize(), true);
  }

  #requestKeyframe(why: string): void {
    const receiver = this.#videoReceiver;
    const ssrc = this.#videoSsrc ?? receiver?.track.ssrc;
    if (!receiver || ssrc === undefined || this.#state !== 'connected') {
      this.#log.debug({ why, state: this.#state, ssrcKnown: ssrc !== undefined }, 'keyframe request not sent yet');
      return;
    }
    this.#lastPliAt = Date.now();
    // The rare requests (start, restarts) at info: they explain a slow start; periodic ones at debug.
    const periodic = why === 'keyframe interval' || why === 'waiting for a keyframe';
    this.#log[periodic ? 'debug' : 'info']({ why }, 'requesting a keyframe (PLI)');
    receiver.sendRtcpPLI(ssrc).catch((err: unknown) => this.#log.debug({ err }, 'PLI not sent'));
  }

  #tick(): void {
    const now = Date.now();
    const s = this.#opts.settings;
    if (this.#state === 'pending' && now - this.createdAt > s.connectTimeoutMs) {
      this.#log.info('whip peer did not connect in time');
      void this.close('timeout');
      return;
    }
    if (this.#state !== 'connected') return;
    if (now - this.#lastActivity > s.consentTimeoutMs) {
      this.#log.info({ silentMs: now - this.#lastActivity }, 'whip peer silent (consent expired)');
      void this.close('timeout');
      return;
    }
    if (!this.#videoFlowing) {
      if (now - this.#lastPliAt >= PLI_WAITING_MS) this.#requestKeyframe('waiting for a keyframe');
    } else if (
      now - (this.#lastKeyframeAt ?? 0) >= s.keyframeIntervalMs &&
      now - this.#lastPliAt >= s.keyframeIntervalMs
    ) {
      // Browsers send keyframes only when asked: segments need one every few seconds.
      this.#requestKeyframe('keyframe interval');
    }
  }

  /** PATCH: trickled candidates need no action from an ICE-lite server (the peer's checks find us). */
  acceptTrickle(): void {
    this.#lastActivity = Date.now();
  }

  #onTerminate(reason: TerminateReason): void {
    // Ended by the live session: it needs no `end()` from us.
    this.#sessionDone = true;
    this.#log.info({ reason }, 'whip publish terminated by session');
    void this.close('client_disconnect');
  }

  /** Ends the publish, the peer and the bridge. Idempotent. */
  close(reason: PublishEndReason): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: PublishEndReason): Promise<void> {
    const wasConnected = this.#state === 'connected';
    this.#state = 'closed';
    clearInterval(this.#timer);
    if (!this.#sessionDone) {
      this.#sessionDone = true;
      this.#opts.publish.end(reason);
    }
    this.#log.info({ reason, wasConnected }, 'whip session closed');
    this.#opts.onClosed(this);
    await Promise.allSettled([this.#pc.close(), this.#bridge.close()]);
  }
}
