import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '../storage/object-store.ts';
import { videoPrefix } from './finalize.ts';
import type { VodPlayback } from './vod-playback.ts';

/**
 * A finished video as derived files (thumbnails, MP4 downloads) read it: its renditions from the
 * master playlist and, per rendition, its segments with their start times, from the media
 * playlist. The playlists are the one layout recordings and uploads share in the store.
 */

export interface SourceRendition {
  name: string;
  width: number;
  height: number;
  bandwidth: number;
}

export interface SourceSegment {
  uri: string;
  /** Init segment (EXT-X-MAP) file name. */
  map: string;
  /** Seconds from the start of the video. */
  start: number;
  duration: number;
  /** Timestamps restart here (EXT-X-DISCONTINUITY before it). */
  discontinuity: boolean;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i;
const FILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Variants of a master playlist whose URI is `<rendition>/index.m3u8`, highest first. */
export function parseMasterRenditions(text: string): SourceRendition[] {
  const lines = text.split('\n').map((l) => l.trim());
  const out: SourceRendition[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const uri = lines[i + 1] ?? '';
    const m = /^([^/]+)\/index\.m3u8$/.exec(uri);
    if (!m || !NAME.test(m[1] ?? '')) continue;
    const res = /RESOLUTION=(\d+)x(\d+)/.exec(line);
    const bw = /(?:^|[:,])BANDWIDTH=(\d+)/.exec(line);
    out.push({ name: m[1] as string, width: Number(res?.[1] ?? 0), height: Number(res?.[2] ?? 0), bandwidth: Number(bw?.[1] ?? 0) });
  }
  return out.sort((a, b) => b.height - a.height || b.bandwidth - a.bandwidth);
}

/** Segments of a VOD media playlist; URIs that are not plain file names are skipped. */
export function parseMediaSegments(text: string): SourceSegment[] {
  const out: SourceSegment[] = [];
  let map = '';
  let duration: number | undefined;
  let discontinuity = false;
  let start = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#EXT-X-MAP:')) {
      map = /URI="([^"]*)"/.exec(line)?.[1] ?? '';
    } else if (line.startsWith('#EXTINF:')) {
      duration = Number.parseFloat(line.slice(8));
    } else if (line === '#EXT-X-DISCONTINUITY') {
      discontinuity = true;
    } else if (line !== '' && !line.startsWith('#')) {
      if (duration !== undefined && Number.isFinite(duration) && FILE.test(line) && FILE.test(map)) {
        out.push({ uri: line, map, start, duration, discontinuity });
        start += duration;
      }
      duration = undefined;
      discontinuity = false;
    }
  }
  return out;
}

/** The segments covering [from, from + seconds) that decode together: same init, no discontinuity. */
export function segmentsCovering(segments: readonly SourceSegment[], from: number, seconds: number): SourceSegment[] {
  const first = segments.findIndex((s) => from < s.start + s.duration);
  const index = first < 0 ? segments.length - 1 : first;
  const head = segments[index];
  if (!head) return [];
  const out = [head];
  for (let i = index + 1; i < segments.length; i++) {
    const s = segments[i] as SourceSegment;
    if (s.start >= from + seconds || s.discontinuity || s.map !== head.map) break;
    out.push(s);
  }
  return out;
}

export class VodSource {
  readonly #store: ObjectStore;
  readonly #vod: VodPlayback;

  constructor(store: ObjectStore, vod: VodPlayback) {
    this.#store = store;
    this.#vod = vod;
  }

  /** Undefined when the video has no VOD playlists (unknown, deleted, or not finalized yet). */
  async renditions(uid: string): Promise<SourceRendition[] | undefined> {
    const master = await this.#vod.masterPlaylist(uid);
    if (master === undefined) return undefined;
    const renditions = parseMasterRenditions(master);
    return renditions.length > 0 ? renditions : undefined;
  }

  async segments(uid: string, rendition: string): Promise<SourceSegment[] | undefined> {
    const text = await this.#vod.mediaPlaylist(uid, rendition);
    return text === undefined ? undefined : parseMediaSegments(text);
  }

  /** Appends the named files of a rendition, in order, to `path` (created). Throws if one is missing. */
  async writeFiles(uid: string, rendition: string, files: readonly string[], path: string, onFile?: () => void): Promise<void> {
    const out = createWriteStream(path, { flags: 'wx' });
    try {
      for (const file of files) {
        const got = await this.#store.get(`${videoPrefix(uid)}${rendition}/${file}`);
        if (!got) throw new Error(`${rendition}/${file} of video ${uid} is missing from the store`);
        await pipeline(got.body as Readable, out, { end: false });
        onFile?.();
      }
    } finally {
      // A failed pipeline has destroyed the file stream already; else wait for the bytes to be written.
      if (!out.destroyed) await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    }
  }
}
