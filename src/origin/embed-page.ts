import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { normalisePattern } from '../access/allowed-origins.ts';

/**
 * The embeddable player, `/{id}/iframe`: a small HTML page that plays `manifest/video.m3u8`
 * relative to itself with hls.js (low-latency mode), all served from this origin. The page's CSP
 * allows only this origin (plus `blob:` media, which is how Media Source Extensions attach); with
 * `allowedOrigins` on the asset, `frame-ancestors` lets only those sites frame it.
 */

export interface StaticAsset {
  body: Buffer;
  contentType: string;
  /** Content hash: the page names assets with `?v=` so they can be cached for a year. */
  version: string;
}

export interface EmbedAssets {
  /** By file name under `/assets/`. */
  files: ReadonlyMap<string, StaticAsset>;
  page: string;
}

export const ASSET_CACHE = 'public, max-age=31536000, immutable';

function asset(body: Buffer, contentType: string): StaticAsset {
  return { body, contentType, version: createHash('sha256').update(body).digest('base64url').slice(0, 12) };
}

/** Reads hls.js and the player's script and style once (at startup) and renders the page. */
export function loadEmbedAssets(): EmbedAssets {
  const require = createRequire(import.meta.url);
  const dir = path.join(import.meta.dirname, 'embed');
  const hlsJs = asset(readFileSync(require.resolve('hls.js/dist/hls.min.js')), 'text/javascript; charset=utf-8');
  const script = asset(readFileSync(path.join(dir, 'embed-player.js')), 'text/javascript; charset=utf-8');
  const keeper = asset(readFileSync(path.join(dir, 'latency-keeper.js')), 'text/javascript; charset=utf-8');
  const style = asset(readFileSync(path.join(dir, 'embed-player.css')), 'text/css; charset=utf-8');
  const files = new Map([
    ['hls.min.js', hlsJs],
    ['embed-player.js', script],
    ['latency-keeper.js', keeper],
    ['embed-player.css', style],
  ]);
  // `../assets/` from `/{id}/iframe` is `/assets/`, and stays right behind a path prefix.
  const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live stream</title>
<link rel="stylesheet" href="../assets/embed-player.css?v=${style.version}">
</head>
<body data-state="loading">
<div class="player">
<video id="video" muted autoplay playsinline controls></video>
<div id="status" class="status" role="status" aria-live="polite">Loading…</div>
</div>
<script src="../assets/hls.min.js?v=${hlsJs.version}"></script>
<script src="../assets/latency-keeper.js?v=${keeper.version}"></script>
<script src="../assets/embed-player.js?v=${script.version}"></script>
</body>
</html>
`;
  return { files, page };
}

const SAFE_HOST = /^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/;

/**
 * `frame-ancestors` for an asset's allowed origins, with the same meaning as the Origin check
 * (host names, any scheme and port; `*.example.com` is subdomains only; `*` is everyone). The
 * origin itself may always frame its own page.
 */
export function frameAncestors(allowedOrigins: readonly string[] | undefined): string | undefined {
  if (!allowedOrigins || allowedOrigins.length === 0) return undefined;
  const sources = new Set<string>(["'self'"]);
  for (const entry of allowedOrigins) {
    const pattern = normalisePattern(entry);
    if (pattern === '*') return 'frame-ancestors *';
    if (pattern === undefined || !SAFE_HOST.test(pattern)) continue;
    sources.add(`http://${pattern}:*`);
    sources.add(`https://${pattern}:*`);
  }
  return `frame-ancestors ${[...sources].join(' ')}`;
}

/** The page's Content-Security-Policy: only this origin (MSE media comes as `blob:`). */
export function embedCsp(allowedOrigins: readonly string[] | undefined): string {
  const directives = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "media-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'none'",
  ];
  const ancestors = frameAncestors(allowedOrigins);
  if (ancestors) directives.push(ancestors);
  return directives.join('; ');
}

/** A refusal shown inside the frame (a JSON body would be all the viewer sees). */
export function embedErrorPage(status: number, code: string): string {
  const safeCode = /^[A-Z_]{1,40}$/.test(code) ? code : String(status);
  const text = status === 404 ? 'This stream does not exist.' : `You cannot watch this stream (${safeCode}).`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unavailable</title>
<link rel="stylesheet" href="../assets/embed-player.css"></head>
<body data-state="denied"><div class="player"><div class="status" role="status">${text}</div></div></body></html>
`;
}
