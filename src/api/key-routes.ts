import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SigningKeyRepository } from '../state/signing-key-repo.ts';
import { SigningKeyCreate, SigningKeyCreated, SigningKeyParams, SigningKeySummary } from './access-schemas.ts';
import { ApiError } from './errors.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok } from './schemas.ts';

export interface KeyRoutesOptions {
  signingKeys: SigningKeyRepository;
}

const TAGS = ['Signing keys'];

/**
 * `/keys`: create (the private key is in the response and nowhere else, ever), list, revoke.
 * Revoking deletes the public key and announces it on Redis pub/sub in one step, so every node's
 * verifier drops the key and the tokens it signed at once. The deployment's internal signing key
 * (used by `…/token`) is neither listed nor revocable here.
 */
export async function keyRoutes(fastify: FastifyInstance, opts: KeyRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { signingKeys } = opts;

  app.post(
    '/keys',
    {
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: 'Create a signing key; the private key is returned once and never stored',
        tags: TAGS,
        body: SigningKeyCreate,
        response: { 201: Envelope(SigningKeyCreated), ...commonErrorResponses },
      },
    },
    async (request, reply) => {
      const created = await signingKeys.create(request.body.algorithm ?? 'RS256');
      // Secrets in this body: make sure no cache between here and the caller keeps a copy.
      reply.header('cache-control', 'no-store');
      return reply.code(201).send(
        ok({
          id: created.record.id,
          pem: Buffer.from(created.privatePem, 'utf8').toString('base64'),
          jwk: Buffer.from(JSON.stringify(created.privateJwk), 'utf8').toString('base64'),
          algorithm: created.record.algorithm,
          created: created.record.created,
        }),
      );
    },
  );

  app.get(
    '/keys',
    {
      schema: {
        summary: 'List signing keys (ids only, no key material)',
        tags: TAGS,
        response: { 200: Envelope(Type.Array(SigningKeySummary)), ...commonErrorResponses },
      },
    },
    async () => ok((await signingKeys.list()).map((k) => ({ id: k.id, algorithm: k.algorithm, created: k.created }))),
  );

  app.delete(
    '/keys/:id',
    {
      schema: {
        summary: 'Revoke a signing key: every token it signed stops working at once, on every node',
        tags: TAGS,
        params: SigningKeyParams,
        response: { 200: Envelope(Type.Null()), ...commonErrorResponses, 404: ErrorEnvelope },
      },
    },
    async (request) => {
      if (!(await signingKeys.revoke(request.params.id))) {
        throw new ApiError('SIGNING_KEY_NOT_FOUND', `Signing key ${request.params.id} not found`);
      }
      return ok(null);
    },
  );
}
