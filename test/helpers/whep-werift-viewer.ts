import { RTCPeerConnection, RTCRtpCodecParameters, useNACK, useOPUS, usePLI, type RtpPacket } from 'werift';

export interface WeriftViewer {
  pc: RTCPeerConnection;
  /** The viewer resource (absolute URL) from the 201's Location. */
  location: string;
  status: number;
  videoPackets: number;
  audioPackets: number;
  /** An IDR NAL unit (type 5) arrived: the viewer can decode from here. */
  sawIdr: boolean;
  /** Video packets whose RTP timestamp is before the previous one (B-frames sent as they are). */
  backwardTimestamps: number;
  /** Resolves once video RTP with an IDR and audio RTP have arrived. */
  decodable: Promise<void>;
  /** Resolves at the next video packet from now. */
  nextVideo(): Promise<void>;
  /** DELETE (optional) and close the peer. */
  stop(sendDelete?: boolean): Promise<void>;
}

/** An offer like a browser's recvonly viewer: H.264 (packetization-mode 1) and Opus. */
export function viewerCodecs() {
  return {
    video: [
      new RTCRtpCodecParameters({
        mimeType: 'video/H264',
        clockRate: 90000,
        payloadType: 102,
        rtcpFeedback: [useNACK(), usePLI()],
        parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
      }),
    ],
    audio: [useOPUS({ payloadType: 111 })],
  };
}

/** NAL types in an H.264 RTP payload (single NAL, STAP-A members, FU-A start). */
export function payloadNalTypes(payload: Buffer): number[] {
  const t = (payload[0] ?? 0) & 0x1f;
  if (t === 28) return ((payload[1] ?? 0) & 0x80) !== 0 ? [(payload[1] ?? 0) & 0x1f] : [];
  if (t === 24) {
    const out: number[] = [];
    for (let p = 1; p + 2 < payload.length; ) {
      const len = payload.readUInt16BE(p);
      out.push((payload[p + 2] ?? 0) & 0x1f);
      p += 2 + len;
    }
    return out;
  }
  return [t];
}

/** A WHEP viewer that is a werift peer in this process: POSTs its offer and counts what arrives. */
export async function playWithWerift(url: string, opts: { headers?: Record<string, string>; audio?: boolean } = {}): Promise<WeriftViewer> {
  const pc = new RTCPeerConnection({ codecs: viewerCodecs(), iceUseIpv6: false });
  pc.addTransceiver('video', { direction: 'recvonly' });
  if (opts.audio !== false) pc.addTransceiver('audio', { direction: 'recvonly' });
  let resolveDecodable: () => void = () => {};
  const decodable = new Promise<void>((r) => {
    resolveDecodable = r;
  });
  const videoWaiters: Array<() => void> = [];
  let lastTs: number | undefined;
  const viewer: WeriftViewer = {
    pc,
    location: '',
    status: 0,
    videoPackets: 0,
    audioPackets: 0,
    sawIdr: false,
    backwardTimestamps: 0,
    decodable,
    nextVideo: () => new Promise<void>((r) => videoWaiters.push(r)),
    stop: async () => {},
  };
  const check = () => {
    if (viewer.sawIdr && (opts.audio === false || viewer.audioPackets > 0)) resolveDecodable();
  };
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (track.kind === 'video') {
        viewer.videoPackets++;
        const ts = rtp.header.timestamp;
        // Serial-number comparison (RFC 1982): wrap-safe.
        if (lastTs !== undefined && ts !== lastTs && ((ts - lastTs) >>> 0) > 0x80000000) viewer.backwardTimestamps++;
        lastTs = ts;
        if (!viewer.sawIdr && payloadNalTypes(rtp.payload).includes(5)) viewer.sawIdr = true;
        for (const w of videoWaiters.splice(0)) w();
      } else {
        viewer.audioPackets++;
      }
      check();
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', ...opts.headers }, body: pc.localDescription!.sdp, redirect: 'follow' });
  viewer.status = res.status;
  const answer = await res.text();
  if (res.status !== 201) {
    await pc.close();
    throw Object.assign(new Error(`WHEP POST answered ${res.status}: ${answer}`), { status: res.status, body: answer });
  }
  viewer.location = new URL(res.headers.get('location') ?? '', res.url || url).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  viewer.stop = async (sendDelete = true) => {
    if (sendDelete) await fetch(viewer.location, { method: 'DELETE' }).catch(() => undefined);
    await pc.close();
  };
  return viewer;
}

/**
 * Plays until decodable, as a player does: a peer that has not decoded within `attemptMs`
 * (ICE or DTLS stuck on a loaded machine) is dropped (DELETE) and a new offer is POSTed.
 * Returns the viewer and the attempts it took.
 */
export async function playUntilDecodable(url: string, attemptMs = 15_000, attempts = 3): Promise<{ viewer: WeriftViewer; attempts: number }> {
  for (let i = 1; ; i++) {
    const viewer = await playWithWerift(url);
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      viewer.decodable.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), attemptMs);
      }),
    ]);
    clearTimeout(timer);
    if (ok) return { viewer, attempts: i };
    await viewer.stop();
    if (i >= attempts) throw new Error(`no decodable WHEP playback after ${attempts} attempts (last state ${viewer.pc.connectionState})`);
  }
}
