/** Parses the track list of an fMP4 init segment (moov): timing, kind, dimensions and codec strings. */
import { BoxCursor, Fmp4Error, childBoxes, findChild, requireChild } from './mp4-boxes.ts';
import type { Box } from './mp4-boxes.ts';
import type { Mp4Track, Mp4TrackKind } from './mp4-types.ts';

interface TrexDefaults {
  duration: number;
  flags: number;
}

export function parseMoov(buf: Buffer, moov: Box): Mp4Track[] {
  const children = childBoxes(buf, moov.payloadStart, moov.end);
  const trex = new Map<number, TrexDefaults>();
  const mvex = children.find((b) => b.type === 'mvex');
  if (mvex) {
    for (const box of childBoxes(buf, mvex.payloadStart, mvex.end)) {
      if (box.type !== 'trex') continue;
      const c = new BoxCursor(buf, box);
      c.fullBox();
      const trackId = c.u32();
      c.u32(); // default_sample_description_index
      const duration = c.u32();
      c.u32(); // default_sample_size
      const flags = c.u32();
      trex.set(trackId, { duration, flags });
    }
  }
  const tracks: Mp4Track[] = [];
  for (const trak of children) {
    if (trak.type !== 'trak') continue;
    tracks.push(parseTrak(buf, trak, trex));
  }
  if (tracks.length === 0) throw new Fmp4Error('MISSING_BOX', "'moov' has no 'trak' box");
  return tracks;
}

function parseTrak(buf: Buffer, trak: Box, trex: Map<number, TrexDefaults>): Mp4Track {
  const tkhd = new BoxCursor(buf, requireChild(buf, trak, 'tkhd'));
  const { version: tkhdVersion } = tkhd.fullBox();
  tkhd.skip(tkhdVersion === 1 ? 16 : 8); // creation + modification time
  const id = tkhd.u32();
  tkhd.skip(4 + (tkhdVersion === 1 ? 8 : 4) + 8 + 2 + 2 + 2 + 2 + 36); // reserved, duration, …, matrix
  const tkhdWidth = tkhd.u32() / 65536;
  const tkhdHeight = tkhd.u32() / 65536;

  const mdia = requireChild(buf, trak, 'mdia');
  const mdhd = new BoxCursor(buf, requireChild(buf, mdia, 'mdhd'));
  const { version: mdhdVersion } = mdhd.fullBox();
  mdhd.skip(mdhdVersion === 1 ? 16 : 8);
  const timescale = mdhd.u32();
  if (timescale === 0) throw new Fmp4Error('MISSING_BOX', `track ${id} has timescale 0`);

  const hdlr = new BoxCursor(buf, requireChild(buf, mdia, 'hdlr'));
  hdlr.fullBox();
  hdlr.u32(); // pre_defined
  const handler = hdlr.fourcc();
  const kind: Mp4TrackKind = handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : 'other';

  const track: Mp4Track = { id, kind, timescale, codec: '' };
  const defaults = trex.get(id);
  if (defaults) {
    track.defaultSampleDuration = defaults.duration;
    track.defaultSampleFlags = defaults.flags;
  }

  const stsd = findStsd(buf, mdia);
  const entry = stsd ? firstSampleEntry(buf, stsd) : undefined;
  if (entry) track.codec = entry.type.trim();
  if (kind === 'video') {
    if (entry) Object.assign(track, parseVisualEntry(buf, entry));
    if (track.width === undefined && tkhdWidth > 0) {
      track.width = Math.round(tkhdWidth);
      track.height = Math.round(tkhdHeight);
    }
  } else if (kind === 'audio' && entry) {
    Object.assign(track, parseAudioEntry(buf, entry, timescale));
  }
  return track;
}

function findStsd(buf: Buffer, mdia: Box): Box | undefined {
  const minf = findChild(buf, mdia, 'minf');
  const stbl = minf && findChild(buf, minf, 'stbl');
  return stbl && findChild(buf, stbl, 'stsd');
}

function firstSampleEntry(buf: Buffer, stsd: Box): Box | undefined {
  const c = new BoxCursor(buf, stsd);
  c.fullBox();
  const count = c.u32();
  if (count === 0) return undefined;
  return childBoxes(buf, c.offset, stsd.end)[0];
}

/** VisualSampleEntry: 78 bytes of fixed fields before its child boxes (avcC, hvcC, …). */
function parseVisualEntry(buf: Buffer, entry: Box): Pick<Mp4Track, 'width' | 'height' | 'codec'> {
  const c = new BoxCursor(buf, entry);
  c.skip(6 + 2 + 16);
  const width = c.u16();
  const height = c.u16();
  c.skip(50);
  const children = childBoxes(buf, c.offset, entry.end);
  return { width, height, codec: videoCodecString(buf, entry.type, children) };
}

