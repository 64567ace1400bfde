import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseThumbnailQuery, type ThumbnailParams } from '../vod/thumbnail-params.ts';
import { ifNoneMatchHits, ifRangeMatches, parseRangeHeader } from './byte-range.ts';

/** Thumbnails of finished videos (implemented by vod/thumbnails.ts). */
export interface ThumbnailSource {
  get(
    uid: string,
    params: ThumbnailParams,
  ): Promise<
    | { ok: true; body: Buffer | Readable; size: number; contentType: string; cache: 'hit' | 'miss' }
    | { ok: false; status: 400 | 404 | 503; code: string; message: string }
  >;
}

/** Built MP4 downloads (implemented by vod/downloads.ts). */
export interface DownloadFiles {
  /** Size and ETag of a video's ready download; undefined when there is none (yet). */
  readyFile(uid: string): Promise<{ size: number; etag: string } | undefined>;
  /** The bytes, whole or an inclusive range; undefined when the file has gone. */
  read(uid: string, range?: { start: number; end: number }): Promise<Readable | undefined>;
}

export interface DerivedRoutesOptions {
  thumbnails?: ThumbnailSource | undefined;
  downloads?: DownloadFiles | undefined;
  /** The origin's check: the uid the request may play, or undefined once it has answered a refusal. */
  authorize: (req: FastifyRequest, reply: FastifyReply, id: string) => Promise<{ uid: string; mayDownload?: boolean } | undefined>;
  errorReply: (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;
}

// A rendered thumbnail never changes for its URL, but its video can be deleted.
const THUMBNAIL_CACHE = 'public, max-age=3600';
const DOWNLOAD_CACHE = 'private, max-age=3600';

/** `/{id}/thumbnails/thumbnail.{jpg,gif}` and `/{id}/downloads/default.mp4`. */
export function derivedRoutes(app: FastifyInstance, opts: DerivedRoutesOptions): void {
  const { errorReply } = opts;

  app.get<{ Params: { id: string; file: string } }>('/:id/thumbnails/:file', async (req, reply) => {
    const format = req.params.file === 'thumbnail.jpg' ? 'jpg' : req.params.file === 'thumbnail.gif' ? 'gif' : undefined;
    if (format === undefined || !opts.thumbnails) return errorReply(reply, 404, 'NOT_FOUND', 'no such file (thumbnail.jpg or thumbnail.gif)');
    // Parameters first: a malformed request costs no lookup at all.
    const params = parseThumbnailQuery(format, req.query as Record<string, string | string[] | undefined>);
    if (!params.ok) return errorReply(reply, 400, 'BAD_THUMBNAIL_PARAMS', params.message);
    const auth = await opts.authorize(req, reply, req.params.id);
    if (auth === undefined) return reply;
    const got = await opts.thumbnails.get(auth.uid, params.value);
    if (!got.ok) {
      if (got.status === 503) reply.header('retry-after', '2');
      return errorReply(reply, got.status, got.code, got.message);
    }
    return reply
      .type(got.contentType)
      .header('content-length', got.size)
      .header('cache-control', THUMBNAIL_CACHE)
      .header('x-tributary-cache', got.cache)
      .header('x-content-type-options', 'nosniff')
      .send(got.body);
  });

  const serveDownload = async (req: FastifyRequest<{ Params: { id: string; file: string } }>, reply: FastifyReply) => {
    if (req.params.file !== 'default.mp4' || !opts.downloads) return errorReply(reply, 404, 'NOT_FOUND', 'no such download');
    const auth = await opts.authorize(req, reply, req.params.id);
    if (auth === undefined) return reply;
    if (auth.mayDownload === false) {
      return errorReply(reply, 403, 'DOWNLOAD_NOT_ALLOWED', 'this video requires a signed URL whose token has downloadable: true');
    }
    const file = await opts.downloads.readyFile(auth.uid);
    if (!file) return errorReply(reply, 404, 'NOT_FOUND', 'no download of this video is ready (POST /v1/videos/{uid}/downloads)');
    reply
      .header('accept-ranges', 'bytes')
      .header('etag', file.etag)
      .header('cache-control', DOWNLOAD_CACHE)
      .header('content-disposition', `attachment; filename="${auth.uid}.mp4"`)
      .header('access-control-expose-headers', 'Content-Length, Content-Range, Accept-Ranges, ETag, Age');
    if (ifNoneMatchHits(header(req, 'if-none-match'), file.etag)) return reply.code(304).send();

    const rangeHeader = ifRangeMatches(header(req, 'if-range'), file.etag) ? header(req, 'range') : undefined;
    const decision = parseRangeHeader(rangeHeader, file.size);
    if (decision.kind === 'unsatisfiable') {
      return reply
        .code(416)
        .header('content-range', `bytes */${file.size}`)
        .header('cache-control', 'no-cache')
        .type('application/json')
        .send({ success: false, errors: [{ code: 'RANGE_NOT_SATISFIABLE', message: `the file has ${file.size} bytes` }] });
    }
    const range = decision.kind === 'partial' ? { start: decision.start, end: decision.end } : undefined;
    const length = range ? range.end - range.start + 1 : file.size;
    reply.type('video/mp4').header('content-length', length);
    if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`);
    if (req.method === 'HEAD') return reply.send();
    const body = await opts.downloads.read(auth.uid, range);
    if (!body) return errorReply(reply.removeHeader('content-range').removeHeader('content-length'), 404, 'NOT_FOUND', 'the download has gone');
    return reply.send(body);
  };
  // HEAD is its own method here: fastify's automatic HEAD would read the whole file to discard it.
  app.route({ method: ['GET', 'HEAD'], url: '/:id/downloads/:file', handler: serveDownload });
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
