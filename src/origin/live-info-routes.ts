import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** What `/{id}/lifecycle` answers (Cloudflare Stream's shape), plus what `/views` needs. */
export interface Lifecycle {
  /** The id is a live input (not a video). */
  isInput: boolean;
  /** The video being recorded (for an input), or the video itself; null when none. */
  videoUID: string | null;
  /** A broadcast is on right now. */
  live: boolean;
  /** The live input whose viewers count for this id (none for an upload). */
  liveInputUid: string | null;
  hideLiveViewerCount: boolean;
}

/** The origin's view of live inputs and their audiences (implemented over Redis). */
export interface LiveInfo {
  lifecycle(uid: string): Promise<Lifecycle | undefined>;
  /** Counts a playback request of a live input's stream (throttled, fire and forget). */
  touchViewer(liveInputUid: string, session: string): void;
  /**
   * Whether a playback session may start watching a live stream (the per-stream viewer limit);
   * an admitted session is counted. Absent: every session may.
   */
  admitViewer?(liveInputUid: string, session: string): Promise<boolean>;
  /** Retry-After of a refused viewer, seconds. */
  admitRetryAfterSeconds?: number;
  viewers(liveInputUid: string): Promise<number>;
}

type Authorize = (req: FastifyRequest, reply: FastifyReply, id: string) => Promise<{ uid: string } | undefined>;

const CACHE = 'public, max-age=1';

/**
 * A playback session: the token (each viewer's page usually mints its own), else the client's
 * address and user agent. Hashed, so neither is kept.
 */
export function playbackSession(req: FastifyRequest, pathId: string): string {
  const basis = /^[0-9a-f]{32}$/.test(pathId)
    ? `${req.socket.remoteAddress ?? ''}|${String(req.headers['user-agent'] ?? '')}`
    : `t|${pathId}`;
  return createHash('sha256').update(basis).digest('base64url').slice(0, 22);
}

/** `/{id}/lifecycle` and `/{id}/views`: public, under the same playback checks as the stream. */
export function liveInfoRoutes(app: FastifyInstance, info: LiveInfo, authorize: Authorize): void {
  const fail = (reply: FastifyReply, status: number, code: string, message: string) =>
    reply.code(status).header('cache-control', 'no-cache').send({ success: false, errors: [{ code, message }] });

  app.get<{ Params: { id: string } }>('/:id/lifecycle', async (req, reply) => {
    const uid = (await authorize(req, reply, req.params.id))?.uid;
    if (uid === undefined) return reply;
    const lifecycle = await info.lifecycle(uid);
    if (!lifecycle) return fail(reply, 404, 'NOT_FOUND', 'no such video or live input');
    const { isInput, videoUID, live } = lifecycle;
    return reply.header('cache-control', CACHE).send({ isInput, videoUID, live });
  });

  app.get<{ Params: { id: string } }>('/:id/views', async (req, reply) => {
    const uid = (await authorize(req, reply, req.params.id))?.uid;
    if (uid === undefined) return reply;
    const lifecycle = await info.lifecycle(uid);
    if (!lifecycle) return fail(reply, 404, 'NOT_FOUND', 'no such video or live input');
    if (lifecycle.hideLiveViewerCount) return fail(reply, 403, 'VIEWER_COUNT_HIDDEN', 'the live viewer count of this input is hidden');
    const liveViewers = lifecycle.liveInputUid && lifecycle.live ? await info.viewers(lifecycle.liveInputUid) : 0;
    return reply.header('cache-control', CACHE).send({ liveViewers });
  });
}
