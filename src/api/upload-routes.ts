import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { LiveInputMeta } from '../state/live-input-record.ts';
import type { UploadTokenRepository } from '../state/upload-token-repo.ts';
import { UploadRejectedError } from '../vod/upload-probe.ts';
import { VideoNotPendingError, type UploadIntake } from '../vod/upload-intake.ts';
import { ApiError, type ApiErrorCode } from './errors.ts';
import type { PublicUrls } from './live-input-routes.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok } from './schemas.ts';
import { Video, videoView } from './video-routes.ts';

/**
 * Uploads: `POST /videos` (multipart, one step), `POST /videos/direct_upload` (a one-time URL
 * for a browser, Cloudflare's direct creator upload) and, outside the API key, `POST
 * /upload/<token>` which that URL points at. tus lives in tus-routes.ts.
 */

export interface UploadRoutesOptions {
  intake: UploadIntake;
  tokens: UploadTokenRepository;
  publicUrls: PublicUrls;
  maxSizeBytes: number;
  maxDurationSeconds: number;
  directUploadExpirySeconds: number;
  directUploadMinExpirySeconds: number;
  /** How long a multipart upload's video may stay pending should the server stop mid-way. */
  pendingExpirySeconds: number;
}

/** Room for the multipart boundaries and part headers around the file. */
const MULTIPART_OVERHEAD = 64 * 1024;
const MAX_EXPIRY_MS = 6 * 3600_000;
const TAGS = ['Videos'];

const REJECTIONS: Record<UploadRejectedError['reasonCode'], ApiErrorCode> = {
  ERR_NON_VIDEO: 'UPLOAD_NOT_A_VIDEO',
  ERR_MALFORMED_VIDEO: 'UPLOAD_MALFORMED',
  ERR_DURATION_EXCEED_CONSTRAINT: 'UPLOAD_TOO_LONG',
  ERR_DURATION_TOO_SHORT: 'UPLOAD_TOO_SHORT',
};

/** Maps what the intake throws to the API's errors; anything else passes through. */
export function intakeError(error: unknown): unknown {
  if (error instanceof UploadRejectedError) return new ApiError(REJECTIONS[error.reasonCode], `${error.message} (${error.reasonCode})`);
  if (error instanceof VideoNotPendingError) return new ApiError('VIDEO_NOT_PENDING');
  return error;
}

/**
 * 413 from the declared size alone, before a byte of the body is read; the connection is closed
 * rather than drained.
 */
export function refuseDeclaredOversize(maxSizeBytes: number, overhead: number) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxSizeBytes + overhead) {
      reply.header('connection', 'close');
      throw new ApiError('BODY_TOO_LARGE', `The upload declares ${declared} bytes; uploads are limited to ${maxSizeBytes} bytes`);
    }
  };
}

/** Streams the multipart field `file` to a new file under incoming/; returns its path. */
async function receiveFile(request: FastifyRequest, reply: FastifyReply, intake: UploadIntake, maxSizeBytes: number): Promise<string> {
  if (!request.isMultipart()) throw new ApiError('UPLOAD_FILE_MISSING');
  const part = await request.file({ limits: { fileSize: maxSizeBytes, files: 1, fields: 20, fieldSize: 64 * 1024 } });
  if (part?.fieldname !== 'file') {
    part?.file.resume();
    throw new ApiError('UPLOAD_FILE_MISSING');
  }
  const dest = intake.incomingPath();
  try {
    await pipeline(part.file, createWriteStream(dest));
    if (part.file.truncated) throw new ApiError('BODY_TOO_LARGE', `The upload is larger than ${maxSizeBytes} bytes`);
    return dest;
  } catch (error) {
    // The rest of the body is not worth reading: answer, then close the connection.
    reply.header('connection', 'close');
    await rm(dest, { force: true });
    throw error;
  }
}


const DirectUploadRequest = Type.Object(
  {
    maxDurationSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'Longest video accepted through this URL' })),
    expiry: Type.Optional(Type.String({ format: 'date-time', description: 'When the URL stops working: 2 min (configurable) to 6 h ahead; default 30 min' })),
    meta: Type.Optional(LiveInputMeta),
    requireSignedURLs: Type.Optional(Type.Boolean()),
    allowedOrigins: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 64 })),
    scheduledDeletion: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])),
  },
  { additionalProperties: false },
);

const DirectUploadResult = Type.Object({
  uploadURL: Type.String({ description: 'POST multipart/form-data (field "file") here, once, without an API key' }),
  uid: Type.String(),
  scheduledDeletion: Type.Union([Type.String(), Type.Null()]),
});


