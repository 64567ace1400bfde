/**
 * Reads a WHIP offer (pure): checks its shape and picks the codecs we take. Nothing here
 * allocates a WebRTC resource; a refused offer costs a string scan.
 */
import { fmtpValue, offeredNames, offeredOpus, scanOffer, type MediaSection, type OfferedCodec } from '../../webrtc/sdp-offer.ts';

export type VideoCodecName = 'h264' | 'vp8' | 'vp9';

export interface OfferChoice {
  video: OfferedCodec & { codec: VideoCodecName };
  /** Undefined when the offer has no audio or no Opus. */
  audio: OfferedCodec | undefined;
  /** The offer's ICE credentials, to tell an ICE restart from a trickle in PATCH. */
  iceUfrag: string | undefined;
}

export type OfferResult = { ok: true; choice: OfferChoice } | { ok: false; status: 400 | 406; reason: string };

/** Video codecs in the order we prefer them: H.264 is copied, the others are transcoded. */
const VIDEO_PREFERENCE: VideoCodecName[] = ['h264', 'vp8', 'vp9'];

function fail(status: 400 | 406, reason: string): OfferResult {
  return { ok: false, status, reason };
}

/** Parses the SDP offer and chooses one video codec (required) and Opus audio (optional). */
export function analyzeOffer(sdp: string): OfferResult {
  const scan = scanOffer(sdp);
  if (!scan.ok) return fail(400, scan.reason);
  const { video: videoSection, audio: audioSection, iceUfrag } = scan.offer;
  if (!videoSection) return fail(406, 'the offer has no video; a live input needs video');
  if (videoSection.direction !== 'sendonly' && videoSection.direction !== 'sendrecv') {
    return fail(400, 'the video section must be sendonly (the publisher sends)');
  }
  const video = chooseVideo(videoSection);
  if (!video) return fail(406, `no supported video codec offered (${offeredNames(videoSection)}); accepted: H264 (packetization-mode=1), VP8, VP9`);
  return { ok: true, choice: { video, audio: offeredOpus(audioSection), iceUfrag } };
}

function chooseVideo(section: MediaSection): (OfferedCodec & { codec: VideoCodecName }) | undefined {
  for (const wanted of VIDEO_PREFERENCE) {
    for (const codec of section.codecs) {
      if (codec.name.toLowerCase() !== wanted || codec.clockRate !== 90000) continue;
      // Single NAL unit mode (0) cannot carry frames larger than a packet: only mode 1.
      if (wanted === 'h264' && fmtpValue(codec.fmtp, 'packetization-mode') !== '1') continue;
      return { ...codec, codec: wanted };
    }
  }
  return undefined;
}

/** The ICE ufrag in a trickle-ice-sdpfrag body (PATCH), if any. */
export function fragmentUfrag(fragment: string): string | undefined {
  const m = /^a=ice-ufrag:(\S{1,256})$/m.exec(fragment);
  return m?.[1];
}
