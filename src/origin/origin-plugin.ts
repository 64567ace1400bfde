import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ASSET_CACHE, embedCsp, embedErrorPage, loadEmbedAssets } from './embed-page.ts';
import { parseHlsQuery } from './hls-query.ts';
import type { HlsStreamView, HoldResult, LivePlayback, PlaybackAccess, VodSource } from './live-playback.ts';
import { derivedRoutes, type DownloadFiles, type ThumbnailSource } from './derived-routes.ts';
import { liveInfoRoutes, playbackSession, type LiveInfo } from './live-info-routes.ts';
import { OwnerUnreachableError, type OwnerProxy } from './owner-proxy.ts';
import { whepRoutes, type WhepService } from './whep-routes.ts';

/** Playback on a node of a cluster: live streams of other nodes are relayed from their owner. */
export interface ClusterPlayback {
  proxy: OwnerProxy;
  /** True when a request carries the cluster's internal credential (its edge node authorized it). */
  isInternal(headers: Record<string, string | string[] | undefined>): boolean;
  /** This node has no origin role: it answers only other nodes' requests for its own streams. */
  internalOnly: boolean;
  /** How long an owner may hold a relayed blocking request, ms. */
  holdMs: number;
}

export interface OriginOptions {
  live: LivePlayback;
  /** Finished videos; asked when no live stream of that id is on this node. */
  vod?: VodSource;
  /** Token, IP/country and allowed-origin checks. Without it every valid uid plays. */
  guard?: PlaybackAccess;
  /** `/{id}/thumbnails/thumbnail.{jpg,gif}` of finished videos. */
  thumbnails?: ThumbnailSource;
  /** `/{id}/downloads/default.mp4`. */
  downloads?: DownloadFiles;
  /**
   * Longest hold of a blocking request before 503, ms. Default: three target durations of the
   * stream (rfc8216bis 6.2.5.2).
   */
  maxHoldMs?: number;
  /** Enables `/{id}/lifecycle` and `/{id}/views`, and counts viewers of live streams. */
  liveInfo?: LiveInfo;
  /** Set on a node of a cluster (several nodes sharing Redis and the object store). */
  cluster?: ClusterPlayback;
  /** WHEP playback (`POST /{id}/webRTC/play`) of live streams on this node. */
  whep?: { service: WhepService; maxSdpBytes: number; tooManyViewersRetryAfterSeconds?: number };
}

// Ids are 32 hex chars (live input or video uid). Rendition names and file names are checked
// against strict patterns before any lookup, so no decoded `..` or `/` ever reaches a store.
const ID = /^[0-9a-f]{32}$/;
const RENDITION = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';

export const CACHE = {
  /**
   * A playlist without delivery directives changes with every part. HTTP ages are whole seconds:
   * one second is the least that still lets a CDN collapse a burst of requests.
   */
  livePlaylist: 'public, max-age=1',
  /**
   * A blocking reload's URL names the part it waited for, so its answer stays right for as long
   * as the parts it lists remain downloadable: three target durations (6.2.2).
   */
  blockingPlaylist: (targetDuration: number) => `public, max-age=${Math.max(1, Math.round(3 * targetDuration))}`,
  endedPlaylist: 'public, max-age=60',
  // A VOD playlist never changes, but its video can be deleted: a CDN may keep it a few minutes.
  vodPlaylist: 'public, max-age=300',
  // Media file names carry a random per-session prefix and never change content.
  media: 'public, max-age=31536000, immutable',
  error: 'no-cache',
  notFound: 'no-cache',
} as const;

/** Why a held request stopped waiting. */
const GONE = new Error('client disconnected');
const TIMEOUT = new Error('blocking request timed out');
const SHUTDOWN = new Error('server shutting down');

/** Gzipped playlists by text: the requests released by one new part all get the same text. */
const GZIP_CACHE_SIZE = 64;

function errorReply(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', status === 404 ? CACHE.notFound : CACHE.error)
    .send({ success: false, errors: [{ code, message }] });
}

function notFound(reply: FastifyReply, message = 'no such stream or file'): FastifyReply {
  return errorReply(reply, 404, 'NOT_FOUND', message);
}

/** What a request may play: the uid, and the asset's allowed origins when it has any. */
interface Authorized {
  uid: string;
  allowedOrigins?: string[] | undefined;
  mayDownload?: boolean | undefined;
}

/**
 * Playback of live streams: `/{id}/manifest/video.m3u8` and everything under it, the embed
 * player `/{id}/iframe` and its static assets under `/assets/`.
 */
