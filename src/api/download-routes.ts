import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { DownloadRecord } from '../state/download-repo.ts';
import type { VideoRepository } from '../state/video-repo.ts';
import { ApiError } from './errors.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok, UidParams } from './schemas.ts';
import type { PublicUrls } from './live-input-routes.ts';

/** The MP4 downloads a route needs (implemented by vod/downloads.ts). */
export interface DownloadControl {
  get(uid: string): Promise<DownloadRecord | undefined>;
  create(uid: string): Promise<DownloadRecord>;
  delete(uid: string): Promise<boolean>;
}

export interface DownloadRoutesOptions {
  videos: VideoRepository;
  downloads: DownloadControl;
  publicUrls: PublicUrls;
}

const Download = Type.Object({
  status: Type.Enum(['inprogress', 'ready', 'error']),
  url: Type.String({ description: 'Where the MP4 is served (a signed video: put a token with downloadable: true in place of the uid)' }),
  percentComplete: Type.Number({ minimum: 0, maximum: 100 }),
});
const Downloads = Type.Object({ default: Download });

const TAGS = ['Videos'];
const responses = { 200: Envelope(Downloads), ...commonErrorResponses, 404: ErrorEnvelope, 409: ErrorEnvelope };

/** Cloudflare's `/videos/{uid}/downloads`: create (POST), state (GET), remove (DELETE) the MP4 download. */
export async function downloadRoutes(fastify: FastifyInstance, opts: DownloadRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { videos, downloads, publicUrls } = opts;
  const view = (uid: string, r: DownloadRecord) => ({
    default: {
      status: r.status,
      url: `${publicUrls.playbackBase.replace(/\/+$/, '')}/${uid}/downloads/default.mp4`,
      percentComplete: r.percentComplete,
    },
  });
  const video = async (uid: string) => {
    const record = await videos.get(uid);
    if (!record) throw new ApiError('VIDEO_NOT_FOUND', `Video ${uid} not found`);
    return record;
  };

  app.post(
    '/videos/:uid/downloads',
    {
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: 'Build an MP4 download of a video (remuxed, not re-encoded)',
        tags: TAGS,
        params: UidParams,
        body: Type.Object({}, { additionalProperties: false }),
        response: responses,
      },
    },
    async (request) => {
      const { uid } = request.params;
      const record = await video(uid);
      if (record.status.state !== 'ready') throw new ApiError('VIDEO_NOT_READY', `Video ${uid} is ${record.status.state}; a download needs a ready video`);
      return ok(view(uid, await downloads.create(uid)));
    },
  );

  app.get(
    '/videos/:uid/downloads',
    { schema: { summary: "A video's MP4 download and its progress", tags: TAGS, params: UidParams, response: responses } },
    async (request) => {
      const { uid } = request.params;
      await video(uid);
      const record = await downloads.get(uid);
      if (!record) throw new ApiError('DOWNLOAD_NOT_FOUND');
      return ok(view(uid, record));
    },
  );

  app.delete(
    '/videos/:uid/downloads',
    {
      schema: {
        summary: "Delete a video's MP4 download",
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(Type.Null()), ...commonErrorResponses, 404: ErrorEnvelope },
      },
    },
    async (request) => {
      const { uid } = request.params;
      await video(uid);
      if (!(await downloads.delete(uid))) throw new ApiError('DOWNLOAD_NOT_FOUND');
      return ok(null);
    },
  );
}
