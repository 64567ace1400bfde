/**
 * Reads a WHIP offer (pure): checks its shape and picks the codecs we take. Nothing here
 * allocates a WebRTC resource; a refused offer costs a string scan.
 */

export type VideoCodecName = 'h264' | 'vp8' | 'vp9';

export interface OfferedCodec {
  payloadType: number;
  /** As in the offer's a=rtpmap (e.g. `H264`, `VP8`, `opus`). */
  name: string;
  clockRate: number;
  channels: number | undefined;
  /** The a=fmtp parameters, as offered ('' when none). */
  fmtp: string;
}

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
const MAX_MEDIA_SECTIONS = 2;

interface MediaSection {
  kind: string;
  port: number;
  payloadTypes: number[];
  codecs: Map<number, OfferedCodec>;
  direction: string;
}

function fail(status: 400 | 406, reason: string): OfferResult {
  return { ok: false, status, reason };
}

/** Parses the SDP offer and chooses one video codec (required) and Opus audio (optional). */
export function analyzeOffer(sdp: string): OfferResult {
  const lines = sdp.split(/\r?\n/).map((l) => l.trimEnd());
  if (lines[0] !== 'v=0') return fail(400, 'the body is not an SDP offer (it must start with v=0)');
  const sections: MediaSection[] = [];
  let sessionUfrag: string | undefined;
  let mediaUfrag: string | undefined;
  let current: MediaSection | undefined;
  for (const line of lines) {
    if (line.startsWith('m=')) {
      const [kind = '', port = '', , ...pts] = line.slice(2).split(' ');
      const payloadTypes = pts.map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
      current = { kind, port: Number(port), payloadTypes, codecs: new Map(), direction: 'sendrecv' };
      sections.push(current);
      if (sections.length > MAX_MEDIA_SECTIONS) return fail(400, `at most ${MAX_MEDIA_SECTIONS} media sections (one audio, one video)`);
      continue;
    }
    if (line.startsWith('a=ice-ufrag:')) {
      if (current) mediaUfrag ??= line.slice(12);
      else sessionUfrag = line.slice(12);
      continue;
    }
    if (!current) continue;
    if (line === 'a=sendonly' || line === 'a=recvonly' || line === 'a=inactive' || line === 'a=sendrecv') {
      current.direction = line.slice(2);
    } else if (line.startsWith('a=rtpmap:')) {
      const m = /^a=rtpmap:(\d{1,3}) ([A-Za-z0-9_.-]{1,32})\/(\d{1,6})(?:\/(\d{1,2}))?$/.exec(line);
      if (!m) continue;
      const payloadType = Number(m[1]);
      current.codecs.set(payloadType, {
        payloadType,
        name: m[2] ?? '',
        clockRate: Number(m[3]),
        channels: m[4] === undefined ? undefined : Number(m[4]),
        fmtp: current.codecs.get(payloadType)?.fmtp ?? '',
      });
    } else if (line.startsWith('a=fmtp:')) {
      const m = /^a=fmtp:(\d{1,3}) (.{1,512})$/.exec(line);
      const codec = m ? current.codecs.get(Number(m[1])) : undefined;
      if (codec && m) codec.fmtp = m[2] ?? '';
    }
  }
  const media = sections.filter((s) => s.port !== 0);
  if (media.length === 0) return fail(400, 'the offer has no media section');
  const other = media.find((s) => s.kind !== 'audio' && s.kind !== 'video');
  if (other) return fail(400, `media of kind "${other.kind.slice(0, 20)}" is not accepted; only audio and video`);
  if (media.filter((s) => s.kind === 'video').length > 1 || media.filter((s) => s.kind === 'audio').length > 1) {
    return fail(400, 'at most one audio and one video section');
  }
  const videoSection = media.find((s) => s.kind === 'video');
  if (!videoSection) return fail(406, 'the offer has no video; a live input needs video');
  if (videoSection.direction !== 'sendonly' && videoSection.direction !== 'sendrecv') {
    return fail(400, 'the video section must be sendonly (the publisher sends)');
  }
  const video = chooseVideo(videoSection);
  if (!video) {
    const offered = [...videoSection.codecs.values()].map((c) => c.name).filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n));
    return fail(406, `no supported video codec offered (${[...new Set(offered)].slice(0, 8).join(', ') || 'none'}); accepted: H264 (packetization-mode=1), VP8, VP9`);
  }
  const audioSection = media.find((s) => s.kind === 'audio');
  const audio = audioSection
    ? [...orderedCodecs(audioSection)].find((c) => c.name.toLowerCase() === 'opus' && c.clockRate === 48000)
    : undefined;
  return { ok: true, choice: { video, audio, iceUfrag: mediaUfrag ?? sessionUfrag } };
}

function* orderedCodecs(section: MediaSection): Generator<OfferedCodec> {
  for (const pt of section.payloadTypes) {
    const codec = section.codecs.get(pt);
    if (codec) yield codec;
  }
}

function chooseVideo(section: MediaSection): (OfferedCodec & { codec: VideoCodecName }) | undefined {
  for (const wanted of VIDEO_PREFERENCE) {
    for (const codec of orderedCodecs(section)) {
      if (codec.name.toLowerCase() !== wanted || codec.clockRate !== 90000) continue;
      // Single NAL unit mode (0) cannot carry frames larger than a packet: only mode 1.
      if (wanted === 'h264' && fmtpValue(codec.fmtp, 'packetization-mode') !== '1') continue;
      return { ...codec, codec: wanted };
    }
  }
  return undefined;
}

/** One parameter of an a=fmtp value (`key=value;key=value`), or undefined. */
export function fmtpValue(fmtp: string, key: string): string | undefined {
  for (const part of fmtp.split(';')) {
    const [k, v] = part.split('=');
    if (k?.trim().toLowerCase() === key) return v?.trim();
  }
  return undefined;
}

/** The ICE ufrag in a trickle-ice-sdpfrag body (PATCH), if any. */
export function fragmentUfrag(fragment: string): string | undefined {
  const m = /^a=ice-ufrag:(\S{1,256})$/m.exec(fragment);
  return m?.[1];
}
