/** What the packager needs to know about a fragmented MP4 stream. */

export type Mp4TrackKind = 'video' | 'audio' | 'other';

export interface Mp4Track {
  id: number;
  kind: Mp4TrackKind;
  timescale: number;
  /** RFC 6381 codec string, best effort ('avc1.64001f', 'mp4a.40.2', 'hvc1.1.6.L93.B0'); the sample entry type when unknown. */
  codec: string;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
  /** trex defaults, used when a fragment's tfhd/trun leave them out. */
  defaultSampleDuration?: number;
  defaultSampleFlags?: number;
}

export interface Mp4Init {
  /** ftyp + moov bytes: the HLS init segment. */
  data: Buffer;
  tracks: Mp4Track[];
}

export interface Mp4FragmentTrack {
  trackId: number;
  kind: Mp4TrackKind;
  timescale: number;
  baseMediaDecodeTime: number;
  /** Sum of sample durations, in track timescale. */
  duration: number;
  sampleCount: number;
  firstSampleIsSync: boolean;
}

export interface Mp4Fragment {
  /** styp/sidx/prft/emsg boxes before the moof (if any) + moof + mdat. */
  data: Buffer;
  sequenceNumber: number;
  tracks: Mp4FragmentTrack[];
  /** The video track's (or, without video, the first track's) first sample is a sync sample. */
  independent: boolean;
}

export type Fmp4Event = { type: 'init'; init: Mp4Init } | { type: 'fragment'; fragment: Mp4Fragment };

/** The track whose timing drives packaging: the first video track, else the first track. */
export function mainFragmentTrack(fragment: Mp4Fragment): Mp4FragmentTrack | undefined {
  return fragment.tracks.find((t) => t.kind === 'video') ?? fragment.tracks[0];
}

/** Fragment duration in seconds, measured on the video track (or the first track). */
export function fragmentDurationSeconds(fragment: Mp4Fragment): number {
  const track = mainFragmentTrack(fragment);
  if (!track || track.timescale <= 0) return 0;
  return track.duration / track.timescale;
}
