import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { LiveInputRepository } from '../state/live-input-repo.ts';
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
}

/** A video as the API shows it: the record plus its playback URL. */
export const Video = Type.Intersect([
  VideoRecordSchema,
  Type.Object({
    playback: Type.Object({ hls: Type.String({ description: 'HLS master playlist URL' }) }),
  }),
]);
export type Video = Static<typeof Video>;

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

export async function videoRoutes(fastify: FastifyInstance, opts: VideoRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { videos, liveInputs, publicUrls } = opts;
  const base = () => publicUrls.playbackBase.replace(/\/+$/, '');
  const view = (r: VideoRecord): Video => ({ ...r, playback: { hls: `${base()}/${r.uid}/manifest/video.m3u8` } });
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
