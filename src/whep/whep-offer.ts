/**
 * Reads a WHEP viewer's SDP offer (pure): checks its shape and picks the codecs we send — H.264
 * (packetization-mode 1) for video, Opus for audio. A refused offer costs a string scan and
 * allocates no WebRTC resource.
 */
import { fmtpValue, offeredNames, offeredOpus, scanOffer, type MediaSection, type OfferedCodec } from '../webrtc/sdp-offer.ts';

export interface WhepChoice {
  video: OfferedCodec;
  /** Undefined when the offer has no audio section or no Opus in it. */
  audio: OfferedCodec | undefined;
}

export type WhepOfferResult = { ok: true; choice: WhepChoice } | { ok: false; status: 400 | 406; reason: string };

function fail(status: 400 | 406, reason: string): WhepOfferResult {
  return { ok: false, status, reason };
}

/**
 * Chooses the H.264 variant closest to the source's profile (`profileIdc`: 66 baseline, 77 main,
 * 100 high; a browser decodes any of them in software, the answer only has to name one it
 * offered) and Opus if offered.
 */
export function analyzeWhepOffer(sdp: string, profileIdc?: number): WhepOfferResult {
  const scan = scanOffer(sdp);
  if (!scan.ok) return fail(400, scan.reason);
  const { video: videoSection, audio: audioSection } = scan.offer;
  if (!videoSection) return fail(400, 'the offer has no video section; WHEP playback sends video (add a recvonly video transceiver)');
  if (videoSection.direction !== 'recvonly' && videoSection.direction !== 'sendrecv') {
    return fail(400, 'the video section must be recvonly (the viewer receives)');
  }
  const video = chooseH264(videoSection, profileIdc);
  if (!video) return fail(406, `no supported video codec offered (${offeredNames(videoSection)}); WHEP playback sends H264 (packetization-mode=1)`);
  const audioUsable = audioSection && (audioSection.direction === 'recvonly' || audioSection.direction === 'sendrecv');
  return { ok: true, choice: { video, audio: audioUsable ? offeredOpus(audioSection) : undefined } };
}

function chooseH264(section: MediaSection, profileIdc: number | undefined): OfferedCodec | undefined {
  const h264 = section.codecs.filter(
    (c) => c.name.toLowerCase() === 'h264' && c.clockRate === 90000 && fmtpValue(c.fmtp, 'packetization-mode') === '1',
  );
  if (h264.length === 0) return undefined;
  const idcOf = (c: OfferedCodec) => parseInt((fmtpValue(c.fmtp, 'profile-level-id') ?? '42e01f').slice(0, 2), 16);
  const wanted = profileIdc === 100 ? [100, 77, 66] : profileIdc === 77 ? [77, 100, 66] : [66, 77, 100];
  for (const idc of wanted) {
    const match = h264.find((c) => idcOf(c) === idc);
    if (match) return match;
  }
  return h264[0];
}
