import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI, useOPUS } from 'werift';
import { FFMPEG } from './ffmpeg-publish.ts';
import { mulberry32 } from './prng.ts';
import { answerThroughRelay, candidateTarget, startLossRelay, type LossRelay } from './udp-loss-relay.ts';

/** The H.264 High-profile offer OBS 30+ sends (profile-level-id 64001f/640028, packetization-mode 1). */
export const OBS_H264_FMTP = 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028';

export interface WeriftPublisher {
  pc: RTCPeerConnection;
  /** The session resource (absolute URL) from the 201's Location. */
  location: string;
  /** Keyframe requests (PLI) received from the server so far. */
  plis: number;
  /** Packets dropped by `packetLossPercent`. */
  dropped: number;
  /** Generic NACKs (RTCP feedback naming lost packets) the video sender received. */
  nacks: number;
  /** The lossy path, with `pathLossPercent`. */
  relay: LossRelay | undefined;
  ffmpeg: ChildProcess;
  /** Sends DELETE, closes the peer and stops FFmpeg. */
  stop(sendDelete?: boolean): Promise<void>;
}

export interface WeriftPublisherOptions {
  /** The WHIP endpoint (`webRTC.url`). */
  url: string;
  streamKey: string;
  width?: number;
  height?: number;
  fps?: number;
  /** Keyframe interval in frames; large values rely on the server's PLI. */
  gop?: number;
  /**
   * Media packets lost on the way, at random (seeded): taken out after FFmpeg numbered them, so
   * the server sees the gaps. (werift's own debug.outboundPacketLoss drops 100 − n %, not n %.)
   */
  packetLossPercent?: number;
  /**
   * RTP lost in the network instead (a relay between the peers drops it at random): the server's
   * NACKs reach the publisher, whose werift sender retransmits from its history (128 packets).
   */
  pathLossPercent?: number;
  /** H.264 High profile like OBS (default), or VP9 (libvpx-vp9 realtime). */
  video?: 'h264' | 'vp9';
  /**
   * The whole FFmpeg command instead of the test pattern: it must send video RTP (payload type
   * 102) and Opus RTP (111) to the given local ports. Its stdout is piped (for progress reports).
   */
  ffmpegArgs?: (ports: { video: number; audio: number }) => string[];
  /** ICE over IPv6 only, from the loopback [::1] too; and only this server candidate address kept from the answer. */
  ipv6?: { onlyCandidate?: string };
}

/**
 * A non-browser WHIP publisher like OBS: a werift peer offering H.264 High profile and Opus, fed
 * by FFmpeg RTP (libx264 High, no B-frames as OBS's WHIP output does; libopus).
 */
export async function publishWithWerift(opts: WeriftPublisherOptions): Promise<WeriftPublisher> {
  const { width = 1280, height = 720, fps = 30, gop = 60, video: codec = 'h264' } = opts;
  const pc = new RTCPeerConnection({
    codecs: {
      video: [
        codec === 'h264'
          ? new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 102, rtcpFeedback: [useNACK(), usePLI()], parameters: OBS_H264_FMTP })
          : new RTCRtpCodecParameters({ mimeType: 'video/VP9', clockRate: 90000, payloadType: 102, rtcpFeedback: [useNACK(), usePLI()] }),
      ],
      audio: [useOPUS({ payloadType: 111 })],
    },
    ...(opts.ipv6 ? { iceUseIpv4: false, iceUseIpv6: true, iceAdditionalHostAddresses: ['::1'] } : { iceUseIpv6: false }),
  });
  const video = new MediaStreamTrack({ kind: 'video' });
  const audio = new MediaStreamTrack({ kind: 'audio' });
  const videoTx = pc.addTransceiver(video, { direction: 'sendonly' });
  pc.addTransceiver(audio, { direction: 'sendonly' });
  const publisher: WeriftPublisher = { pc, location: '', plis: 0, dropped: 0, nacks: 0, relay: undefined, ffmpeg: undefined as unknown as ChildProcess, stop: async () => {} };
  videoTx.sender.onPictureLossIndication.subscribe(() => {
    publisher.plis++;
  });
  videoTx.sender.onGenericNack.subscribe(() => {
    publisher.nacks++;
  });

  const videoSock = dgram.createSocket('udp4');
  const audioSock = dgram.createSocket('udp4');
  await Promise.all([videoSock, audioSock].map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', r))));
  const random = mulberry32(7);
  const lossy = (track: MediaStreamTrack) => (m: Buffer) => {
    if (opts.packetLossPercent && random() * 100 < opts.packetLossPercent) {
      publisher.dropped++;
      return;
    }
    track.writeRtp(m);
  };
  videoSock.on('message', lossy(video));
  audioSock.on('message', lossy(audio));

  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  const res = await fetch(opts.url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${opts.streamKey}` },
    body: pc.localDescription!.sdp,
  });
  const answer = await res.text();
  if (res.status !== 201) {
    await pc.close();
    videoSock.close();
    audioSock.close();
    throw new Error(`WHIP POST answered ${res.status}: ${answer}`);
  }
  publisher.location = new URL(res.headers.get('location') ?? '', opts.url).toString();
  let remote = answer;
  if (opts.pathLossPercent !== undefined) {
    const target = candidateTarget(answer);
    if (!target) throw new Error(`no IPv4 host candidate in the answer:\n${answer}`);
    publisher.relay = await startLossRelay({ target, lossPercent: opts.pathLossPercent });
    remote = answerThroughRelay(answer, target, publisher.relay);
  }
  const only = opts.ipv6?.onlyCandidate;
  if (only) remote = remote.split('\r\n').filter((l) => !l.startsWith('a=candidate:') || l.split(' ')[4] === only).join('\r\n');
  await pc.setRemoteDescription({ type: 'answer', sdp: remote });

  const vPort = (videoSock.address() as { port: number }).port;
  const aPort = (audioSock.address() as { port: number }).port;
  const ffmpeg = spawn(FFMPEG, opts.ffmpegArgs ? opts.ffmpegArgs({ video: vPort, audio: aPort }) : [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-map', '0:v',
    ...(codec === 'h264'
      ? ['-c:v', 'libx264', '-profile:v', 'high', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-pix_fmt', 'yuv420p']
      : ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-pix_fmt', 'yuv420p']),
    '-g', String(gop), '-b:v', '2M', '-payload_type', '102', ...(codec === 'vp9' ? ['-strict', 'experimental'] : []), '-f', 'rtp', `rtp://127.0.0.1:${vPort}?pkt_size=1200`,
    '-map', '1:a', '-c:a', 'libopus', '-ac', '2', '-b:a', '64k', '-payload_type', '111', '-f', 'rtp', `rtp://127.0.0.1:${aPort}?pkt_size=1200`,
  ], { stdio: ['ignore', opts.ffmpegArgs ? 'pipe' : 'ignore', 'pipe'] });
  publisher.ffmpeg = ffmpeg;
  let stopped: Promise<void> | undefined;
  publisher.stop = (sendDelete = true) => (stopped ??= stop(sendDelete));
  const stop = async (sendDelete: boolean) => {
    if (sendDelete) await fetch(publisher.location, { method: 'DELETE' }).catch(() => undefined);
    if (ffmpeg.exitCode === null && ffmpeg.signalCode === null) {
      const exited = new Promise((r) => ffmpeg.once('exit', r));
      ffmpeg.kill('SIGKILL');
      await exited;
    }
    await pc.close();
    videoSock.close();
    audioSock.close();
    publisher.relay?.close();
  };
  return publisher;
}
