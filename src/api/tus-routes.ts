import { readdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Server as TusServer } from '@tus/server';
import { FileStore } from '@tus/file-store';
import { newUid } from '../state/live-input-record.ts';
import type { UploadIntake } from '../vod/upload-intake.ts';
import { ApiError, errorBody } from './errors.ts';
import { intakeError } from './upload-routes.ts';

/**
 * Resumable uploads over tus 1.0 (@tus/server with its file store), under `/v1/videos/tus`,
 * API key required on every request. The tus upload id is the video uid: the last segment of
 * the Location header (and `stream-media-id` on the finishing PATCH, as Cloudflare sends it). Upload-Metadata
 * keys: `name`, `requiresignedurls`, `maxdurationseconds`. A finished upload goes through the
 * same intake as the other paths; one not finished in time is removed by the intake's sweep.
 */

export interface TusRoutesOptions {
  intake: UploadIntake;
  /** Directory of partial tus uploads. */
  dir: string;
  maxSizeBytes: number;
  maxDurationSeconds: number;
  expirySeconds: number;
  /** Mount path as clients see it, e.g. `/v1/videos/tus`. */
  path: string;
}

type HookError = { status_code: number; body: string };

function hookError(error: unknown): HookError | unknown {
  const mapped = intakeError(error);
  return mapped instanceof ApiError ? { status_code: mapped.status, body: JSON.stringify(errorBody(mapped.code, mapped.message)) } : error;
}

/** Builds the tus server; `removeUpload(uid)` deletes a partial upload's files. */
export function createTusServer(opts: TusRoutesOptions): {
  server: TusServer;
  removeUpload: (uid: string) => Promise<void>;
  removeExpired: () => Promise<void>;
} {
  const datastore = new FileStore({ directory: opts.dir, expirationPeriodInMilliseconds: opts.expirySeconds * 1000 });
  const server = new TusServer({
    path: opts.path,
    datastore,
    maxSize: opts.maxSizeBytes,
    exposedHeaders: ['stream-media-id'],
    namingFunction: () => newUid(),
    onUploadCreate: async (_req, upload) => {
      const meta = upload.metadata ?? {};
      const max = Number(meta['maxdurationseconds'] ?? meta['maxDurationSeconds'] ?? opts.maxDurationSeconds);
      if (!Number.isInteger(max) || max < 1) {
        throw { status_code: 400, body: JSON.stringify(errorBody('VALIDATION_FAILED', 'maxdurationseconds must be a positive integer')) };
      }
      const name = meta['name'];
      await opts.intake.createPending(
        {
          meta: name ? { name: name.slice(0, 1024) } : {},
          requireSignedURLs: meta['requiresignedurls'] !== undefined && meta['requiresignedurls'] !== 'false',
          allowedOrigins: [],
          scheduledDeletion: null,
          maxDurationSeconds: Math.min(max, opts.maxDurationSeconds),
          uploadExpiry: new Date(Date.now() + opts.expirySeconds * 1000),
        },
        upload.id,
      );
      return {};
    },
    onUploadFinish: async (_req, upload) => {
      // Out of the tus store first, so that nothing (expiry, a DELETE) removes it under the intake.
      const file = path.join(opts.dir, `${upload.id}.received`);
      const stored = path.join(opts.dir, upload.id);
      await rename(stored, file);
      // A sparse stand-in of the same size: a client that lost the last PATCH's answer still
      // learns from HEAD that everything arrived. Removed with the upload's expiry.
      await writeFile(stored, '');
      await truncate(stored, upload.size ?? 0);
      try {
        await opts.intake.accept(upload.id, file);
      } catch (error) {
        throw hookError(error);
      }
      return { headers: { 'stream-media-id': upload.id } };
    },
  });
  return {
    server,
    removeUpload: async (uid) => {
      await datastore.remove(uid).catch(() => {});
    },
    // The file store expires unfinished uploads only; finished ones (their stand-ins) go here too.
    removeExpired: async () => {
      const now = Date.now();
      for (const name of await readdir(opts.dir)) {
        const id = name.endsWith('.json') ? name.slice(0, -5) : '';
        if (!/^[0-9a-f]{32}$/.test(id)) continue;
        const info = JSON.parse(await readFile(path.join(opts.dir, name), 'utf8').catch(() => '{}')) as { creation_date?: string };
        const created = info.creation_date ? Date.parse(info.creation_date) : NaN;
        if (Number.isFinite(created) && created + opts.expirySeconds * 1000 < now) await datastore.remove(id).catch(() => {});
      }
    },
  };
}

/** Routes every tus request under `prefix` (inside the API plugin) to the tus server, body unread. */
export async function tusRoutes(fastify: FastifyInstance, opts: { server: TusServer }): Promise<void> {
  // tus reads the raw request itself: no parser may touch the body.
  fastify.addContentTypeParser('application/offset+octet-stream', (_request, _payload, done) => done(null));
  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    await opts.server.handle(request.raw, reply.raw);
  };
  for (const url of ['/videos/tus', '/videos/tus/:id']) {
    fastify.route({
      method: ['POST', 'PATCH', 'HEAD', 'DELETE', 'OPTIONS'],
      url,
      exposeHeadRoute: false,
      schema: { hide: true },
      handler: handle,
    });
  }
}
