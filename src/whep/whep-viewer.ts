import { randomBytes } from 'node:crypto';
import { RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI, type RTCRtpSender, type RtpPacket } from 'werift';
import type { Logger } from '../observability/logger.ts';
import { iceGathered, icePeerOptions, type IceNetworkSettings } from '../webrtc/ice-network.ts';
import { announcePublicAddresses } from '../webrtc/public-candidates.ts';
import type { FanoutViewer, MediaKind } from './rtp-fanout.ts';
import type { WhepChoice } from './whep-offer.ts';

export interface WhepViewerSettings {
  network: IceNetworkSettings;
  /** ICE + DTLS must complete within this after the answer. */
  connectTimeoutMs: number;
  /** No consent check (STUN) from the viewer for this long ends it. */
  consentTimeoutMs: number;
}

export interface WhepViewerOptions {
  /** Chosen by the caller when it must name the viewer before the peer exists (admission). */
  id?: string;
  liveInputUid: string;
  choice: WhepChoice;
  offer: string;
  remoteAddress: string;
  settings: WhepViewerSettings;
  logger: Logger;
  /** ICE and DTLS are up: media may flow. */
  onConnected: (viewer: WhepViewer) => void;
  /** The viewer lost a picture (PLI/FIR). */
  onKeyframeRequest: (viewer: WhepViewer) => void;
  onClosed: (viewer: WhepViewer, reason: WhepViewerEndReason) => void;
}

export type WhepViewerEndReason = 'deleted' | 'peer_gone' | 'timeout' | 'slow' | 'send_failed' | 'session_ended' | 'shutdown' | 'setup_failed';

type State = 'new' | 'pending' | 'connected' | 'closed';

/**
 * One WHEP viewer: a werift peer (ICE-lite, send only) that the session's feed hands RTP to.
 * werift rewrites SSRC and payload type per viewer, answers NACKs from its history and sends
 * RTCP sender reports (audio/video sync). Ends on DELETE, departure, consent expiry, a stalled
 * transport, or the end of the live session.
 */
export class WhepViewer implements FanoutViewer<RtpPacket> {
  readonly id: string;
  readonly etag = `"${randomBytes(8).toString('hex')}"`;
  readonly liveInputUid: string;
  readonly remoteAddress: string;
  readonly createdAt = Date.now();
  readonly #opts: WhepViewerOptions;
  readonly #log: Logger;
  readonly #pc: RTCPeerConnection;
  #video: RTCRtpSender | undefined;
  #audio: RTCRtpSender | undefined;
  #state: State = 'new';
  #lastActivity = Date.now();
  #closing: Promise<void> | undefined;
  connectedAt: number | undefined;

  constructor(opts: WhepViewerOptions) {
    this.#opts = opts;
    this.id = opts.id ?? randomBytes(16).toString('hex');
    this.liveInputUid = opts.liveInputUid;
    this.remoteAddress = opts.remoteAddress;
    this.#log = opts.logger.child({ whepViewer: this.id, liveInputUid: opts.liveInputUid });
    const { choice } = opts;
    const video = new RTCRtpCodecParameters({
      mimeType: 'video/H264',
      clockRate: 90000,
      payloadType: choice.video.payloadType,
      rtcpFeedback: [useNACK(), usePLI()],
      // werift matches H.264 on profile-level-id: the offered parameters are answered as they are.
      ...(choice.video.fmtp ? { parameters: choice.video.fmtp } : {}),
    });
    const audio = choice.audio
      ? [
          new RTCRtpCodecParameters({
            mimeType: 'audio/opus',
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
      ...icePeerOptions(opts.settings.network, () => {
        this.#lastActivity = Date.now();
      }),
    });
  }

  get state(): State {
    return this.#state;
  }

  /** Sets up the peer; resolves with the SDP answer (every host candidate in it). */
  async start(): Promise<string> {
    this.#state = 'pending';
    const pc = this.#pc;
    // Our transceivers before the offer: werift pairs them with the viewer's recvonly sections.
    this.#video = pc.addTransceiver('video', { direction: 'sendonly' }).sender;
    if (this.#opts.choice.audio) this.#audio = pc.addTransceiver('audio', { direction: 'sendonly' }).sender;
    this.#video.onPictureLossIndication.subscribe(() => this.#opts.onKeyframeRequest(this));
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.#state === 'pending') {
        this.#state = 'connected';
        this.connectedAt = Date.now();
        this.#lastActivity = Date.now();
        this.#log.info({ ms: this.connectedAt - this.createdAt }, 'whep viewer connected');
        this.#opts.onConnected(this);
      } else if (state === 'failed' || state === 'closed') {
        void this.close('peer_gone');
      }
    });
    await pc.setRemoteDescription({ type: 'offer', sdp: this.#opts.offer });
    // DTLS server (a=setup:passive), as ICE-lite servers are: the viewer runs the checks and
    // starts the handshake once it is ready.
    for (const dtls of pc.dtlsTransports) dtls.role = 'server';
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await iceGathered(pc);
    const sdp = pc.localDescription?.sdp;
    if (!sdp) throw new Error('werift produced no answer');
    return announcePublicAddresses(sdp, this.#opts.settings.network.publicIps);
  }

  /** For the fan-out: hands one packet to werift (which encrypts and sends it). */
  send(kind: MediaKind, packet: RtpPacket): Promise<void> | void {
    if (this.#state !== 'connected') return undefined;
    const sender = kind === 'video' ? this.#video : this.#audio;
    return sender?.sendRtp(packet);
  }

  /** Called by the owner about every 250 ms: connect and consent deadlines. */
  tick(now: number): void {
    const s = this.#opts.settings;
    if (this.#state === 'pending' && now - this.createdAt > s.connectTimeoutMs) {
      this.#log.info('whep viewer did not connect in time');
      void this.close('timeout');
    } else if (this.#state === 'connected' && now - this.#lastActivity > s.consentTimeoutMs) {
      this.#log.info({ silentMs: now - this.#lastActivity }, 'whep viewer silent (consent expired)');
      void this.close('timeout');
    }
  }

  /** Ends the peer. Idempotent. */
  close(reason: WhepViewerEndReason): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: WhepViewerEndReason): Promise<void> {
    const wasConnected = this.#state === 'connected';
    this.#state = 'closed';
    this.#log.info({ reason, wasConnected, secondsConnected: this.connectedAt ? Math.round((Date.now() - this.connectedAt) / 1000) : 0 }, 'whep viewer closed');
    this.#opts.onClosed(this, reason);
    await this.#pc.close().catch(() => undefined);
  }
}