export async function originPlugin(app: FastifyInstance, opts: OriginOptions): Promise<void> {
  const held = new Set<AbortController>();
  const gzipCache = new Map<string, Buffer>();
  const embed = loadEmbedAssets();

  // Shutdown must not wait for held requests to time out: answer them now (503, retry elsewhere).
  app.addHook('preClose', async () => {
    for (const controller of held) controller.abort(SHUTDOWN);
  });

  const cluster = opts.cluster;
  const internal = (req: FastifyRequest) => cluster?.isInternal(req.headers) === true;
  if (cluster?.internalOnly) {
    app.addHook('onRequest', async (req, reply) => {
      if (!internal(req)) return errorReply(reply, 404, 'NOT_FOUND', 'this node does not serve playback');
      return undefined;
    });
  }

  app.decorateRequest('reflectOrigin', false);
  app.addHook('onSend', async (req, reply, payload) => {
    // An asset limited to some sites names the (already checked) site; others are public.
    const origin = req.headers.origin;
    if ((req as FastifyRequest & { reflectOrigin: boolean }).reflectOrigin && typeof origin === 'string') {
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'Origin');
    } else {
      reply.header('access-control-allow-origin', '*');
    }
    // A route that exposes more (downloads: Content-Range, ETag) has set its own list.
    if (!reply.hasHeader('access-control-expose-headers')) reply.header('access-control-expose-headers', 'Content-Length, Age');
    return payload;
  });

  /**
   * Resolves the `{id}` segment (a uid or a signed token) to the uid it may play, or answers
   * the refusal itself and returns undefined. A `?token=` on a uid path is moved into the path by
   * a redirect, so that every relative URI below inherits it (players send no custom headers).
   */
  async function authorize(
    req: FastifyRequest,
    reply: FastifyReply,
    id: string,
    deny: (status: number, code: string, message: string) => unknown = (status, code, message) => errorReply(reply, status, code, message),
    /** A token from elsewhere than the query (WHEP's Authorization: Bearer); never redirected. */
    bearer?: string,
  ): Promise<Authorized | undefined> {
    const guard = opts.guard;
    // Another node of the cluster already checked the viewer's rights and resolved the uid.
    if (!guard || internal(req)) {
      if (ID.test(id)) return { uid: id };
      deny(404, 'NOT_FOUND', 'no such stream or file');
      return undefined;
    }
    // fastify has already parsed the query string; only a redirect needs to rebuild it.
    const tokenParam = (req.query as Record<string, string | string[] | undefined>).token;
    const queryToken = bearer ?? (Array.isArray(tokenParam) ? tokenParam[0] : tokenParam);
    let decision;
    try {
      decision = await guard.check({ pathId: id, queryToken, remoteAddress: req.socket.remoteAddress ?? '', headers: req.headers });
    } catch (error) {
      req.log.warn({ err: error }, 'playback check failed');
      deny(503, 'STATE_UNAVAILABLE', 'cannot check playback rights right now');
      return undefined;
    }
    if (!decision.ok) {
      if (decision.retryAfterSeconds !== undefined) reply.header('retry-after', String(decision.retryAfterSeconds));
      deny(decision.status, decision.code, decision.message);
      return undefined;
    }
    (req as FastifyRequest & { reflectOrigin: boolean }).reflectOrigin = decision.originRestricted;
    if (bearer === undefined && queryToken !== undefined && decision.token !== undefined && ID.test(id)) {
      const rawUrl = req.raw.url ?? '';
      const q = rawUrl.indexOf('?');
      const query = new URLSearchParams(rawUrl.slice(q + 1));
      query.delete('token');
      const rest = query.toString();
      const path = rawUrl.slice(0, q).replace(`/${id}/`, `/${encodeURIComponent(decision.token)}/`);
      reply.code(302).header('cache-control', 'private, no-store').header('location', rest ? `${path}?${rest}` : path).send();
      return undefined;
    }
    return { uid: decision.uid, allowedOrigins: decision.allowedOrigins, mayDownload: decision.mayDownload };
  }

  derivedRoutes(app, {
    thumbnails: opts.thumbnails,
    downloads: opts.downloads,
    authorize: (req, reply, id) => authorize(req, reply, id),
    errorReply,
  });

  if (opts.whep) {
    const whep = opts.whep;
    await app.register(whepRoutes, {
      whep: whep.service,
      maxSdpBytes: whep.maxSdpBytes,
      ...(whep.tooManyViewersRetryAfterSeconds !== undefined ? { tooManyViewersRetryAfterSeconds: whep.tooManyViewersRetryAfterSeconds } : {}),
      // The same check as HLS; a token in the query or the Authorization header, never redirected.
      authorize: (req, reply, id, token) => {
        const tokenParam = (req.query as Record<string, string | string[] | undefined>).token;
        const queryToken = Array.isArray(tokenParam) ? tokenParam[0] : tokenParam;
        return authorize(req, reply, id, undefined, token ?? queryToken);
      },
      ...(cluster && !cluster.internalOnly ? { ownerUrl: (uid: string) => cluster.proxy.ownerOf(uid) } : {}),
    });
  }

  // hls.js and the player's script and style, read once at startup; the page names them with a
  // content hash, so they are cached for a year.
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    const file = embed.files.get(req.params.file);
    if (!file) return notFound(reply);
    return reply
      .type(file.contentType)
      .header('cache-control', ASSET_CACHE)
      .header('etag', `"${file.version}"`)
      .header('x-content-type-options', 'nosniff')
      .send(file.body);
  });

  app.get<{ Params: { id: string } }>('/:id/iframe', async (req, reply) => {
    const page = (status: number, body: string, allowedOrigins?: string[]) =>
      reply
        .code(status)
        .type('text/html; charset=utf-8')
        // The page is the same for every id; its frame-ancestors follows the asset's policy.
        .header('cache-control', 'no-cache')
        .header('content-security-policy', embedCsp(allowedOrigins))
        // The path may hold a token: never hand it to another site.
        .header('referrer-policy', 'same-origin')
        .header('x-content-type-options', 'nosniff')
        .send(body);
    const auth = await authorize(req, reply, req.params.id, (status, code) => page(status, embedErrorPage(status, code)));
    if (auth === undefined) return reply;
    return page(200, embed.page, auth.allowedOrigins);
  });

  app.options('/:id/*', async (_req, reply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'GET, HEAD, OPTIONS')
      .header('access-control-allow-headers', 'Range, Origin, Accept')
      .header('access-control-max-age', '86400')
      .send(),
  );

  /**
   * Holds a request until `wait` settles, the client leaves, the hold limit passes or the server
   * shuts down. Returns the wait's result, or the reason it was cut short.
   */
  async function hold(
    req: FastifyRequest,
    reply: FastifyReply,
    stream: HlsStreamView,
    wait: (signal: AbortSignal) => Promise<HoldResult> | undefined,
  ): Promise<HoldResult | Error | undefined> {
    const controller = new AbortController();
    const waiting = wait(controller.signal);
    if (!waiting) return undefined;
    // The response closing before it was sent means the client went away: free its waiter now.
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort(GONE);
    };
    reply.raw.once('close', onClose);
    if (req.raw.destroyed) controller.abort(GONE);
    const timer = setTimeout(() => controller.abort(TIMEOUT), opts.maxHoldMs ?? 3000 * stream.targetDuration);
    held.add(controller);
    try {
      return await waiting;
    } catch (error) {
      if (error === GONE || error === TIMEOUT || error === SHUTDOWN) return error as Error;
      throw error;
    } finally {
      clearTimeout(timer);
      held.delete(controller);
      reply.raw.off('close', onClose);
    }
  }

  function sendPlaylist(req: FastifyRequest, reply: FastifyReply, text: string, cacheControl: string): FastifyReply {
    reply.type(PLAYLIST_TYPE).header('cache-control', cacheControl).header('vary', 'Accept-Encoding');
    // 6.2.1: playlists SHOULD go gzipped to clients that accept it.
    if (!acceptsGzip(req.headers['accept-encoding'])) return reply.send(text);
    let body = gzipCache.get(text);
    if (!body) {
      body = gzipSync(text);
      gzipCache.set(text, body);
      if (gzipCache.size > GZIP_CACHE_SIZE) gzipCache.delete(gzipCache.keys().next().value as string);
    }
    return reply.header('content-encoding', 'gzip').send(body);
  }

  function heldFailed(reply: FastifyReply, outcome: Error): FastifyReply {
    // A client that left gets nothing it could read; the reply only closes out the request.
    if (outcome === SHUTDOWN) return errorReply(reply, 503, 'SHUTTING_DOWN', 'server is shutting down');
    if (outcome === TIMEOUT) return errorReply(reply, 503, 'NOT_YET_AVAILABLE', 'the requested part did not arrive in time');
    return errorReply(reply, 503, 'CLIENT_GONE', 'client disconnected');
  }

  if (opts.liveInfo) liveInfoRoutes(app, opts.liveInfo, (req, reply, id) => authorize(req, reply, id));

  /**
   * An authorized request of a live stream counts its client as a viewer. A relayed request was
   * counted at the edge node the viewer reached, so the owner does not count the edge again.
   */
  function countViewer(req: FastifyRequest, uid: string, stream: HlsStreamView | undefined): void {
    if (stream && !stream.ended && !internal(req)) opts.liveInfo?.touchViewer(uid, playbackSession(req, (req.params as { id: string }).id));
  }

  /**
   * A request that starts a viewer (a playlist without delivery directives) passes the viewer
   * limit, or is answered 429 here (false). Everything an admitted viewer asks next (blocking
   * reloads, parts, segments) is never refused; relayed requests were admitted at the edge.
   */
  async function admitted(req: FastifyRequest, reply: FastifyReply, uid: string): Promise<boolean> {
    const info = opts.liveInfo;
    if (!info?.admitViewer || internal(req)) return true;
    if (await info.admitViewer(uid, playbackSession(req, (req.params as { id: string }).id))) return true;
    reply.header('retry-after', String(info.admitRetryAfterSeconds ?? 15));
    errorReply(reply, 429, 'TOO_MANY_VIEWERS', 'this live stream has as many viewers as it may have; try again later');
    return false;
  }

  /**
   * A live stream held by another node: relays `path` from its owner and returns true (a
   * FastifyReply is thenable, so it is never handed through a promise). False when no other
   * node has it live (or the owner no longer has it): the caller goes on to VOD. Requests from
   * other nodes are never relayed again, so two nodes can never bounce a request between them.
   */
  async function relay(
    req: FastifyRequest,
    reply: FastifyReply,
    id: string,
    path: string,
    kind: 'playlist' | 'media',
    holds: boolean,
    startsViewer = false,
  ): Promise<boolean> {
    if (!cluster || internal(req)) return false;
    let owner: string | undefined;
    try {
      owner = await cluster.proxy.ownerOf(id);
    } catch (error) {
      req.log.warn({ err: error }, 'live stream owner lookup failed');
      errorReply(reply, 503, 'STATE_UNAVAILABLE', 'cannot find the live stream right now');
      return true;
    }
    if (owner === undefined) return false;
    if (startsViewer && !(await admitted(req, reply, id))) return true;
    let answer;
    try {
      answer = await cluster.proxy.fetch(owner, path, holds ? cluster.holdMs : 0);
    } catch (error) {
      cluster.proxy.forget(id);
      if (!(error instanceof OwnerUnreachableError)) throw error;
      req.log.warn({ err: error.cause ?? error, owner, liveInput: id }, 'live stream owner did not answer');
      if (error.timedOut) errorReply(reply, 504, 'OWNER_TIMEOUT', 'the node holding this live stream did not answer in time');
      else errorReply(reply, 502, 'OWNER_UNREACHABLE', 'the node holding this live stream is unreachable');
      return true;
    }
    if (answer.status === 404) return false;
    // A viewer of a stream relayed from its owner is counted here, at the edge it reached.
    if (answer.status === 200) opts.liveInfo?.touchViewer(id, playbackSession(req, (req.params as { id: string }).id));
    if (answer.status === 200 && kind === 'playlist') sendPlaylist(req, reply, answer.body.toString('utf8'), answer.cacheControl);
    else reply.code(answer.status).type(answer.contentType).header('cache-control', answer.cacheControl).send(answer.body);
    return true;
  }

  /** The request's query string without `token` (the edge already used it), with its `?`. */
  function relayQuery(req: FastifyRequest): string {
    const rawUrl = req.raw.url ?? '';
    const q = rawUrl.indexOf('?');
    if (q < 0) return '';
    const query = new URLSearchParams(rawUrl.slice(q + 1));
    query.delete('token');
    const rest = query.toString();
    return rest ? `?${rest}` : '';
  }

  app.get<{ Params: { id: string } }>('/:id/manifest/video.m3u8', async (req, reply) => {
    const id = (await authorize(req, reply, req.params.id))?.uid;
    if (id === undefined) return reply;
    const stream = opts.live.stream(id);
    if (stream && !stream.ended && !(await admitted(req, reply, id))) return reply;
    countViewer(req, id, stream);
    if (!stream) {
      const relayed = await relay(req, reply, id, `/${id}/manifest/video.m3u8`, 'playlist', false, true);
      if (relayed) return reply;
      const vodText = await opts.vod?.masterPlaylist(id);
      if (vodText !== undefined) return sendPlaylist(req, reply, vodText, CACHE.vodPlaylist);
    }
    const text = stream?.masterPlaylist();
    if (!stream || text === undefined) return notFound(reply, 'stream is not live');
    return sendPlaylist(req, reply, text, stream.ended ? CACHE.endedPlaylist : CACHE.livePlaylist);
  });

  app.get<{ Params: { id: string; rendition: string; file: string } }>(
    '/:id/manifest/:rendition/:file',
    async (req, reply) => {
      const { rendition, file } = req.params;
      if (!RENDITION.test(rendition) || !FILE.test(file) || file.includes('..')) return notFound(reply);
      const id = (await authorize(req, reply, req.params.id))?.uid;
      if (id === undefined) return reply;
      if (file.endsWith('.m3u8')) return mediaPlaylist(req, reply, id, rendition);

      const stream = opts.live.stream(id);
      countViewer(req, id, stream);
      if (!stream) {
        // Only the preload-hinted part is held; other media answers at once.
        const relayed = await relay(req, reply, id, `/${id}/manifest/${rendition}/${file}`, 'media', true);
        if (relayed) return reply;
        const vod = await opts.vod?.resource(id, rendition, file);
        if (!vod) return notFound(reply, 'no such stream, video or file');
        return reply
          .type(vod.contentType)
          .header('content-length', vod.size)
          .header('cache-control', CACHE.media)
          .send(vod.body);
      }
      let resource = stream.resource(rendition, file);
      if (!resource) {
        // The preload-hinted part: held until it is complete, then sent whole (6.2.6).
        const outcome = await hold(req, reply, stream, (signal) => stream.waitForPart(rendition, file, signal));
        if (outcome instanceof Error) return heldFailed(reply, outcome);
        if (outcome !== undefined) resource = stream.resource(rendition, file);
      }
      if (!resource) return notFound(reply);
      return reply.type(resource.contentType).header('cache-control', CACHE.media).send(resource.body);
    },
  );

  async function mediaPlaylist(req: FastifyRequest, reply: FastifyReply, id: string, rendition: string) {
    const rawUrl = req.raw.url ?? '';
    const q = rawUrl.indexOf('?');
    const parsed = parseHlsQuery(q >= 0 ? rawUrl.slice(q + 1) : '');
    if (!parsed.ok) return errorReply(reply, 400, 'BAD_DELIVERY_DIRECTIVE', parsed.message);
    const { msn, part, skip } = parsed.directives;

    const stream = opts.live.stream(id);
    // A player starts with a plain playlist; its blocking reloads after that are never refused.
    const startsViewer = msn === undefined;
    if (startsViewer && stream && !stream.ended && !(await admitted(req, reply, id))) return reply;
    countViewer(req, id, stream);
    if (!stream) {
      const relayed = await relay(req, reply, id, `/${id}/manifest/${rendition}/${(req.params as { file: string }).file}${relayQuery(req)}`, 'playlist', msn !== undefined, startsViewer);
      if (relayed) return reply;
      // A finished video: delivery directives do not apply to a VOD playlist.
      const vodText = await opts.vod?.mediaPlaylist(id, rendition);
      if (vodText !== undefined) return sendPlaylist(req, reply, vodText, CACHE.vodPlaylist);
      return notFound(reply, 'stream is not live');
    }
    let blocking = false;
    if (msn !== undefined) {
      const state = stream.blockingState(rendition, msn, part);
      if (state === undefined) return notFound(reply);
      if (state === 'too-far') {
        return errorReply(reply, 400, 'BAD_DELIVERY_DIRECTIVE', 'the requested segment or part is too far ahead');
      }
      if (state === 'wait') {
        const outcome = await hold(req, reply, stream, (signal) => stream.waitForPlaylist(rendition, msn, part, signal));
        if (outcome instanceof Error) return heldFailed(reply, outcome);
      }
      blocking = true;
    }
    const text = stream.mediaPlaylist(rendition, skip);
    if (text === undefined) return notFound(reply);
    const cacheControl = stream.ended
      ? CACHE.endedPlaylist
      : blocking
        ? CACHE.blockingPlaylist(stream.targetDuration)
        : CACHE.livePlaylist;
    return sendPlaylist(req, reply, text, cacheControl);
  }
}

/** Accept-Encoding allows gzip: listed (or `*`) with a non-zero q. */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  let star = false;
  for (const item of value.split(',')) {
    const [coding = '', ...params] = item.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    const accepted = Number.isFinite(q) && q > 0;
    if (coding.trim() === 'gzip' || coding.trim() === 'x-gzip') return accepted;
    if (coding.trim() === '*') star = accepted;
  }
  return star;
}
