/**
 * H.264 over RTP (RFC 6184), sender side, pure: splits an access unit given as NAL units into
 * RTP payloads — single NAL unit packets, FU-A fragments for NAL units larger than the MTU, and
 * one STAP-A carrying SPS + PPS ahead of every IDR (a viewer may start at any IDR). The caller
 * sets the marker bit on the last payload of the access unit and the 90 kHz timestamp.
 */

export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
export const NAL_FILLER = 12;
const STAP_A = 24;
const FU_A = 28;

export function nalType(nal: Buffer): number {
  return (nal[0] ?? 0) & 0x1f;
}

/**
 * Splits an AVCC sample (NAL units each prefixed with a `lengthSize`-byte length, as in FLV and
 * MP4) into NAL units. Throws on a length that runs past the end (a corrupt sample).
 */
export function splitAvcc(sample: Buffer, lengthSize: number): Buffer[] {
  const nals: Buffer[] = [];
  let p = 0;
  while (p + lengthSize <= sample.length) {
    const len = lengthSize === 4 ? sample.readUInt32BE(p) : lengthSize === 2 ? sample.readUInt16BE(p) : (sample[p] ?? 0);
    p += lengthSize;
    if (len === 0) continue;
    if (p + len > sample.length) throw new RangeError('NAL unit length runs past the end of the sample');
    nals.push(sample.subarray(p, p + len));
    p += len;
  }
  if (p !== sample.length) throw new RangeError('trailing bytes after the last NAL unit');
  return nals;
}

export interface PacketizeOptions {
  /** Largest RTP payload, bytes (the RTP header, SRTP tag and UDP/IP come on top). */
  maxPayload: number;
  /** SPS and PPS of the stream, sent before an IDR whose access unit does not carry its own. */
  parameterSets?: readonly Buffer[];
}

/** True when the access unit holds an IDR slice (a decoder can start there). */
export function isIdrAccessUnit(nals: readonly Buffer[]): boolean {
  return nals.some((n) => nalType(n) === NAL_IDR);
}

/**
 * The RTP payloads of one access unit, in order. Access unit delimiters and filler data are
 * dropped (they carry nothing a WebRTC receiver uses). Empty when nothing is left to send.
 */
export function packetizeAccessUnit(nals: readonly Buffer[], opts: PacketizeOptions): Buffer[] {
  const max = opts.maxPayload;
  if (max < 64) throw new RangeError('maxPayload too small');
  let units = nals.filter((n) => n.length > 0 && nalType(n) !== NAL_AUD && nalType(n) !== NAL_FILLER);
  if (isIdrAccessUnit(units)) {
    const own = units.filter((n) => nalType(n) === NAL_SPS || nalType(n) === NAL_PPS);
    const sets = own.length > 0 ? own : (opts.parameterSets ?? []);
    // Parameter sets first, in one STAP-A when they fit (as browsers send them).
    units = [...sets, ...units.filter((n) => nalType(n) !== NAL_SPS && nalType(n) !== NAL_PPS)];
  }
  const out: Buffer[] = [];
  let i = 0;
  while (i < units.length) {
    // Aggregate a run of small NAL units (SPS, PPS, SEI) that fit together.
    let size = 1;
    let j = i;
    while (j < units.length && size + 2 + (units[j]?.length ?? 0) <= max && (units[j]?.length ?? 0) < max / 2) {
      size += 2 + (units[j]?.length ?? 0);
      j++;
    }
    if (j - i >= 2) {
      out.push(stapA(units.slice(i, j)));
      i = j;
      continue;
    }
    const nal = units[i] as Buffer;
    if (nal.length <= max) out.push(nal);
    else out.push(...fuA(nal, max));
    i++;
  }
  return out;
}

function stapA(nals: readonly Buffer[]): Buffer {
  let nri = 0;
  let forbidden = 0;
  for (const n of nals) {
    nri = Math.max(nri, (n[0] ?? 0) & 0x60);
    forbidden |= (n[0] ?? 0) & 0x80;
  }
  const parts: Buffer[] = [Buffer.from([forbidden | nri | STAP_A])];
  for (const n of nals) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(n.length);
    parts.push(len, n);
  }
  return Buffer.concat(parts);
}

function fuA(nal: Buffer, max: number): Buffer[] {
  const header = nal[0] ?? 0;
  const indicator = (header & 0xe0) | FU_A;
  const type = header & 0x1f;
  const chunk = max - 2;
  const out: Buffer[] = [];
  for (let p = 1; p < nal.length; p += chunk) {
    const end = Math.min(nal.length, p + chunk);
    const start = p === 1 ? 0x80 : 0;
    const last = end === nal.length ? 0x40 : 0;
    const pkt = Buffer.allocUnsafe(2 + end - p);
    pkt[0] = indicator;
    pkt[1] = start | last | type;
    nal.copy(pkt, 2, p, end);
    out.push(pkt);
  }
  return out;
}

/** Milliseconds (FLV presentation time) to the 90 kHz RTP clock, modulo 2^32. */
export function rtpTimestamp90k(ms: number, base: number): number {
  return (base + Math.round(ms * 90)) >>> 0;
}