function videoCodecString(buf: Buffer, type: string, children: Box[]): string {
  const config = (t: string) => {
    const box = children.find((b) => b.type === t);
    return box ? new BoxCursor(buf, box) : undefined;
  };
  if (type === 'avc1' || type === 'avc3') {
    const c = config('avcC');
    if (!c) return type;
    c.u8(); // configurationVersion
    const bytes = [c.u8(), c.u8(), c.u8()]; // profile, constraint flags, level
    return `${type}.${bytes.map(hex2).join('')}`;
  }
  if (type === 'hvc1' || type === 'hev1') {
    const c = config('hvcC');
    return c ? hevcCodecString(type, c) : type;
  }
  if (type === 'av01') {
    const c = config('av1C');
    if (!c) return type;
    c.u8(); // marker + version
    const b1 = c.u8();
    const b2 = c.u8();
    const profile = b1 >> 5;
    const level = b1 & 0x1f;
    const tier = b2 & 0x80 ? 'H' : 'M';
    const bitDepth = b2 & 0x40 ? (profile === 2 && b2 & 0x20 ? 12 : 10) : 8;
    return `av01.${profile}.${String(level).padStart(2, '0')}${tier}.${String(bitDepth).padStart(2, '0')}`;
  }
  if (type === 'vp09') {
    const c = config('vpcC');
    if (!c) return type;
    c.fullBox();
    const profile = c.u8();
    const level = c.u8();
    const bitDepth = c.u8() >> 4;
    const two = (n: number) => String(n).padStart(2, '0');
    return `vp09.${two(profile)}.${two(level)}.${two(bitDepth)}`;
  }
  return type;
}

/** ISO/IEC 14496-15 annex E: hvc1.<space><profile>.<compat, bit-reversed hex>.<tier><level>.<constraints>. */
function hevcCodecString(type: string, c: BoxCursor): string {
  c.u8(); // configurationVersion
  const b = c.u8();
  const space = ['', 'A', 'B', 'C'][b >> 6] ?? '';
  const tier = b & 0x20 ? 'H' : 'L';
  const profile = b & 0x1f;
  let compat = c.u32();
  let reversed = 0;
  for (let i = 0; i < 32; i++) {
    reversed = (reversed << 1) | (compat & 1);
    compat >>>= 1;
  }
  const constraints: number[] = [];
  for (let i = 0; i < 6; i++) constraints.push(c.u8());
  const level = c.u8();
  while (constraints.length > 0 && constraints[constraints.length - 1] === 0) constraints.pop();
  const tail = constraints.map((x) => `.${x.toString(16).toUpperCase()}`).join('');
  return `${type}.${space}${profile}.${(reversed >>> 0).toString(16).toUpperCase()}.${tier}${level}${tail}`;
}

/** AudioSampleEntry (ISO) or its QuickTime v1/v2 variants, then esds for the MPEG-4 audio object type. */
function parseAudioEntry(
  buf: Buffer,
  entry: Box,
  timescale: number,
): Pick<Mp4Track, 'codec' | 'sampleRate' | 'channels'> {
  const c = new BoxCursor(buf, entry);
  c.skip(6 + 2);
  const version = c.u16();
  c.skip(6);
  const channels = c.u16();
  c.skip(6);
  const rate = c.u32() >>> 16;
  if (version === 1) c.skip(16);
  else if (version === 2) c.skip(36);
  // Rates above 65535 Hz do not fit 16.16; the media timescale is then the sample rate.
  const sampleRate = rate > 0 ? rate : timescale;
  const type = entry.type;
  const codec = type === 'Opus' ? 'opus' : type === 'fLaC' ? 'flac' : type.trim();
  if (type === 'mp4a') {
    const esds = childBoxes(buf, c.offset, entry.end).find((b) => b.type === 'esds');
    if (esds) {
      const info = parseEsds(new BoxCursor(buf, esds));
      // ISO muxers (FFmpeg included) write channelcount 2 for any AAC; the AudioSpecificConfig knows better.
      return { codec: info.codec, sampleRate, channels: info.channels ?? channels };
    }
  }
  return { codec, sampleRate, channels };
}

/** ISO/IEC 14496-1 descriptors: ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo. */
function parseEsds(c: BoxCursor): { codec: string; channels?: number } {
  c.fullBox();
  const readDescriptor = () => {
    const tag = c.u8();
    let size = 0;
    for (let i = 0; i < 4; i++) {
      const b = c.u8();
      size = (size << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return { tag, end: Math.min(c.offset + size, c.end) };
  };
  const es = readDescriptor();
  if (es.tag !== 0x03) return { codec: 'mp4a' };
  c.u16(); // ES_ID
  const flags = c.u8();
  if (flags & 0x80) c.u16(); // dependsOn_ES_ID
  if (flags & 0x40) c.skip(c.u8()); // URL
  if (flags & 0x20) c.u16(); // OCR_ES_Id
  const dc = readDescriptor();
  if (dc.tag !== 0x04) return { codec: 'mp4a' };
  const oti = c.u8();
  if (oti !== 0x40) return { codec: `mp4a.${hex2(oti).toUpperCase()}` };
  c.skip(12); // streamType, bufferSizeDB, maxBitrate, avgBitrate
  if (c.offset >= dc.end) return { codec: 'mp4a.40.2' };
  const dsi = readDescriptor();
  if (dsi.tag !== 0x05) return { codec: 'mp4a.40.2' };
  // AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), read as a bit string.
  const bytes: number[] = [];
  for (let i = 0; i < Math.min(6, dsi.end - c.offset); i++) bytes.push(c.u8());
  let bit = 0;
  const bits = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) v = (v << 1) | (((bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1);
    return v;
  };
  let aot = bits(5);
  if (aot === 31) aot = 32 + bits(6);
  if (bits(4) === 0x0f) bits(24); // explicit sampling frequency
  const channelConfig = bits(4);
  const channels = channelConfig === 7 ? 8 : channelConfig >= 1 && channelConfig <= 6 ? channelConfig : undefined;
  return channels === undefined ? { codec: `mp4a.40.${aot}` } : { codec: `mp4a.40.${aot}`, channels };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
