/**
 * H.264 decoder configuration: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3) as
 * carried in an FLV/RTMP sequence header, and the fields of its first SPS that a player or a
 * ladder decision needs (ITU-T H.264 §7.3.2.1.1).
 */

export interface AvcConfig {
  profile: number;
  /** The constraint_set flags byte. */
  compatibility: number;
  level: number;
  /** Bytes in each NAL unit length prefix (1, 2 or 4). */
  nalLengthSize: number;
  width: number;
  height: number;
  chromaFormat: number;
  bitDepth: number;
  /** False for interlaced (field/MBAFF) coding. */
  progressive: boolean;
  /** RFC 6381 codec string, e.g. 'avc1.64001f'. */
  codecString: string;
  sps: Buffer[];
  pps: Buffer[];
}

export interface AvcSps {
  profile: number;
  compatibility: number;
  level: number;
  width: number;
  height: number;
  chromaFormat: number;
  bitDepth: number;
  progressive: boolean;
}

/** Profiles whose SPS carries chroma format, bit depth and scaling matrices. */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Reads bits MSB-first with Exp-Golomb codes; throws RangeError past the end. */
export class BitReader {
  readonly #data: Buffer;
  #bit = 0;

  constructor(data: Buffer) {
    this.#data = data;
  }

  u1(): number {
    const byte = this.#data[this.#bit >> 3];
    if (byte === undefined) throw new RangeError('bitstream overrun');
    const v = (byte >> (7 - (this.#bit & 7))) & 1;
    this.#bit++;
    return v;
  }

  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.u1();
    return v;
  }

  ue(): number {
    let zeros = 0;
    while (this.u1() === 0) {
      // 32 leading zeros would exceed any value H.264 allows in these fields.
      if (++zeros > 31) throw new RangeError('invalid Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** Removes emulation prevention bytes (00 00 03 → 00 00). */
export function unescapeRbsp(nal: Buffer): Buffer {
  const out = Buffer.allocUnsafe(nal.length);
  let n = 0;
  let zeros = 0;
  for (const byte of nal) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    out[n++] = byte;
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, n);
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) {
      const delta = r.se();
      next = (last + delta + 256) % 256;
    }
    last = next === 0 ? last : next;
  }
}

/** Parses an SPS NAL unit (with its one-byte NAL header). Throws on a malformed one. */
export function parseAvcSps(nal: Buffer): AvcSps {
  if (nal.length < 4 || ((nal[0] ?? 0) & 0x1f) !== 7) throw new Error('not an SPS NAL unit');
  const r = new BitReader(unescapeRbsp(nal.subarray(1)));
  const profile = r.u(8);
  const compatibility = r.u(8);
  const level = r.u(8);
  r.ue(); // seq_parameter_set_id
  let chromaFormat = 1;
  let separateColourPlane = 0;
  let bitDepth = 8;
  if (HIGH_PROFILES.has(profile)) {
    chromaFormat = r.ue();
    if (chromaFormat > 3) throw new Error('bad chroma_format_idc');
    if (chromaFormat === 3) separateColourPlane = r.u1();
    bitDepth = r.ue() + 8;
    r.ue(); // bit_depth_chroma_minus8
    r.u1(); // qpprime_y_zero_transform_bypass_flag
    if (r.u1()) {
      const lists = chromaFormat !== 3 ? 8 : 12;
      for (let i = 0; i < lists; i++) {
        if (r.u1()) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue(); // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType === 1) {
    r.u1(); // delta_pic_order_always_zero_flag
    r.se(); // offset_for_non_ref_pic
    r.se(); // offset_for_top_to_bottom_field
    const cycle = r.ue();
    if (cycle > 255) throw new Error('bad num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < cycle; i++) r.se();
  } else if (pocType !== 2) {
    throw new Error('bad pic_order_cnt_type');
  }
  r.ue(); // max_num_ref_frames
  r.u1(); // gaps_in_frame_num_value_allowed_flag
  const widthInMbs = r.ue() + 1;
  const heightInMapUnits = r.ue() + 1;
  const frameMbsOnly = r.u1();
  if (!frameMbsOnly) r.u1(); // mb_adaptive_frame_field_flag
  r.u1(); // direct_8x8_inference_flag
  let cropLeft = 0;
  let cropRight = 0;
  let cropTop = 0;
  let cropBottom = 0;
  if (r.u1()) {
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  // Crop units depend on chroma subsampling (§7.4.2.1.1, ChromaArrayType).
  const chromaArrayType = separateColourPlane ? 0 : chromaFormat;
  const subWidthC = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const subHeightC = chromaArrayType === 1 ? 2 : 1;
  const cropUnitX = chromaArrayType === 0 ? 1 : subWidthC;
  const cropUnitY = (chromaArrayType === 0 ? 1 : subHeightC) * (2 - frameMbsOnly);
  const width = widthInMbs * 16 - cropUnitX * (cropLeft + cropRight);
  const height = (2 - frameMbsOnly) * heightInMapUnits * 16 - cropUnitY * (cropTop + cropBottom);
  if (width <= 0 || height <= 0) throw new Error('bad SPS cropping');
  return { profile, compatibility, level, width, height, chromaFormat, bitDepth, progressive: frameMbsOnly === 1 };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Parses an AVCDecoderConfigurationRecord. Throws on a malformed one or one without an SPS. */
export function parseAvcDecoderConfig(record: Buffer): AvcConfig {
  if (record.length < 7 || record[0] !== 1) throw new Error('not an AVCDecoderConfigurationRecord');
  const nalLengthSize = ((record[4] ?? 0) & 0x03) + 1;
  if (nalLengthSize === 3) throw new Error('bad lengthSizeMinusOne');
  // Byte 5 holds the SPS count; the arrays start at byte 6.
  let p = 6;
  const readNals = (count: number): Buffer[] => {
    const nals: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (p + 2 > record.length) throw new Error('truncated AVCDecoderConfigurationRecord');
      const len = record.readUInt16BE(p);
      p += 2;
      if (p + len > record.length) throw new Error('truncated AVCDecoderConfigurationRecord');
      nals.push(Buffer.from(record.subarray(p, p + len)));
      p += len;
    }
    return nals;
  };
  const sps = readNals((record[5] ?? 0) & 0x1f);
  const ppsCount = record[p++];
  const pps = ppsCount === undefined ? [] : readNals(ppsCount);
  const first = sps[0];
  if (!first) throw new Error('AVCDecoderConfigurationRecord without SPS');
  const info = parseAvcSps(first);
  // The record's profile bytes are the ones players negotiate on; they mirror the SPS.
  const profile = record[1] ?? info.profile;
  const compatibility = record[2] ?? info.compatibility;
  const level = record[3] ?? info.level;
  return {
    profile,
    compatibility,
    level,
    nalLengthSize,
    width: info.width,
    height: info.height,
    chromaFormat: info.chromaFormat,
    bitDepth: info.bitDepth,
    progressive: info.progressive,
    codecString: `avc1.${hex2(profile)}${hex2(compatibility)}${hex2(level)}`,
    sps,
    pps,
  };
}
