import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** What the WHEP routes need from the playback side (implemented by whep/WhepPlayback). */
export interface WhepService {
  /**
   * Answers a viewer's offer for a live input; throws an error whose `code` is in the API
   * table (WHEP_SDP_INVALID, WHEP_CODECS_UNSUPPORTED, LIVE_INPUT_NOT_LIVE, NODE_AT_CAPACITY…).
   */
  play(req: { liveInputUid: string; sdp: string; remoteAddress: string }): Promise<{ viewer: { id: string; etag: string }; answer: string }>;
  /** True when the input's live session is on this node. */
  isLive(liveInputUid: string): boolean;
  /** DELETE of a viewer; throws WHEP_SESSION_NOT_FOUND for an unknown one. */
  end(liveInputUid: string, viewerId: string): Promise<void>;
}

export interface WhepRoutesOptions {
  whep: WhepService;
  maxSdpBytes: number;
  /**
   * The origin's own access check (token, IP/country rules, allowed origins), exactly as for HLS;
   * answers the refusal itself and returns undefined. `token` is a bearer token from the
   * Authorization header; no redirect is ever answered to a POST.
   */
  authorize: (req: FastifyRequest, reply: FastifyReply, id: string, token: string | undefined) => Promise<{ uid: string } | undefined>;
  /** In a cluster: the advertised URL of the node that holds this input's live session, if another. */
  ownerUrl?: (liveInputUid: string) => Promise<string | undefined>;
  /** Retry-After sent with TOO_MANY_VIEWERS (the per-stream viewer limit), seconds. */
  tooManyViewersRetryAfterSeconds?: number;
}

const ID = /^[0-9a-f]{32}$/;
const VIEWER = /^[0-9a-f]{32}$/;
const SDP_TYPE = 'application/sdp';

/** 415 through the API table, naming the type WHEP wants. */
class UnsupportedType extends Error {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  constructor() {
    super(`Content-Type must be ${SDP_TYPE}`);
  }
}

class WhepRouteError extends Error {
  readonly code: 'WHEP_SDP_INVALID' | 'WHEP_SESSION_NOT_FOUND';
  constructor(code: 'WHEP_SDP_INVALID' | 'WHEP_SESSION_NOT_FOUND', message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * WHEP (draft-ietf-wish-whep): `POST /{id}/webRTC/play` with an SDP offer answers 201 with the
 * SDP answer and a Location; DELETE on the Location ends playback. `{id}` is a live input uid or
 * a signed token, checked as for HLS; a token may also come as `Authorization: Bearer`. The
 * viewer resource is named by the uid and an unguessable id, so DELETE works after the token
 * expires. ICE-lite with every candidate in the answer: no trickle (PATCH is 405).
 */
export async function whepRoutes(app: FastifyInstance, opts: WhepRoutesOptions): Promise<void> {
  // Bodies arrive as text; the handler checks the type (a wrong one gets a WHEP message).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: opts.maxSdpBytes }, (_req, body, done) => done(null, body));

  const preflight = async (_req: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST, DELETE, OPTIONS')
      .header('access-control-allow-headers', 'Authorization, Content-Type, If-Match')
      .header('access-control-max-age', '86400')
      .header('accept-post', SDP_TYPE)
      .send();
  app.options('/:id/webRTC/play', { schema: { hide: true } }, preflight);
  app.options('/:id/webRTC/play/:viewer', { schema: { hide: true } }, preflight);

  app.post<{ Params: { id: string }; Body: string }>('/:id/webRTC/play', { schema: { hide: true } }, async (req, reply) => {
    const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
    if (type !== SDP_TYPE) throw new UnsupportedType();
    const sdp = typeof req.body === 'string' ? req.body : '';
    if (sdp.trim() === '') throw new WhepRouteError('WHEP_SDP_INVALID', 'the body is empty; POST an SDP offer');
    const bearer = /^Bearer\s+(\S{1,4096})$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
    const auth = await opts.authorize(req, reply, req.params.id, bearer);
    if (!auth) return reply;
    const uid = auth.uid;
    if (!opts.whep.isLive(uid) && opts.ownerUrl) {
      // Another node ingests it: WHEP clients follow a 307 with the same method and body.
      const owner = await opts.ownerUrl(uid);
      if (owner) return reply.code(307).header('cache-control', 'no-store').header('location', `${owner.replace(/\/$/, '')}/${encodeURIComponent(req.params.id)}/webRTC/play`).send();
    }
    const { viewer, answer } = await opts.whep.play({ liveInputUid: uid, sdp, remoteAddress: req.ip }).catch((error: unknown) => {
      if ((error as { code?: unknown }).code === 'TOO_MANY_VIEWERS') reply.header('retry-after', String(opts.tooManyViewersRetryAfterSeconds ?? 15));
      throw error;
    });
    return reply
      .code(201)
      .type(SDP_TYPE)
      .header('cache-control', 'no-store')
      .header('location', `/${uid}/webRTC/play/${viewer.id}`)
      .header('etag', viewer.etag)
      .header('access-control-expose-headers', 'Location, ETag, Link')
      .send(answer);
  });

  app.patch('/:id/webRTC/play/:viewer', { schema: { hide: true } }, async (_req, reply) =>
    // Every candidate is in the answer and the server is ICE-lite: nothing to trickle.
    reply.code(405).header('allow', 'DELETE, OPTIONS').send({ success: false, errors: [{ code: 'METHOD_NOT_ALLOWED', message: 'trickle ICE and ICE restarts are not supported; every candidate is in the answer' }] }),
  );

  app.delete<{ Params: { id: string; viewer: string } }>('/:id/webRTC/play/:viewer', { schema: { hide: true } }, async (req, reply) => {
    const { id, viewer } = req.params;
    if (!ID.test(id) || !VIEWER.test(viewer)) throw new WhepRouteError('WHEP_SESSION_NOT_FOUND', 'no such WHEP session');
    await opts.whep.end(id, viewer);
    return reply.code(200).header('cache-control', 'no-store').send();
  });
}
