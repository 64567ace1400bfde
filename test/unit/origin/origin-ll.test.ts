import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import type { HlsStreamView } from '../../../src/origin/live-playback.ts';
import { acceptsGzip, originPlugin } from '../../../src/origin/origin-plugin.ts';
import { fragment } from '../hls/fragments.ts';

const ID = '0123456789abcdef0123456789abcdef';
const PREFIX = 'ab12cd34';
const part = (msn: number, index: number) => `part-${PREFIX}-${msn}-${index}.m4s`;

/** An origin over one live stream of two renditions; `holds` resolves each time a request starts waiting. */
async function setup(opts: { maxHoldMs?: number; windowSegments?: number } = {}) {
  let t = 0;
  const stream = new HlsLiveStream({ prefix: PREFIX, segmentTarget: 2, partTarget: 0.25, windowSegments: opts.windowSegments ?? 4 });
  for (const name of ['720p', '360p']) {
    stream.addRendition(name);
    stream.pushInit(name, { data: Buffer.from(`init-${name}`), tracks: [] });
  }
  const parts = (n: number) => {
    for (let i = 0; i < n; i++) {
      const independent = Math.round(t * 4) % 4 === 0;
      for (const name of ['720p', '360p']) stream.pushFragment(name, fragment(0.25, independent, 64, 0, t));
      t += 0.25;
    }
  };
  const aborts: Array<() => void> = [];
  let onHold: (() => void) | undefined;
  const held = () => new Promise<void>((resolve) => (onHold = resolve));
  // The stream as the origin sees it, reporting each hold and each abort of one.
  const view: HlsStreamView = {
    masterPlaylist: () => stream.masterPlaylist(),
    mediaPlaylist: (r, skip) => stream.mediaPlaylist(r, skip),
    blockingState: (r, msn, p) => stream.blockingState(r, msn, p),
    waitForPlaylist: (r, msn, p, signal) => {
      signal?.addEventListener('abort', () => aborts.forEach((a) => a()));
      const w = stream.waitForPlaylist(r, msn, p, signal);
      onHold?.();
      return w;
    },
    waitForPart: (r, file, signal) => {
      const w = stream.waitForPart(r, file, signal);
      if (w) onHold?.();
      return w;
    },
    resource: (r, file) => stream.resource(r, file),
    get targetDuration() {
      return stream.targetDuration;
    },
    get partTarget() {
      return stream.partTarget;
    },
    get ended() {
      return stream.ended;
    },
  };
  const app = Fastify();
  await app.register(originPlugin, { live: { stream: (id) => (id === ID ? view : undefined) }, ...opts });
  apps.push(app);
  const aborted = () => new Promise<void>((resolve) => aborts.push(resolve));
  return { app, stream, parts, held, aborted };
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

const playlistUrl = (query = '', rendition = '720p') => `/${ID}/manifest/${rendition}/index.m3u8${query}`;

describe('origin: LL-HLS playlists', () => {
  it.each([
    '?_HLS_part=1',
    '?_HLS_msn=abc',
    '?_HLS_msn=-1',
    '?_HLS_msn=1.0',
    '?_HLS_msn=9007199254740993',
    '?_HLS_msn=1&_HLS_msn=1',
    '?_HLS_msn=1&_HLS_part=-2',
    '?_HLS_skip=true',
    '?_HLS_msn=99999', // a valid number far ahead of the stream
    '?_HLS_msn=3&_HLS_part=500', // beyond the Advance Part Limit
  ])('answers %s with 400, not cached', async (query) => {
    const { app, parts } = await setup();
    parts(8 + 2);
    const res = await app.inject(playlistUrl(query));
    expect(res.statusCode).toBe(400);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.json()).toMatchObject({ errors: [{ code: 'BAD_DELIVERY_DIRECTIVE' }] });
  });

  it('serves the playlist at once for a part already there, cacheable for three target durations', async () => {
    const { app, parts } = await setup();
    parts(8 + 2);
    const res = await app.inject(playlistUrl('?_HLS_msn=1&_HLS_part=1'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=6');
    expect(res.headers['content-type']).toBe('application/vnd.apple.mpegurl');
    expect(res.body).toContain(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${part(1, 2)}"`);
    const plain = await app.inject(playlistUrl());
    expect(plain.headers['cache-control']).toBe('public, max-age=1');
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.headers['access-control-allow-origin']).toBe('*');
  });

  it('gzips playlists for clients that accept it', async () => {
    const { app, parts } = await setup();
    parts(8 + 2);
    const res = await app.inject({ url: playlistUrl(), headers: { 'accept-encoding': 'br;q=1, gzip;q=0.5' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.rawPayload).toString()).toBe((await app.inject(playlistUrl())).body);
    const refused = await app.inject({ url: playlistUrl(), headers: { 'accept-encoding': 'gzip;q=0, *' } });
    expect(refused.headers['content-encoding']).toBeUndefined();
  });

  it.each([
    ['gzip', true],
    ['deflate, gzip', true],
    ['GZIP;q=0.1', true],
    ['gzip;q=0', false],
    ['*', true],
    ['*;q=0', false],
    ['br', false],
    ['', false],
  ])('acceptsGzip(%j) is %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });

  it('serves delta updates for _HLS_skip', async () => {
    const { app, parts } = await setup({ windowSegments: 10 });
    parts(9 * 8 + 2);
    const res = await app.inject(playlistUrl('?_HLS_msn=9&_HLS_part=1&_HLS_skip=YES'));
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('#EXT-X-VERSION:9\n');
    expect(res.body).toContain('#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n');
  });

  it.each([
    [`/${ID}/manifest/1080p/index.m3u8`],
    [`/${ID}/manifest/1080p/index.m3u8?_HLS_msn=1`],
    [`/${'f'.repeat(32)}/manifest/720p/index.m3u8?_HLS_msn=1`],
    [`/${ID}/manifest/720p/${part(0, 0)}`], // left the window
    [`/${ID}/manifest/720p/seg-${PREFIX}-0.m4s`],
    [`/${ID}/manifest/720p/${part(7, 5)}`], // further ahead than the hint
    [`/${ID}/manifest/720p/part-ffffffff-6-1.m4s`],
    [`/${ID}/manifest/720p/..%2Finit-${PREFIX}.mp4`],
    [`/${ID}/manifest/..%2F720p/init-${PREFIX}.mp4`],
  ])('404s %s, not cached', async (url) => {
    const { app, parts } = await setup();
    parts(6 * 8 + 1); // window of 4: segments 2–5, segment 6 has part 0
    const res = await app.inject(url);
    expect(res.statusCode).toBe(404);
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  it('serves parts, segments and init as immutable', async () => {
    const { app, parts } = await setup();
    parts(6 * 8 + 1);
    for (const file of [part(6, 0), part(2, 3), `seg-${PREFIX}-5.m4s`, `init-${PREFIX}.mp4`]) {
      const res = await app.inject(`/${ID}/manifest/720p/${file}`);
      expect(res.statusCode, file).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    }
  });

  it('answers 503 when the part does not come within the hold limit', async () => {
    const { app, stream, parts } = await setup({ maxHoldMs: 20 });
    parts(8 + 2);
    const res = await app.inject(playlistUrl('?_HLS_msn=1&_HLS_part=2'));
    expect(res.statusCode).toBe(503);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(stream.waiterCount).toBe(0);
  });

  it('answers held requests with the final playlist when the stream ends', async () => {
    const { app, stream, parts, held } = await setup();
    parts(8 + 2);
    const holding = held();
    const pending = app.inject(playlistUrl('?_HLS_msn=2'));
    await holding;
    stream.end();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('#EXT-X-ENDLIST');
    expect(res.headers['cache-control']).toBe('public, max-age=60');
  });
});

describe('origin: held requests over real HTTP', () => {
  async function listen(app: FastifyInstance): Promise<string> {
    await app.listen({ host: '127.0.0.1', port: 0 });
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }

  it('releases a blocking reload when the part arrives, and the hinted part with it', async () => {
    const { app, stream, parts, held } = await setup();
    parts(8 + 2);
    const base = await listen(app);
    let holding = held();
    const playlist = fetch(`${base}${playlistUrl('?_HLS_msn=1&_HLS_part=2')}`);
    await holding;
    holding = held();
    const hinted = fetch(`${base}/${ID}/manifest/720p/${part(1, 2)}`);
    await holding;
    expect(stream.waiterCount).toBe(2);
    parts(1);
    const [p, h] = await Promise.all([playlist, hinted]);
    expect(p.status).toBe(200);
    expect(await p.text()).toContain(`URI="${part(1, 2)}"`);
    expect(h.status).toBe(200);
    expect(Buffer.from(await h.arrayBuffer()).equals(stream.resource('720p', part(1, 2))!.body)).toBe(true);
    expect(stream.waiterCount).toBe(0);
  });

  it('frees the waiter of a client that disconnects', async () => {
    const { app, stream, parts, held, aborted } = await setup();
    parts(8 + 2);
    const base = new URL(await listen(app));
    const holding = held();
    const gone = aborted();
    const req = request({ host: base.hostname, port: base.port, path: playlistUrl('?_HLS_msn=1&_HLS_part=4') });
    req.on('error', () => {});
    req.end();
    await holding;
    expect(stream.waiterCount).toBe(1);
    req.destroy();
    await gone;
    expect(stream.waiterCount).toBe(0);
  });

  it('answers held requests with 503 when the server closes', async () => {
    const { app, stream, parts, held } = await setup();
    parts(8 + 2);
    const base = await listen(app);
    const holding = held();
    const pending = fetch(`${base}${playlistUrl('?_HLS_msn=1&_HLS_part=5')}`);
    await holding;
    await app.close();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ errors: [{ code: 'SHUTTING_DOWN' }] });
    expect(stream.waiterCount).toBe(0);
  });
});
