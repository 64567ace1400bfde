import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { LiveInputRepository } from '../state/live-input-repo.ts';
import { META_MAX_BYTES } from '../state/live-input-record.ts';
import { VideoRecordSchema, type VideoRecord, type VideoRepository } from '../state/video-repo.ts';
import { ApiError } from './errors.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok, UidParams } from './schemas.ts';
import type { PublicUrls } from './live-input-routes.ts';

export interface VideoRoutesOptions {
  videos: VideoRepository;
  liveInputs: LiveInputRepository;
  publicUrls: PublicUrls;
  /** Removes every object of a video from storage. */
  deleteMedia: (uid: string) => Promise<void>;
  /** True while this node is recording into the video (it cannot be deleted then). */
  isRecording?: (uid: string) => boolean;
  /** Told after a video was deleted (caches drop it). */
  onDeleted?: (uid: string) => void;
  /** Told after a video was changed (the playback policy cache drops it). */
  onUpdated?: (uid: string) => void;
}

/** A video as the API shows it: the record plus its playback URL. */
export const Video = Type.Intersect([
  VideoRecordSchema,
  Type.Object({
    playback: Type.Object({ hls: Type.String({ description: 'HLS master playlist URL' }) }),
    thumbnail: Type.String({ description: 'Default thumbnail (JPEG) URL, taken at thumbnailTimestampPct' }),
    thumbnailTimestampPct: Type.Number(),
  }),
]);
export type Video = Static<typeof Video>;

/** Cloudflare's `POST /videos/{uid}`: the fields a user may change. */
const VideoUpdate = Type.Object(
  {
    meta: Type.Optional(VideoRecordSchema.properties.meta),
    requireSignedURLs: Type.Optional(Type.Boolean()),
    allowedOrigins: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 100 })),
    scheduledDeletion: Type.Optional(
      Type.Union([Type.String({ format: 'date-time', maxLength: 40 }), Type.Null()], {
        description: 'When the video is deleted (ISO 8601; a past time: at the next sweep); null keeps it',
      }),
    ),
    thumbnailTimestampPct: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);

/** Years of scheduledDeletion accepted: a typo of a century is refused rather than kept forever. */
const MAX_SCHEDULE_MS = 10 * 366 * 86_400_000;

const VideoListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
});

const VideoList = Type.Object({
  videos: Type.Array(Video),
  range: Type.Integer({ description: 'The page size used' }),
  total: Type.Integer(),
  cursor: Type.Optional(Type.String({ description: 'Pass as ?cursor= for the next page; absent on the last' })),
});

const TAGS = ['Videos'];
const withNotFound = { ...commonErrorResponses, 404: ErrorEnvelope };

/** The API's (and webhooks') view of a video record: the stored fields plus its public URLs. */
export function videoView(publicUrls: Pick<PublicUrls, 'playbackBase'>, r: VideoRecord): Video {
  const base = publicUrls.playbackBase.replace(/\/+$/, '');
  return {
    ...r,
    playback: { hls: `${base}/${r.uid}/manifest/video.m3u8` },
    thumbnail: `${base}/${r.uid}/thumbnails/thumbnail.jpg`,
    thumbnailTimestampPct: r.thumbnailTimestampPct ?? 0,
  };
}

