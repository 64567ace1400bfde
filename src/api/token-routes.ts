import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { TokenRequestError, type TokenSigner } from '../access/token-signer.ts';
import type { LiveInputRepository } from '../state/live-input-repo.ts';
import { TokenCreate, TokenCreated } from './access-schemas.ts';
import { ApiError } from './errors.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok, UidParams } from './schemas.ts';

export interface TokenRoutesOptions {
  liveInputs: LiveInputRepository;
  signer: TokenSigner;
  /** Whether a video uid exists; until videos exist, every video token request is a 404. */
  videoExists?: ((uid: string) => Promise<boolean>) | undefined;
}

const TAGS = ['Signed URLs'];
const responses = { 200: Envelope(TokenCreated), ...commonErrorResponses, 404: ErrorEnvelope };

/** `POST /live_inputs/{uid}/token` and `POST /videos/{uid}/token`: server-side signed tokens. */
export async function tokenRoutes(fastify: FastifyInstance, opts: TokenRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { liveInputs, signer, videoExists } = opts;

  const sign = async (uid: string, body: TokenCreate) => {
    try {
      return ok({ token: await signer.sign(uid, body) });
    } catch (err) {
      if (err instanceof TokenRequestError) throw new ApiError(err.problem, err.message);
      throw err;
    }
  };
  const emptyBody = async (request: { body: unknown }) => {
    request.body ??= {};
  };

  app.post(
    '/live_inputs/:uid/token',
    {
      preValidation: emptyBody,
      schema: {
        summary: 'Sign a playback token for a live input (exp default 1 h, at most 24 h)',
        tags: TAGS,
        params: UidParams,
        body: TokenCreate,
        response: responses,
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!(await liveInputs.get(uid))) throw new ApiError('LIVE_INPUT_NOT_FOUND', `Live input ${uid} not found`);
      return sign(uid, request.body);
    },
  );

  app.post(
    '/videos/:uid/token',
    {
      preValidation: emptyBody,
      schema: {
        summary: 'Sign a playback token for a video (exp default 1 h, at most 24 h)',
        tags: TAGS,
        params: UidParams,
        body: TokenCreate,
        response: responses,
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!videoExists || !(await videoExists(uid))) throw new ApiError('VIDEO_NOT_FOUND', `Video ${uid} not found`);
      return sign(uid, request.body);
    },
  );
}
