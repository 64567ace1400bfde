/**
 * The SDP scan both WebRTC endpoints share (pure): WHIP reads a publisher's offer, WHEP a
 * viewer's. It checks the shape (v=0, at most one audio and one video section, nothing else) and
 * collects each section's codecs in offer order; choosing codecs is each endpoint's own business.
 * Nothing here allocates a WebRTC resource: a refused offer costs a string scan.
 */

export interface OfferedCodec {
  payloadType: number;
  /** As in the offer's a=rtpmap (e.g. `H264`, `VP8`, `opus`). */
  name: string;
  clockRate: number;
  channels: number | undefined;
  /** The a=fmtp parameters, as offered ('' when none). */
  fmtp: string;
}

export interface MediaSection {
  kind: 'audio' | 'video';
  /** `sendonly`, `recvonly`, `sendrecv` (the default) or `inactive`. */
  direction: string;
  /** The section's codecs in the order the offer prefers them. */
  codecs: OfferedCodec[];
}

export interface ScannedOffer {
  video: MediaSection | undefined;
  audio: MediaSection | undefined;
  /** The offer's ICE ufrag (the first media section's, else the session's). */
  iceUfrag: string | undefined;
}

export type ScanResult = { ok: true; offer: ScannedOffer } | { ok: false; reason: string };

const MAX_MEDIA_SECTIONS = 2;

interface RawSection {
  kind: string;
  port: number;
  payloadTypes: number[];
  codecs: Map<number, OfferedCodec>;
  direction: string;
}

/** Scans an SDP offer; a malformed or unacceptable shape is a reason (answered with 400). */
export function scanOffer(sdp: string): ScanResult {
  const fail = (reason: string): ScanResult => ({ ok: false, reason });
  const lines = sdp.split(/\r?\n/).map((l) => l.trimEnd());
  if (lines[0] !== 'v=0') return fail('the body is not an SDP offer (it must start with v=0)');
  const sections: RawSection[] = [];
  let sessionUfrag: string | undefined;
  let mediaUfrag: string | undefined;
  let current: RawSection | undefined;
  for (const line of lines) {
    if (line.startsWith('m=')) {
      const [kind = '', port = '', , ...pts] = line.slice(2).split(' ');
      const payloadTypes = pts.map(Number).filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
      current = { kind, port: Number(port), payloadTypes, codecs: new Map(), direction: 'sendrecv' };
      sections.push(current);
      if (sections.length > MAX_MEDIA_SECTIONS) return fail(`at most ${MAX_MEDIA_SECTIONS} media sections (one audio, one video)`);
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
  if (media.length === 0) return fail('the offer has no media section');
  const other = media.find((s) => s.kind !== 'audio' && s.kind !== 'video');
  if (other) return fail(`media of kind "${other.kind.slice(0, 20)}" is not accepted; only audio and video`);
  if (media.filter((s) => s.kind === 'video').length > 1 || media.filter((s) => s.kind === 'audio').length > 1) {
    return fail('at most one audio and one video section');
  }
  const section = (kind: 'audio' | 'video'): MediaSection | undefined => {
    const s = media.find((m) => m.kind === kind);
    if (!s) return undefined;
    const codecs = s.payloadTypes.flatMap((pt) => {
      const codec = s.codecs.get(pt);
      return codec ? [codec] : [];
    });
    return { kind, direction: s.direction, codecs };
  };
  return { ok: true, offer: { video: section('video'), audio: section('audio'), iceUfrag: mediaUfrag ?? sessionUfrag } };
}

/** The Opus codec of an audio section (48 kHz), if offered. */
export function offeredOpus(section: MediaSection | undefined): OfferedCodec | undefined {
  return section?.codecs.find((c) => c.name.toLowerCase() === 'opus' && c.clockRate === 48000);
}

/** The codec names a section offers, without the resilience formats, for a refusal's message. */
export function offeredNames(section: MediaSection): string {
  const names = section.codecs.map((c) => c.name).filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n));
  return [...new Set(names)].slice(0, 8).join(', ') || 'none';
}

/** One parameter of an a=fmtp value (`key=value;key=value`), or undefined. */
export function fmtpValue(fmtp: string, key: string): string | undefined {
  for (const part of fmtp.split(';')) {
    const [k, v] = part.split('=');
    if (k?.trim().toLowerCase() === key) return v?.trim();
  }
  return undefined;
}