export async function videoRoutes(fastify: FastifyInstance, opts: VideoRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { videos, liveInputs, publicUrls } = opts;
  const view = (r: VideoRecord): Video => videoView(publicUrls, r);
  const notFound = (uid: string) => new ApiError('VIDEO_NOT_FOUND', `Video ${uid} not found`);
  app.get(
    '/videos',
    {
      schema: {
        summary: 'List videos, newest first',
        tags: TAGS,
        querystring: VideoListQuery,
        response: { 200: Envelope(VideoList), ...commonErrorResponses },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? 100;
      const cursor = request.query.cursor;
      const result = await videos.list({ limit, ...(cursor !== undefined ? { cursor } : {}) });
      return ok({
        videos: result.items.map(view),
        range: limit,
        total: result.total,
        ...(result.nextCursor !== undefined ? { cursor: result.nextCursor } : {}),
      });
    },
  );

  app.get(
    '/videos/:uid',
    {
      schema: {
        summary: 'Get a video',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(Video), ...withNotFound },
      },
    },
    async (request) => {
      const record = await videos.get(request.params.uid);
      if (!record) throw notFound(request.params.uid);
      return ok(view(record));
    },
  );

  app.post(
    '/videos/:uid',
    {
      schema: {
        summary: 'Change a video: meta, signed URLs, allowed origins, scheduled deletion, default thumbnail time',
        tags: TAGS,
        params: UidParams,
        body: VideoUpdate,
        response: { 200: Envelope(Video), ...withNotFound },
      },
    },
    async (request) => {
      const { uid } = request.params;
      const body = request.body;
      if (typeof body.scheduledDeletion === 'string') {
        const at = Date.parse(body.scheduledDeletion);
        if (!Number.isFinite(at) || at > Date.now() + MAX_SCHEDULE_MS) {
          throw new ApiError('VALIDATION_FAILED', 'body.scheduledDeletion must be a date-time within ten years from now');
        }
      }
      if (body.meta !== undefined && Buffer.byteLength(JSON.stringify(body.meta)) > META_MAX_BYTES) {
        throw new ApiError('VALIDATION_FAILED', `body.meta must be at most ${META_MAX_BYTES} bytes as JSON`);
      }
      const record = await videos.update(uid, (r) => {
        const next: VideoRecord = { ...r };
        if (body.meta !== undefined) next.meta = body.meta;
        if (body.requireSignedURLs !== undefined) next.requireSignedURLs = body.requireSignedURLs;
        if (body.allowedOrigins !== undefined) next.allowedOrigins = body.allowedOrigins;
        if (body.scheduledDeletion !== undefined) {
          next.scheduledDeletion = body.scheduledDeletion === null ? null : new Date(body.scheduledDeletion).toISOString();
        }
        if (body.thumbnailTimestampPct !== undefined) next.thumbnailTimestampPct = body.thumbnailTimestampPct;
        return next;
      });
      if (!record) throw notFound(uid);
      opts.onUpdated?.(uid);
      return ok(view(record));
    },
  );

  app.delete(
    '/videos/:uid',
    {
      schema: {
        summary: 'Delete a video and its media',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(Type.Null()), ...withNotFound, 409: ErrorEnvelope },
      },
    },
    async (request) => {
      const { uid } = request.params;
      const record = await videos.get(uid);
      if (!record) throw notFound(uid);
      if (record.status.state === 'live-inprogress' && opts.isRecording?.(uid)) throw new ApiError('VIDEO_RECORDING');
      // Media first: a failure leaves the record, so the delete can be retried.
      await opts.deleteMedia(uid);
      if (!(await videos.delete(uid))) throw notFound(uid);
      opts.onDeleted?.(uid);
      return ok(null);
    },
  );

  app.get(
    '/live_inputs/:uid/videos',
    {
      schema: {
        summary: "A live input's recordings: the one in progress first, then the past ones, newest first",
        tags: ['Live inputs'],
        params: UidParams,
        response: {
          200: Envelope(Type.Array(Video)),
          ...commonErrorResponses,
          404: ErrorEnvelope,
        },
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!(await liveInputs.get(uid))) throw new ApiError('LIVE_INPUT_NOT_FOUND', `Live input ${uid} not found`);
      const result = await videos.listByLiveInput(uid, { limit: 1000 });
      const live = result.items.filter((v) => v.status.state === 'live-inprogress');
      const past = result.items.filter((v) => v.status.state !== 'live-inprogress');
      return ok([...live, ...past].map(view));
    },
  );
}
