import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { HlsLiveStream } from '../../../src/hls/live-stream.ts';
import type { PlaybackAccess } from '../../../src/origin/live-playback.ts';
import { originPlugin } from '../../../src/origin/origin-plugin.ts';
import { OwnerProxy } from '../../../src/origin/owner-proxy.ts';
import { fragment } from '../hls/fragments.ts';

const ID = '0123456789abcdef0123456789abcdef';
const SECRET = 's3cret-s3cret-s3cret';
const HEADER = 'x-tributary-internal';

/** Allows `?token=ok` only: shows where rights are checked (the edge) and where not (the owner). */
const guard = (allow: boolean): PlaybackAccess => ({
  check: async (req) =>
    allow && req.queryToken === 'ok'
      ? { ok: true, uid: req.pathId, originRestricted: false }
      : { ok: false, status: 401, code: 'TOKEN_REQUIRED', message: 'no' },
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** An owner node (ingest only: internal requests only) with one live stream, and an edge origin relaying from it. */
async function cluster() {
  let t = 0;
  const stream = new HlsLiveStream({ prefix: 'ab12cd34', segmentTarget: 2, partTarget: 0.25, windowSegments: 4 });
  stream.addRendition('360p');
  stream.pushInit('360p', { data: Buffer.from('init'), tracks: [] });
  const parts = (n: number) => {
    for (let i = 0; i < n; i++) {
      stream.pushFragment('360p', fragment(0.25, Math.round(t * 4) % 4 === 0, 64, 0, t));
      t += 0.25;
    }
  };
  parts(12);
  const isInternal = (h: Record<string, string | string[] | undefined>) => h[HEADER] === SECRET;
  const owner = Fastify();
  let ownerRequests = 0;
  owner.addHook('onRequest', async () => {
    ownerRequests++;
  });
  const proxyNever = new OwnerProxy({ owners: { ownerUrl: async () => undefined }, credential: () => ({ header: HEADER, value: SECRET }), timeoutMs: 1000 });
  await owner.register(originPlugin, {
    live: { stream: (id) => (id === ID ? stream : undefined) },
    // The owner refuses every viewer: only the credential gets through.
    guard: guard(false),
    cluster: { proxy: proxyNever, isInternal, internalOnly: true, holdMs: 5000 },
  });
  await owner.listen({ host: '127.0.0.1', port: 0 });
  apps.push(owner);
  const ownerUrl = `http://127.0.0.1:${(owner.server.address() as AddressInfo).port}`;

  let ownerAt: string | undefined = ownerUrl;
  const proxy = new OwnerProxy({
    owners: { ownerUrl: async (id) => (id === ID ? ownerAt : undefined) },
    credential: () => ({ header: HEADER, value: SECRET }),
    timeoutMs: 1000,
    lookupCacheMs: 0,
  });
  const edge = Fastify();
  await edge.register(originPlugin, {
    live: { stream: () => undefined },
    guard: guard(true),
    cluster: { proxy, isInternal, internalOnly: false, holdMs: 5000 },
  });
  apps.push(edge);
  return {
    stream,
    parts,
    owner,
    ownerUrl,
    edge,
    proxy,
    ownerRequests: () => ownerRequests,
    moveOwner: (url: string | undefined) => (ownerAt = url),
  };
}

describe('origin relaying live streams from their owner node', () => {
  it('relays playlists and media; the edge checks rights, the owner trusts the credential', async () => {
    const c = await cluster();
    const direct = c.stream.mediaPlaylist('360p');
    const master = await c.edge.inject(`/${ID}/manifest/video.m3u8?token=ok`);
    expect(master.statusCode).toBe(200);
    expect(master.body).toBe(c.stream.masterPlaylist());
    const media = await c.edge.inject(`/${ID}/manifest/360p/index.m3u8?token=ok`);
    expect(media.statusCode).toBe(200);
    expect(media.body).toBe(direct);
    expect(media.headers['cache-control']).toBe('public, max-age=1');
    const init = await c.edge.inject(`/${ID}/manifest/360p/init-ab12cd34.mp4?token=ok`);
    expect(init.statusCode).toBe(200);
    expect(init.body).toBe('init');
    expect(init.headers['cache-control']).toContain('immutable');

    // No token at the edge: refused there, the owner never asked.
    const before = c.ownerRequests();
    expect((await c.edge.inject(`/${ID}/manifest/video.m3u8`)).statusCode).toBe(401);
    // A bad directive is refused at the edge too.
    expect((await c.edge.inject(`/${ID}/manifest/360p/index.m3u8?token=ok&_HLS_msn=abc`)).statusCode).toBe(400);
    expect(c.ownerRequests()).toBe(before);
  });

  it('the owner answers only other nodes: no credential, a wrong or a repeated one is a 404', async () => {
    const c = await cluster();
    const url = `${c.ownerUrl}/${ID}/manifest/video.m3u8`;
    expect((await fetch(url)).status).toBe(404);
    expect((await fetch(url, { headers: { [HEADER]: 'guess' } })).status).toBe(404);
    expect((await fetch(`${c.ownerUrl}/assets/player.js`)).status).toBe(404);
    const ok = await fetch(url, { headers: { [HEADER]: SECRET } });
    expect(ok.status).toBe(200);
    // A forged credential at the edge is just a viewer without a token.
    expect((await c.edge.inject({ url: `/${ID}/manifest/video.m3u8`, headers: { [HEADER]: 'guess' } })).statusCode).toBe(401);
  });

  it('identical blocking reloads wait at the owner as one request and are all answered by the next part', async () => {
    const c = await cluster();
    const edgeUrl = await c.edge.listen({ host: '127.0.0.1', port: 0 });
    const text = c.stream.mediaPlaylist('360p')!;
    const msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)![1]) + (text.match(/#EXTINF/g) ?? []).length;
    const partsNow = text.slice(text.lastIndexOf('#EXTINF')).match(/#EXT-X-PART:/g)?.length ?? 0;
    const u = `${edgeUrl}/${ID}/manifest/360p/index.m3u8?token=ok&_HLS_msn=${msn}&_HLS_part=${partsNow}`;
    const upstream0 = c.proxy.stats.upstream;
    const waiting = Array.from({ length: 40 }, () => fetch(u).then(async (r) => ({ status: r.status, body: await r.text() })));
    await new Promise((r) => setTimeout(r, 300));
    c.parts(1);
    const answers = await Promise.all(waiting);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body).toContain(`part-ab12cd34-${msn}-${partsNow}.m4s`);
    }
    expect(c.proxy.stats.upstream - upstream0).toBe(1);
    expect(c.proxy.stats.coalesced).toBeGreaterThanOrEqual(39);
  });

  it('an owner that is gone gives 502; a node no longer holding the stream gives the VOD path (404 here); others still play', async () => {
    const c = await cluster();
    c.moveOwner('http://127.0.0.1:1');
    const gone = await c.edge.inject(`/${ID}/manifest/video.m3u8?token=ok`);
    expect(gone.statusCode).toBe(502);
    expect(gone.json()).toMatchObject({ errors: [{ code: 'OWNER_UNREACHABLE' }] });
    c.moveOwner(undefined);
    expect((await c.edge.inject(`/${ID}/manifest/video.m3u8?token=ok`)).statusCode).toBe(404);
    c.moveOwner(c.ownerUrl);
    expect((await c.edge.inject(`/${ID}/manifest/video.m3u8?token=ok`)).statusCode).toBe(200);
    // An unknown file at the owner: 404 through the edge, not relayed as anything else.
    expect((await c.edge.inject(`/${ID}/manifest/360p/part-ffffffff-1-1.m4s?token=ok`)).statusCode).toBe(404);
  });
});
