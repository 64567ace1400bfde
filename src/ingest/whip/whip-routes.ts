import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { originAllowed } from '../../access/allowed-origins.ts';
import { WhipError, type WhipIngest } from './whip-ingest.ts';

export interface WhipRoutesOptions {
  ingest: WhipIngest;
  /** Browser origins allowed to publish (CORS); `*` allows all. */
  allowedOrigins: string[];
  /** Largest SDP offer or trickle fragment accepted. */
  maxSdpBytes: number;
}

const UID_RE = /^[0-9a-f]{32}$/;
const STREAM_KEY_RE = /^sk_[0-9a-f]{64}$/;
const SESSION_RE = /^[0-9a-f]{32}$/;
const SDP_TYPE = 'application/sdp';
const TRICKLE_TYPE = 'application/trickle-ice-sdpfrag';

interface InputParams {
  id: string;
}
interface SessionParams {
  id: string;
  session: string;
}

/**
 * WHIP (RFC 9725) over HTTP: `POST /whip/<uid>` with `Authorization: Bearer <streamKey>`, or
 * `POST /whip/<streamKey>`, answers 201 with the SDP answer; the session resource at
 * `/whip/<uid>/sessions/<id>` takes PATCH (trickle ICE) and DELETE. Errors use the API table.
 */
export async function whipRoutes(app: FastifyInstance, opts: WhipRoutesOptions): Promise<void> {
  const { ingest } = opts;
  // Every body arrives as text; the handlers check the type (so a wrong one gets a WHIP message).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: opts.maxSdpBytes }, (_req, body, done) => done(null, body));

  const cors = (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (!origin) return;
    if (opts.allowedOrigins.includes('*')) reply.header('access-control-allow-origin', '*');
    else if (originAllowed(opts.allowedOrigins, origin)) reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
    reply.header('access-control-expose-headers', 'Location, ETag, Accept-Patch, Link');
  };
  app.addHook('onRequest', async (request, reply) => cors(request, reply));

  const preflight = async (request: FastifyRequest, reply: FastifyReply) => {
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST, PATCH, DELETE, OPTIONS')
      .header('access-control-allow-headers', 'Authorization, Content-Type, If-Match')
      .header('access-control-max-age', '86400')
      .header('accept-post', SDP_TYPE);
    return reply.send();
  };
  app.options('/whip/:id', { schema: { hide: true } }, preflight);
  app.options('/whip/:id/sessions/:session', { schema: { hide: true } }, preflight);

  app.post<{ Params: InputParams; Body: string }>('/whip/:id', { schema: { hide: true } }, async (request, reply) => {
    const { id } = request.params;
    const bearer = bearerToken(request.headers.authorization);
    let liveInputUid: string | undefined;
    let streamKey: string;
    if (STREAM_KEY_RE.test(id)) {
      streamKey = id;
    } else if (UID_RE.test(id)) {
      liveInputUid = id;
      if (!bearer) throw new WhipError('STREAM_KEY_INVALID', 'the stream key is required (Authorization: Bearer <streamKey>)');
      streamKey = bearer;
    } else {
      throw new WhipError('WHIP_SESSION_NOT_FOUND', 'no live input at this URL');
    }
    checkType(request, SDP_TYPE);
    const sdp = typeof request.body === 'string' ? request.body : '';
    if (sdp.trim() === '') throw new WhipError('WHIP_SDP_INVALID', 'the body is empty; POST an SDP offer');
    const { session, answer } = await ingest.publish({ liveInputUid, streamKey, sdp, remoteAddress: request.ip });
    const location = `/whip/${session.liveInputUid}/sessions/${session.id}`;
    return reply
      .code(201)
      .type(SDP_TYPE)
      .header('location', location)
      .header('etag', session.etag)
      .header('accept-patch', TRICKLE_TYPE)
      .send(answer);
  });

  app.patch<{ Params: SessionParams; Body: string }>('/whip/:id/sessions/:session', { schema: { hide: true } }, async (request, reply) => {
    const { id, session } = sessionParams(request.params);
    checkType(request, TRICKLE_TYPE);
    const fragment = typeof request.body === 'string' ? request.body : '';
    ingest.patch(id, session, headerValue(request.headers['if-match']), fragment);
    return reply.code(204).send();
  });

  app.delete<{ Params: SessionParams }>('/whip/:id/sessions/:session', { schema: { hide: true } }, async (request, reply) => {
    const { id, session } = sessionParams(request.params);
    await ingest.end(id, session);
    return reply.code(200).send();
  });
}

function sessionParams(params: SessionParams): SessionParams {
  if (!UID_RE.test(params.id) || !SESSION_RE.test(params.session)) throw new WhipError('WHIP_SESSION_NOT_FOUND', 'no such WHIP session');
  return params;
}

function checkType(request: FastifyRequest, expected: string): void {
  const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== expected) throw new UnsupportedType(expected);
}

/** 415 through the API table (its code is UNSUPPORTED_MEDIA_TYPE), with the type WHIP wants. */
class UnsupportedType extends Error {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
  constructor(expected: string) {
    super(`Content-Type must be ${expected}`);
  }
}

function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S{1,256})$/i.exec(header?.trim() ?? '');
  return m?.[1];
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
