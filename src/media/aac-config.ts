/**
 * AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) as carried in an FLV/RTMP AAC sequence
 * header.
 */

export interface AacConfig {
  /** The signalled audio object type: 2 AAC-LC, 5 SBR (HE-AAC), 29 PS (HE-AACv2), … */
  objectType: number;
  /** Output sample rate in Hz (the SBR extension rate for HE-AAC with explicit signalling). */
  sampleRate: number;
  /** Output channel count; 0 when a program config element defines them. */
  channels: number;
  /** RFC 6381 codec string, e.g. 'mp4a.40.2'. */
  codecString: string;
}

export const AAC_SAMPLE_RATES: readonly number[] = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

// channelConfiguration → channels (ISO/IEC 14496-3:2009/Amd.4 extends 8..14).
const CHANNELS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 8, 0, 0, 0, 7, 8, 24, 8];

const AOT_SBR = 5;
const AOT_PS = 29;

class Bits {
  readonly #data: Buffer;
  #bit = 0;
  constructor(data: Buffer) {
    this.#data = data;
  }
  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.#data[this.#bit >> 3];
      if (byte === undefined) throw new RangeError('truncated AudioSpecificConfig');
      v = v * 2 + ((byte >> (7 - (this.#bit & 7))) & 1);
      this.#bit++;
    }
    return v;
  }
}

function readObjectType(b: Bits): number {
  const aot = b.u(5);
  return aot === 31 ? 32 + b.u(6) : aot;
}

function readSampleRate(b: Bits): number {
  const index = b.u(4);
  if (index === 15) return b.u(24);
  const rate = AAC_SAMPLE_RATES[index];
  if (rate === undefined) throw new Error(`reserved sampling frequency index ${index}`);
  return rate;
}

/** Parses an AudioSpecificConfig. Throws on a truncated or invalid one. */
export function parseAacConfig(asc: Buffer): AacConfig {
  const b = new Bits(asc);
  const objectType = readObjectType(b);
  if (objectType === 0) throw new Error('invalid audio object type 0');
  let sampleRate = readSampleRate(b);
  const channelConfig = b.u(4);
  let channels = CHANNELS[channelConfig] ?? 0;
  if (objectType === AOT_SBR || objectType === AOT_PS) {
    // Explicit hierarchical signalling: the extension rate is what the decoder outputs.
    sampleRate = readSampleRate(b);
    if (objectType === AOT_PS && channels === 1) channels = 2;
  }
  if (sampleRate <= 0) throw new Error('invalid sample rate');
  return { objectType, sampleRate, channels, codecString: `mp4a.40.${objectType}` };
}
