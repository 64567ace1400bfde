import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ProbeStream {
  index: number;
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  tags?: Record<string, string>;
}

export interface ProbeResult {
  streams: ProbeStream[];
  format: { duration?: string; format_name?: string; tags?: Record<string, string> };
}

/** ffprobe a URL or file (HLS included) and return streams and format as JSON. */
export async function ffprobe(url: string, extra: string[] = []): Promise<ProbeResult> {
  const { stdout } = await run(
    'ffprobe',
    ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', ...extra, url],
    { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as ProbeResult;
}

/**
 * Reads a whole (ended) HLS playlist with FFmpeg, decoding every frame, and returns the decoded
 * media duration in seconds from the last `time=` progress line — what a player would play.
 */
export async function decodedDuration(url: string): Promise<number> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostdin', '-i', url, '-map', '0:v:0', '-f', 'null', '-'], {
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const times = [...stderr.matchAll(/time=(\d+):(\d+):(\d+(?:\.\d+)?)/g)];
  const last = times.at(-1);
  if (!last) throw new Error(`no progress in ffmpeg output:\n${stderr.slice(-2000)}`);
  return Number(last[1]) * 3600 + Number(last[2]) * 60 + Number(last[3]);
}

/** Parses `#EXT-X-STREAM-INF` variants from a master playlist. */
export function parseMaster(text: string): Array<{ attrs: Record<string, string>; uri: string }> {
  const lines = text.split('\n').map((l) => l.trim());
  const out: Array<{ attrs: Record<string, string>; uri: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('#EXT-X-STREAM-INF:')) continue;
    const attrs: Record<string, string> = {};
    for (const m of line.slice('#EXT-X-STREAM-INF:'.length).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
      attrs[m[1]!] = m[2]!.replace(/^"|"$/g, '');
    }
    out.push({ attrs, uri: lines[i + 1] ?? '' });
  }
  return out;
}

/** The media sequence number and segment URIs of a media playlist. */
export function parseMedia(text: string): { mediaSequence: number; segments: string[]; ended: boolean; discontinuities: number } {
  const seq = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text);
  const lines = text.split('\n').map((l) => l.trim());
  const segments = lines.filter((l, i) => l && !l.startsWith('#') && (lines[i - 1] ?? '').startsWith('#EXTINF'));
  return {
    mediaSequence: seq ? Number(seq[1]) : 0,
    segments,
    ended: text.includes('#EXT-X-ENDLIST'),
    discontinuities: lines.filter((l) => l === '#EXT-X-DISCONTINUITY').length,
  };
}
