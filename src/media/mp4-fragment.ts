/** Parses a moof box: per-track decode time, duration, sample count and whether it starts with a sync sample. */
import { BoxCursor, Fmp4Error, childBoxes } from './mp4-boxes.ts';
import type { Box } from './mp4-boxes.ts';
import type { Mp4FragmentTrack, Mp4Track } from './mp4-types.ts';

// ISO/IEC 14496-12 8.8.7 (tfhd) and 8.8.8 (trun) flag bits.
const TFHD_BASE_DATA_OFFSET = 0x000001;
const TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002;
const TFHD_DEFAULT_DURATION = 0x000008;
const TFHD_DEFAULT_SIZE = 0x000010;
const TFHD_DEFAULT_FLAGS = 0x000020;
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_FIRST_SAMPLE_FLAGS = 0x000004;
const TRUN_SAMPLE_DURATION = 0x000100;
const TRUN_SAMPLE_SIZE = 0x000200;
const TRUN_SAMPLE_FLAGS = 0x000400;
const TRUN_SAMPLE_CTO = 0x000800;
/** sample_is_non_sync_sample in the 32-bit sample flags. */
const SAMPLE_NON_SYNC = 0x00010000;

export interface ParsedMoof {
  sequenceNumber: number;
  tracks: Mp4FragmentTrack[];
}

export function parseMoof(buf: Buffer, moof: Box, initTracks: readonly Mp4Track[]): ParsedMoof {
  let sequenceNumber = 0;
  const tracks: Mp4FragmentTrack[] = [];
  for (const box of childBoxes(buf, moof.payloadStart, moof.end)) {
    if (box.type === 'mfhd') {
      const c = new BoxCursor(buf, box);
      c.fullBox();
      sequenceNumber = c.u32();
    } else if (box.type === 'traf') {
      tracks.push(parseTraf(buf, box, initTracks));
    }
  }
  if (tracks.length === 0) throw new Fmp4Error('MISSING_BOX', "'moof' has no 'traf' box");
  return { sequenceNumber, tracks };
}

function parseTraf(buf: Buffer, traf: Box, initTracks: readonly Mp4Track[]): Mp4FragmentTrack {
  const children = childBoxes(buf, traf.payloadStart, traf.end);
  const tfhdBox = children.find((b) => b.type === 'tfhd');
  if (!tfhdBox) throw new Fmp4Error('MISSING_BOX', "'traf' has no 'tfhd' box");
  const tfhd = new BoxCursor(buf, tfhdBox);
  const { flags: tfhdFlags } = tfhd.fullBox();
  const trackId = tfhd.u32();
  const track = initTracks.find((t) => t.id === trackId);
  if (!track) throw new Fmp4Error('UNKNOWN_TRACK', `fragment references track ${trackId}, absent from the init segment`);
  if (tfhdFlags & TFHD_BASE_DATA_OFFSET) tfhd.u64();
  if (tfhdFlags & TFHD_SAMPLE_DESCRIPTION_INDEX) tfhd.u32();
  const defaultDuration = tfhdFlags & TFHD_DEFAULT_DURATION ? tfhd.u32() : track.defaultSampleDuration;
  if (tfhdFlags & TFHD_DEFAULT_SIZE) tfhd.u32();
  const defaultFlags = tfhdFlags & TFHD_DEFAULT_FLAGS ? tfhd.u32() : (track.defaultSampleFlags ?? 0);

  let baseMediaDecodeTime = 0;
  const tfdt = children.find((b) => b.type === 'tfdt');
  if (tfdt) {
    const c = new BoxCursor(buf, tfdt);
    const { version } = c.fullBox();
    baseMediaDecodeTime = version === 1 ? c.u64() : c.u32();
  }

  let duration = 0;
  let sampleCount = 0;
  let firstSampleFlags: number | undefined;
  for (const box of children) {
    if (box.type !== 'trun') continue;
    const c = new BoxCursor(buf, box);
    const { flags } = c.fullBox();
    const count = c.u32();
    if (flags & TRUN_DATA_OFFSET) c.i32();
    const firstFlags = flags & TRUN_FIRST_SAMPLE_FLAGS ? c.u32() : undefined;
    const perSample =
      (flags & TRUN_SAMPLE_DURATION ? 4 : 0) +
      (flags & TRUN_SAMPLE_SIZE ? 4 : 0) +
      (flags & TRUN_SAMPLE_FLAGS ? 4 : 0) +
      (flags & TRUN_SAMPLE_CTO ? 4 : 0);
    // Check the whole table fits before walking it, so a hostile count cannot spin.
    c.need(perSample * count);
    if (count > 0 && firstSampleFlags === undefined) {
      if (firstFlags !== undefined) firstSampleFlags = firstFlags;
      else if (flags & TRUN_SAMPLE_FLAGS) {
        const flagsOffset = c.offset + (flags & TRUN_SAMPLE_DURATION ? 4 : 0) + (flags & TRUN_SAMPLE_SIZE ? 4 : 0);
        firstSampleFlags = buf.readUInt32BE(flagsOffset);
      } else firstSampleFlags = defaultFlags;
    }
    if (flags & TRUN_SAMPLE_DURATION) {
      for (let i = 0; i < count; i++) {
        duration += buf.readUInt32BE(c.offset + i * perSample);
      }
    } else if (count > 0) {
      if (defaultDuration === undefined) {
        throw new Fmp4Error('MISSING_SAMPLE_DURATION', `track ${trackId}: no sample duration in trun, tfhd or trex`);
      }
      duration += defaultDuration * count;
    }
    sampleCount += count;
  }

  return {
    trackId,
    kind: track.kind,
    timescale: track.timescale,
    baseMediaDecodeTime,
    duration,
    sampleCount,
    firstSampleIsSync: firstSampleFlags !== undefined && (firstSampleFlags & SAMPLE_NON_SYNC) === 0,
  };
}