/** `/videos` upload routes, inside the API plugin (API key required). */
export async function uploadRoutes(fastify: FastifyInstance, opts: UploadRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  await app.register(multipart, { throwFileSizeLimit: true });
  const { intake, tokens, publicUrls } = opts;

  app.post(
    '/videos',
    {
      onRequest: refuseDeclaredOversize(opts.maxSizeBytes, MULTIPART_OVERHEAD),
      schema: {
        summary: 'Upload a video (multipart/form-data, field "file"); it is probed, then queued for processing',
        tags: TAGS,
        consumes: ['multipart/form-data'],
        response: { 200: Envelope(Video), ...commonErrorResponses, 413: ErrorEnvelope, 415: ErrorEnvelope, 422: ErrorEnvelope },
      },
    },
    async (request, reply) => {
      const file = await receiveFile(request, reply, intake, opts.maxSizeBytes);
      try {
        const pending = await intake.createPending({
          meta: {},
          requireSignedURLs: false,
          allowedOrigins: [],
          scheduledDeletion: null,
          maxDurationSeconds: null,
          uploadExpiry: new Date(Date.now() + opts.pendingExpirySeconds * 1000),
        });
        return ok(videoView(publicUrls, await intake.accept(pending.uid, file, { discardOnReject: true })));
      } catch (error) {
        await rm(file, { force: true });
        throw intakeError(error);
      }
    },
  );

  app.post(
    '/videos/direct_upload',
    {
      schema: {
        summary: 'A one-time upload URL for a browser (direct creator upload); the video waits in pendingupload',
        tags: TAGS,
        body: DirectUploadRequest,
        response: { 200: Envelope(DirectUploadResult), ...commonErrorResponses },
      },
    },
    async (request) => {
      const body = request.body;
      const now = Date.now();
      const expiry = body.expiry !== undefined ? new Date(body.expiry) : new Date(now + opts.directUploadExpirySeconds * 1000);
      const min = opts.directUploadMinExpirySeconds;
      if (expiry.getTime() < now + min * 1000 || expiry.getTime() > now + MAX_EXPIRY_MS) {
        throw new ApiError('VALIDATION_FAILED', `body.expiry must be between ${min} seconds and 6 hours from now`);
      }
      const record = await intake.createPending({
        meta: body.meta ?? {},
        requireSignedURLs: body.requireSignedURLs ?? false,
        allowedOrigins: body.allowedOrigins ?? [],
        scheduledDeletion: body.scheduledDeletion ?? null,
        maxDurationSeconds: Math.min(body.maxDurationSeconds ?? opts.maxDurationSeconds, opts.maxDurationSeconds),
        uploadExpiry: expiry,
      });
      const token = await tokens.create(record.uid, expiry);
      return ok({
        uploadURL: `${publicUrls.playbackBase.replace(/\/+$/, '')}/upload/${token}`,
        uid: record.uid,
        scheduledDeletion: record.scheduledDeletion,
      });
    },
  );
}

const TokenParams = Type.Object({ token: Type.String({ maxLength: 128 }) });
const CLAIM_ERRORS = { unknown: 'UPLOAD_URL_UNKNOWN', expired: 'UPLOAD_URL_EXPIRED', used: 'UPLOAD_URL_USED' } as const;

/** `POST /upload/<token>`: where a direct upload URL points; the token is the credential. */
export async function directUploadTargetRoutes(fastify: FastifyInstance, opts: UploadRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.removeAllContentTypeParsers();
  await app.register(multipart, { throwFileSizeLimit: true });
  const { intake, tokens } = opts;
  // Browsers post here from the creator's site: the token is the credential, no cookies are involved.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('access-control-allow-origin', '*');
  });
  app.options('/upload/:token', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST, OPTIONS')
      .header('access-control-allow-headers', 'content-type')
      .header('access-control-max-age', '600')
      .send(),
  );
  app.post(
    '/upload/:token',
    {
      onRequest: refuseDeclaredOversize(opts.maxSizeBytes, MULTIPART_OVERHEAD),
      schema: {
        summary: 'Upload through a direct upload URL (multipart/form-data, field "file"); no API key',
        tags: TAGS,
        params: TokenParams,
        consumes: ['multipart/form-data'],
        security: [],
        response: {
          200: Envelope(Type.Object({ uid: Type.String(), status: Type.Object({ state: Type.String() }, { additionalProperties: true }) })),
          ...commonErrorResponses,
          404: ErrorEnvelope,
          409: ErrorEnvelope,
          410: ErrorEnvelope,
          413: ErrorEnvelope,
          415: ErrorEnvelope,
          422: ErrorEnvelope,
        },
      },
    },
    async (request, reply) => {
      // The URL is used up by this attempt, before the body is read: one URL, one upload.
      const claim = await tokens.claim(request.params.token);
      if (!claim.ok) throw new ApiError(CLAIM_ERRORS[claim.reason]);
      const file = await receiveFile(request, reply, intake, opts.maxSizeBytes);
      try {
        const record = await intake.accept(claim.videoUid, file);
        return ok({ uid: record.uid, status: record.status });
      } catch (error) {
        throw intakeError(error);
      }
    },
  );
}
