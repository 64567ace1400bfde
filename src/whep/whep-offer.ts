/**
 * Reads a WHEP viewer's SDP offer (pure): checks its shape and picks the codecs we send — H.264
 * (packetization-mode 1) for video, Opus for audio. A refused offer costs a string scan and
 * allocates no WebRTC resource.
 */

export interface OfferedCodec {
  payloadType: number;
  name: string;
  clockRate: number;
  /** The a=fmtp parameters, as offered ('' when none). */
  fmtp: string;
}

export interface WhepChoice {
  video: OfferedCodec;
  /** Undefined when the offer has no audio section or no Opus in it. */
  audio: OfferedCodec | undefined;
}

export type WhepOfferResult = { ok: true; choice: WhepChoice } | { ok: false; status: 400 | 406; reason: string };

const MAX_MEDIA_SECTIONS = 2;

interface Section {
  kind: string;
  port: number;
  payloadTypes: number[];
  codecs: Map<number, OfferedCodec>;
  direction: string;
}

function fail(status: 400 | 406, reason: string): WhepOfferResult {
  return { ok: false, status, reason };
}

/**
 * Chooses the H.264 variant closest to the source's profile (`profileIdc`: 66 baseline, 77 main,
 * 100 high; a browser decodes any of them in software, the answer only has to name one it
 * offered) and Opus if offered.
 */
export function analyzeWhepOffer(sdp: string, profileIdc?: number): WhepOfferResult {
  const lines = sdp.split(/\r?\n/).map((l) => l.trimEnd());
  if (lines[0] !== 'v=0') return fail(400, 'the body is not an SDP offer (it must start with v=0)');
  const sections: Section[] = [];
  let current: Section | undefined;
  for (const line of lines) {
    if (line.startsWith('m=')) {
      const [kind = '', port = '', , ...pts] = line.slice(2).split(' ');
      const payloadTypes = pts.map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
      current = { kind, port: Number(port), payloadTypes, codecs: new Map(), direction: 'sendrecv' };
      sections.push(current);
      if (sections.length > MAX_MEDIA_SECTIONS) return fail(400, `at most ${MAX_MEDIA_SECTIONS} media sections (one audio, one video)`);
      continue;
    }
    if (!current) continue;
    if (line === 'a=sendonly' || line === 'a=recvonly' || line === 'a=inactive' || line === 'a=sendrecv') {
      current.direction = line.slice(2);
    } else if (line.startsWith('a=rtpmap:')) {
      const m = /^a=rtpmap:(\d{1,3}) ([A-Za-z0-9_.-]{1,32})\/(\d{1,6})(?:\/\d{1,2})?$/.exec(line);
      if (!m) continue;
      const payloadType = Number(m[1]);
      current.codecs.set(payloadType, { payloadType, name: m[2] ?? '', clockRate: Number(m[3]), fmtp: current.codecs.get(payloadType)?.fmtp ?? '' });
    } else if (line.startsWith('a=fmtp:')) {
      const m = /^a=fmtp:(\d{1,3}) (.{1,512})$/.exec(line);
      const codec = m ? current.codecs.get(Number(m[1])) : undefined;
      if (codec && m) codec.fmtp = m[2] ?? '';
    }
  }
  const media = sections.filter((s) => s.port !== 0);
  if (media.length === 0) return fail(400, 'the offer has no media section');
  const other = media.find((s) => s.kind !== 'audio' && s.kind !== 'video');
  if (other) return fail(400, `media of kind "${other.kind.slice(0, 20)}" is not offered; only audio and video`);
  if (media.filter((s) => s.kind === 'video').length > 1 || media.filter((s) => s.kind === 'audio').length > 1) {
    return fail(400, 'at most one audio and one video section');
  }
  const videoSection = media.find((s) => s.kind === 'video');
  if (!videoSection) return fail(400, 'the offer has no video section; WHEP playback sends video (add a recvonly video transceiver)');
  if (videoSection.direction !== 'recvonly' && videoSection.direction !== 'sendrecv') {
    return fail(400, 'the video section must be recvonly (the viewer receives)');
  }
  const video = chooseH264(videoSection, profileIdc);
  if (!video) {
    const offered = [...new Set([...videoSection.codecs.values()].map((c) => c.name).filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n)))];
    return fail(406, `no supported video codec offered (${offered.slice(0, 8).join(', ') || 'none'}); WHEP playback sends H264 (packetization-mode=1)`);
  }
  const audioSection = media.find((s) => s.kind === 'audio');
  const audioUsable = audioSection && (audioSection.direction === 'recvonly' || audioSection.direction === 'sendrecv');
  const audio = audioUsable
    ? ordered(audioSection).find((c) => c.name.toLowerCase() === 'opus' && c.clockRate === 48000)
    : undefined;
  return { ok: true, choice: { video, audio } };
}

function ordered(section: Section): OfferedCodec[] {
  const out: OfferedCodec[] = [];
  for (const pt of section.payloadTypes) {
    const codec = section.codecs.get(pt);
    if (codec) out.push(codec);
  }
  return out;
}

function chooseH264(section: Section, profileIdc: number | undefined): OfferedCodec | undefined {
  const h264 = ordered(section).filter(
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

/** One parameter of an a=fmtp value (`key=value;key=value`), or undefined. */
export function fmtpValue(fmtp: string, key: string): string | undefined {
  for (const part of fmtp.split(';')) {
    const [k, v] = part.split('=');
    if (k?.trim().toLowerCase() === key) return v?.trim();
  }
  return undefined;
}
