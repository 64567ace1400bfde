import type { FastifyInstance, FastifyReply } from 'fastify';
import type { LivePlayback } from './live-playback.ts';

export interface OriginOptions {
  live: LivePlayback;
}

// Ids are 32 hex chars (live input or video uid). Rendition names and file names are checked
// against strict patterns before any lookup, so no decoded `..` or `/` ever reaches a store.
const ID = /^[0-9a-f]{32}$/;
const RENDITION = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';

export const CACHE = {
  // Live playlists change every part; let a CDN absorb bursts without serving stale media.
  livePlaylist: 'public, max-age=1',
  endedPlaylist: 'public, max-age=60',
  // Media file names carry a random per-session prefix and never change content.
  media: 'public, max-age=31536000, immutable',
  notFound: 'no-cache',
} as const;

function notFound(reply: FastifyReply, message = 'no such stream or file'): FastifyReply {
  return reply
    .code(404)
    .header('cache-control', CACHE.notFound)
    .send({ success: false, errors: [{ code: 'NOT_FOUND', message }] });
}

/** Playback of live streams: `/{id}/manifest/video.m3u8` and everything under it. */
export async function originPlugin(app: FastifyInstance, opts: OriginOptions): Promise<void> {
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('access-control-allow-origin', '*');
    reply.header('access-control-expose-headers', 'Content-Length, Age');
    return payload;
  });

  app.options('/:id/*', async (_req, reply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'GET, HEAD, OPTIONS')
      .header('access-control-allow-headers', 'Range, Origin, Accept')
      .header('access-control-max-age', '86400')
      .send(),
  );

  app.get<{ Params: { id: string } }>('/:id/manifest/video.m3u8', async (req, reply) => {
    const { id } = req.params;
    if (!ID.test(id)) return notFound(reply);
    const stream = opts.live.stream(id);
    const text = stream?.masterPlaylist();
    if (!stream || text === undefined) return notFound(reply, 'stream is not live');
    return reply
      .type(PLAYLIST_TYPE)
      .header('cache-control', stream.ended ? CACHE.endedPlaylist : CACHE.livePlaylist)
      .send(text);
  });

  app.get<{ Params: { id: string; rendition: string; file: string } }>(
    '/:id/manifest/:rendition/:file',
    async (req, reply) => {
      const { id, rendition, file } = req.params;
      if (!ID.test(id) || !RENDITION.test(rendition) || !FILE.test(file) || file.includes('..')) {
        return notFound(reply);
      }
      const stream = opts.live.stream(id);
      if (!stream) return notFound(reply, 'stream is not live');
      if (file.endsWith('.m3u8')) {
        const text = stream.mediaPlaylist(rendition);
        if (text === undefined) return notFound(reply);
        return reply
          .type(PLAYLIST_TYPE)
          .header('cache-control', stream.ended ? CACHE.endedPlaylist : CACHE.livePlaylist)
          .send(text);
      }
      const resource = stream.resource(rendition, file);
      if (!resource) return notFound(reply);
      return reply.type(resource.contentType).header('cache-control', CACHE.media).send(resource.body);
    },
  );
}
