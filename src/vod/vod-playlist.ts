/**
 * The VOD playlists of a recording, built from its manifest: pure, entries in, playlist texts and
 * the video's figures out. The manifest lists, per rendition and in order, each init segment and
 * each finished segment that reached the spool (see recorder.ts).
 */
import { renderMasterPlaylist, renderMediaPlaylist, type PlaylistSegment, type Variant } from '../hls/playlist.ts';

/** An init segment of a rendition (a new one per session and per FFmpeg restart with new bytes). */
export interface InitEntry {
  r: string;
  t: 'init';
  /** File name under `<rendition>/`. */
  f: string;
  /** RFC 6381 codecs of its tracks. */
  codecs: string[];
  w?: number;
  h?: number;
  /** Bytes. */
  b: number;
}

export interface SegmentEntry {
  r: string;
  t: 'seg';
  f: string;
  /** File name of its init segment (same rendition). */
  i: string;
  /** Seconds. */
  d: number;
  /** Bytes. */
  b: number;
  /** Timestamps restart here: a reconnect, an FFmpeg restart, or a segment lost before it. */
  disc?: boolean;
}

export type ManifestEntry = InitEntry | SegmentEntry;

export interface VodRendition {
  name: string;
  width: number;
  height: number;
  /** Peak bits/s over its segments. */
  bandwidth: number;
  averageBandwidth: number;
  codecs: string;
}

export interface VodPlaylists {
  /** Master playlist text; variant URIs are `<rendition>/index.m3u8`. */
  master: string;
  /** Media playlist text per rendition; segment and init URIs are bare file names. */
  media: Map<string, string>;
  /** Seconds: the longest rendition. */
  duration: number;
  /** Bytes of every init and segment listed. */
  size: number;
  /** Highest rendition first. */
  renditions: VodRendition[];
  input: { width: number; height: number };
}

const RENDITION = /^[a-z0-9][a-z0-9_-]{0,31}$/i;
const FILE = /^(?:init|seg)-[0-9a-z]{4,32}(?:-[0-9]{1,15})?\.(?:mp4|m4s)$/;

/** Keeps the entries that are well formed; anything else (a corrupt or foreign entry) is dropped. */
export function parseManifestEntries(values: readonly unknown[]): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  for (const v of values) {
    if (typeof v !== 'object' || v === null) continue;
    const e = v as Record<string, unknown>;
    if (typeof e.r !== 'string' || !RENDITION.test(e.r) || typeof e.f !== 'string' || !FILE.test(e.f)) continue;
    if (typeof e.b !== 'number' || !(e.b >= 0)) continue;
    if (e.t === 'init' && Array.isArray(e.codecs) && e.codecs.every((c) => typeof c === 'string')) {
      out.push(e as unknown as InitEntry);
    } else if (e.t === 'seg' && typeof e.i === 'string' && FILE.test(e.i) && typeof e.d === 'number' && e.d >= 0) {
      out.push(e as unknown as SegmentEntry);
    }
  }
  return out;
}

interface RenditionAcc {
  name: string;
  inits: Map<string, InitEntry>;
  segments: SegmentEntry[];
}

/** Undefined when no rendition has a playable segment (nothing to publish). */
export function buildVodPlaylists(entries: readonly ManifestEntry[]): VodPlaylists | undefined {
  const byName = new Map<string, RenditionAcc>();
  for (const e of entries) {
    let acc = byName.get(e.r);
    if (!acc) {
      acc = { name: e.r, inits: new Map(), segments: [] };
      byName.set(e.r, acc);
    }
    if (e.t === 'init') acc.inits.set(e.f, e);
    else acc.segments.push(e);
  }

  const media = new Map<string, string>();
  const renditions: VodRendition[] = [];
  let duration = 0;
  let size = 0;
  for (const acc of byName.values()) {
    const segments: PlaylistSegment[] = [];
    const usedInits = new Set<string>();
    let bytes = 0;
    let seconds = 0;
    let peak = 0;
    let lostBefore = false;
    for (const s of acc.segments) {
      // A segment whose init never made it cannot be decoded; the next one follows a gap.
      if (!acc.inits.has(s.i)) {
        lostBefore = true;
        continue;
      }
      segments.push({
        uri: s.f,
        duration: s.d,
        mapUri: s.i,
        // A leading discontinuity means nothing; one after a dropped segment keeps decoders honest.
        discontinuity: segments.length > 0 && (s.disc === true || lostBefore),
      });
      lostBefore = false;
      usedInits.add(s.i);
      bytes += s.b;
      seconds += s.d;
      if (s.d > 0) peak = Math.max(peak, (s.b * 8) / s.d);
    }
    if (segments.length === 0) continue;
    let initBytes = 0;
    for (const name of usedInits) initBytes += acc.inits.get(name)?.b ?? 0;
    const first = acc.inits.get(segments[0]?.mapUri ?? '');
    media.set(
      acc.name,
      renderMediaPlaylist({ mediaSequence: 0, playlistType: 'VOD', endList: true, segments }),
    );
    const average = seconds > 0 ? (bytes * 8) / seconds : 0;
    renditions.push({
      name: acc.name,
      width: first?.w ?? 0,
      height: first?.h ?? 0,
      bandwidth: Math.ceil(peak || average),
      averageBandwidth: Math.ceil(average),
      codecs: (first?.codecs ?? []).join(','),
    });
    duration = Math.max(duration, seconds);
    size += bytes + initBytes;
  }
  if (renditions.length === 0) return undefined;

  // The order rendition entries were appended in is a race between renditions: sort instead.
  renditions.sort((a, b) => b.height - a.height || b.bandwidth - a.bandwidth || (a.name < b.name ? -1 : 1));
  const variants: Variant[] = renditions.map((r) => {
    const v: Variant = { uri: `${r.name}/index.m3u8`, bandwidth: r.bandwidth, averageBandwidth: r.averageBandwidth };
    if (r.codecs) v.codecs = r.codecs.split(',');
    if (r.width > 0 && r.height > 0) v.resolution = { width: r.width, height: r.height };
    return v;
  });
  const top = renditions[0];
  return {
    master: renderMasterPlaylist({ variants }),
    media,
    duration: Math.round(duration * 1000) / 1000,
    size,
    renditions,
    input: { width: top?.width || -1, height: top?.height || -1 },
  };
}
