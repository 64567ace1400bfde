/**
 * Pure: what FFmpeg is told for one simulcast output (target URL, container, arguments), and
 * how its URL and stream key are hidden from logs and error messages.
 */

export interface OutputTarget {
  url: string;
  streamKey: string;
}

/** The URL FFmpeg writes to: RTMP(S) appends the stream key as the last path segment; SRT passes it as `streamid`. */
export function targetUrl(target: OutputTarget): string {
  const key = target.streamKey;
  if (target.url.startsWith('srt:')) {
    if (!key) return target.url;
    const parsed = new URL(target.url);
    if (parsed.searchParams.has('streamid')) return target.url;
    parsed.searchParams.set('streamid', key);
    return parsed.toString();
  }
  if (!key) return target.url;
  return `${target.url.replace(/\/+$/, '')}/${key}`;
}

/** RTMP(S) carries FLV; SRT carries MPEG-TS (what SRT receivers expect). */
export function targetFormat(target: OutputTarget): 'flv' | 'mpegts' {
  return target.url.startsWith('srt:') ? 'mpegts' : 'flv';
}

/**
 * FFmpeg reads the source FLV on stdin and copies every stream to the target: no re-encode.
 * Progress goes to stdout (key=value blocks), which tells the supervisor bytes are leaving.
 */
export function buildOutputArgs(target: OutputTarget): string[] {
  const format = targetFormat(target);
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel', 'warning',
    '-progress', 'pipe:1',
    '-stats_period', '0.5',
    '-fflags', '+genpts',
    '-analyzeduration', '500000',
    '-probesize', '500000',
    '-f', 'flv',
    '-i', 'pipe:0',
    '-map', '0',
    '-c', 'copy',
    ...(format === 'flv' ? ['-flvflags', 'no_duration_filesize'] : []),
    '-f', format,
    targetUrl(target),
  ];
}

/**
 * The target with its secrets replaced: the stream key wherever it appears, an SRT passphrase,
 * and a URL's query. For logs and for the `lastError` users see.
 */
export function maskSecrets(text: string, target: OutputTarget): string {
  const shown = describeTarget(target) + (target.streamKey ? '/***' : '');
  let out = text.split(targetUrl(target)).join(shown);
  const key = target.streamKey;
  // Percent-encoded forms appear when FFmpeg echoes a URL it rebuilt.
  for (const secret of [key, encodeURIComponent(key)]) if (secret.length > 0) out = out.split(secret).join('***');
  return out.replace(/(passphrase|streamid)=[^&\s'"]*/gi, '$1=***');
}

/** The URL as a log may show it: scheme, host, port and path without the key. */
export function describeTarget(target: OutputTarget): string {
  try {
    const u = new URL(target.url);
    return `${u.protocol}//${u.host}${u.protocol === 'srt:' ? '' : u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(invalid url)';
  }
}
