import type { FastifyInstance } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { ApiKeyStore } from '../state/api-key-store.ts';
import type { LiveInputRepository } from '../state/live-input-repo.ts';
import type { SigningKeyRepository } from '../state/signing-key-repo.ts';
import type { TokenSigner } from '../access/token-signer.ts';
import { bearerAuth, type BearerAuthLimits } from './auth.ts';
import { registerErrorHandling } from './errors.ts';
import { keyRoutes } from './key-routes.ts';
import { tokenRoutes } from './token-routes.ts';
import { liveInputRoutes, type LiveInputRoutesOptions, type PublicUrls } from './live-input-routes.ts';
import type { LiveStatusView } from './schemas.ts';
import { videoRoutes, type VideoRoutesOptions } from './video-routes.ts';
import { outputRoutes, type OutputRoutesOptions } from './output-routes.ts';
import { downloadRoutes, type DownloadControl } from './download-routes.ts';
import { webhookRoutes, type WebhookRoutesOptions } from './webhook-routes.ts';
import { uploadRoutes, type UploadRoutesOptions } from './upload-routes.ts';
import { tusRoutes } from './tus-routes.ts';
import type { Server as TusServer } from '@tus/server';

export type { PublicUrls } from './live-input-routes.ts';
export type { LiveStatusView } from './schemas.ts';

export interface ApiPluginOptions {
  liveInputs: LiveInputRepository;
  apiKeys: ApiKeyStore;
  /** Blocks addresses that keep presenting wrong API keys. */
  authLimits?: BearerAuthLimits;
  publicUrls: PublicUrls;
  /** Optional hook from the live layer: the current state of a connected input. */
  liveStatus?: (uid: string) => LiveStatusView | undefined | Promise<LiveStatusView | undefined>;
  onChange?: LiveInputRoutesOptions['onChange'];
  /** Enables `/keys` (create / list / revoke signing keys). */
  signingKeys?: SigningKeyRepository;
  /** Enables `POST /live_inputs/{uid}/token` and `POST /videos/{uid}/token`. */
  tokens?: { signer: TokenSigner; videoExists?: (uid: string) => Promise<boolean> };
  /** Enables `/videos` and `/live_inputs/{uid}/videos`. */
  videos?: Omit<VideoRoutesOptions, 'liveInputs' | 'publicUrls'>;
  /** Enables `/live_inputs/{uid}/outputs` (simulcast). */
  outputs?: OutputRoutesOptions;
  /** Enables `/videos/{uid}/downloads` (needs `videos`). */
  downloads?: DownloadControl;
  /** Enables `/webhook` and `/webhook/deliveries`. */
  webhooks?: WebhookRoutesOptions;
  /** Enables `POST /videos` (multipart), `POST /videos/direct_upload` and tus under `/videos/tus`. */
  uploads?: { routes: Omit<UploadRoutesOptions, 'publicUrls'>; tus: TusServer };
}

export const API_BODY_LIMIT = 64 * 1024;

/**
 * The REST control plane, as an encapsulated plugin: register with `{ prefix: '/v1' }`, after
 * registerOpenApi() so that its routes are documented.
 */
export async function apiPlugin(app: FastifyInstance, opts: ApiPluginOptions): Promise<void> {
  // TypeBox's own validator, not the root's Ajv: Ajv's defaults (removeAdditional, coerceTypes)
  // would silently drop unknown fields and coerce "true" to true in bodies.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  registerErrorHandling(app);

  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= API_BODY_LIMIT;
    if (route.schema) {
      (route.schema as Record<string, unknown>)['security'] ??= [{ bearerAuth: [] }];
    }
  });

  // JSON only: text/plain (fastify's other default) would otherwise reach validation as a string.
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: API_BODY_LIMIT }, (request, body, done) => {
    // Clients often send the header with no body on POSTs that need none (rotate_keys).
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') return done(null, undefined);
    parseJson(request, text, done);
  });

  app.addHook('onRequest', bearerAuth(opts.apiKeys, opts.authLimits));

  await app.register(liveInputRoutes, {
    liveInputs: opts.liveInputs,
    publicUrls: opts.publicUrls,
    ...(opts.liveStatus ? { liveStatus: opts.liveStatus } : {}),
    ...(opts.onChange ? { onChange: opts.onChange } : {}),
  });
  if (opts.videos) {
    await app.register(videoRoutes, { ...opts.videos, liveInputs: opts.liveInputs, publicUrls: opts.publicUrls });
    if (opts.downloads) {
      await app.register(downloadRoutes, { videos: opts.videos.videos, downloads: opts.downloads, publicUrls: opts.publicUrls });
    }
  }
  if (opts.outputs) await app.register(outputRoutes, opts.outputs);
  if (opts.webhooks) await app.register(webhookRoutes, opts.webhooks);
  if (opts.uploads) {
    await app.register(uploadRoutes, { ...opts.uploads.routes, publicUrls: opts.publicUrls });
    await app.register(tusRoutes, { server: opts.uploads.tus });
  }
  if (opts.signingKeys) await app.register(keyRoutes, { signingKeys: opts.signingKeys });
  if (opts.tokens) {
    await app.register(tokenRoutes, {
      liveInputs: opts.liveInputs,
      signer: opts.tokens.signer,
      videoExists: opts.tokens.videoExists,
    });
  }
}
