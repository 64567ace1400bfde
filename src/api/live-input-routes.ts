import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { LiveInputRecord } from '../state/live-input-record.ts';
import type { LiveInputRepository } from '../state/live-input-repo.ts';
import { ApiError } from './errors.ts';
import {
  commonErrorResponses,
  Envelope,
  ErrorEnvelope,
  LiveInput,
  LiveInputCreate,
  LiveInputList,
  LiveInputListQuery,
  LiveInputUpdate,
  ok,
  UidParams,
  type LiveInputSummary,
  type LiveStatusView,
} from './schemas.ts';

export interface PublicUrls {
  /** RTMP ingest base, e.g. `rtmp://host:1935/live`. */
  rtmp: string;
  /** RTMPS ingest base, e.g. `rtmps://host:1936/live`; absent while RTMPS is off. */
  rtmps?: string;
  /** SRT listener URL, e.g. `srt://host:9000`; absent while SRT is off. */
  srt?: string;
  /** WHIP base, e.g. `https://host/whip`; defaults to `<playbackBase>/whip`. */
  webRTC?: string;
  /** Public base URL of the HTTP origin, e.g. `https://video.example.com`. */
  playbackBase: string;
  /** Base of WHEP playback URLs (`<base>/<uid>/webRTC/play`); absent while WHEP is off. */
  webRTCPlayback?: string;
}

export interface LiveInputRoutesOptions {
  liveInputs: LiveInputRepository;
  publicUrls: PublicUrls;
  /** The live view of a connected input (this node's session, or its owner's in a cluster). */
  liveStatus?: (uid: string) => LiveStatusView | undefined | Promise<LiveStatusView | undefined>;
  /** Told after a successful change, so the live layer can end a session that lost its input. */
  onChange?: (uid: string, change: LiveInputChange, record: LiveInputRecord | undefined) => void;
}

export type LiveInputChange = 'updated' | 'deleted' | 'rotated';

const TAGS = ['Live inputs'];
const withNotFound = { ...commonErrorResponses, 404: ErrorEnvelope };

export async function liveInputRoutes(
  fastify: FastifyInstance,
  opts: LiveInputRoutesOptions,
): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { liveInputs, publicUrls, liveStatus, onChange } = opts;
  // Read per request: the composition root fills in the URLs once the listeners have their ports.
  const whipBase = () => trimSlash(publicUrls.webRTC ?? `${trimSlash(publicUrls.playbackBase)}/whip`);

  // While connected, the live layer's view (with health) is current; the stored history stays.
  const statusOf = async (r: LiveInputRecord) => {
    const live = await liveStatus?.(r.uid);
    if (!live) return r.status;
    return r.status?.history ? { ...live, history: r.status.history } : live;
  };

  const view = async (r: LiveInputRecord): Promise<LiveInput> => ({
    uid: r.uid,
    meta: r.meta,
    enabled: r.enabled,
    recording: r.recording,
    deleteRecordingAfterDays: r.deleteRecordingAfterDays,
    ladder: r.ladder ?? null,
    rtmp: { url: publicUrls.rtmp, streamKey: r.streamKey },
    ...(publicUrls.rtmps ? { rtmps: { url: publicUrls.rtmps, streamKey: r.streamKey } } : {}),
    ...(publicUrls.srt && r.srtPassphrase ? { srt: { url: publicUrls.srt, streamId: r.streamKey, passphrase: r.srtPassphrase } } : {}),
    webRTC: { url: `${whipBase()}/${r.uid}` },
    ...(publicUrls.webRTCPlayback ? { webRTCPlayback: { url: `${trimSlash(publicUrls.webRTCPlayback)}/${r.uid}/webRTC/play` } } : {}),
    status: await statusOf(r),
    created: r.created,
    modified: r.modified,
  });

  const summary = async (r: LiveInputRecord): Promise<LiveInputSummary> => ({
    uid: r.uid,
    meta: r.meta,
    enabled: r.enabled,
    deleteRecordingAfterDays: r.deleteRecordingAfterDays,
    status: await statusOf(r),
    created: r.created,
    modified: r.modified,
  });

  const notFound = (uid: string) => new ApiError('LIVE_INPUT_NOT_FOUND', `Live input ${uid} not found`);

  app.post(
    '/live_inputs',
    {
      // A POST with no body at all creates a live input with every default.
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: 'Create a live input',
        tags: TAGS,
        body: LiveInputCreate,
        response: { 201: Envelope(LiveInput), ...commonErrorResponses },
      },
    },
    async (request, reply) => {
      const record = await liveInputs.create(request.body);
      return reply.code(201).send(ok(await view(record)));
    },
  );

  app.get(
    '/live_inputs',
    {
      schema: {
        summary: 'List live inputs, newest first (without stream keys)',
        tags: TAGS,
        querystring: LiveInputListQuery,
        response: { 200: Envelope(LiveInputList), ...commonErrorResponses },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? 100;
      const page = await liveInputs.list({
        limit,
        ...(request.query.cursor !== undefined ? { cursor: request.query.cursor } : {}),
      });
      return ok({
        liveInputs: await Promise.all(page.items.map(summary)),
        range: limit,
        total: page.total,
        ...(page.nextCursor !== undefined ? { cursor: page.nextCursor } : {}),
      });
    },
  );

  app.get(
    '/live_inputs/:uid',
    {
      schema: {
        summary: 'Get a live input, with its stream key',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(LiveInput), ...withNotFound },
      },
    },
    async (request) => {
      const record = await liveInputs.get(request.params.uid);
      if (!record) throw notFound(request.params.uid);
      return ok(await view(record));
    },
  );

  app.put(
    '/live_inputs/:uid',
    {
      schema: {
        summary: 'Update a live input (partial: meta is replaced, recording fields merge)',
        tags: TAGS,
        params: UidParams,
        body: LiveInputUpdate,
        response: { 200: Envelope(LiveInput), ...withNotFound },
      },
    },
    async (request) => {
      const record = await liveInputs.update(request.params.uid, request.body);
      if (!record) throw notFound(request.params.uid);
      onChange?.(record.uid, 'updated', record);
      return ok(await view(record));
    },
  );

  app.delete(
    '/live_inputs/:uid',
    {
      schema: {
        summary: 'Delete a live input; its stream key stops working at once',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(Type.Null()), ...withNotFound },
      },
    },
    async (request) => {
      if (!(await liveInputs.delete(request.params.uid))) throw notFound(request.params.uid);
      onChange?.(request.params.uid, 'deleted', undefined);
      return ok(null);
    },
  );

  app.post(
    '/live_inputs/:uid/rotate_keys',
    {
      schema: {
        summary: 'Issue a new stream key; the old one stops working at once',
        tags: TAGS,
        params: UidParams,
        response: { 200: Envelope(LiveInput), ...withNotFound },
      },
    },
    async (request) => {
      const record = await liveInputs.rotateKeys(request.params.uid);
      if (!record) throw notFound(request.params.uid);
      onChange?.(record.uid, 'rotated', record);
      return ok(await view(record));
    },
  );
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
