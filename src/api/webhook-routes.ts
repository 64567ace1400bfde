import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_URL_LENGTH, TargetRefusedError, type TargetGuard } from '../webhooks/target-guard.ts';
import type { WebhookStore } from '../webhooks/webhook-store.ts';
import { ApiError } from './errors.ts';
import { commonErrorResponses, Envelope, ErrorEnvelope, ok } from './schemas.ts';

export interface WebhookRoutesOptions {
  store: WebhookStore;
  guard: TargetGuard;
}

const WebhookPut = Type.Object(
  { notificationUrl: Type.String({ minLength: 1, maxLength: MAX_URL_LENGTH, description: 'http(s) URL that receives the events' }) },
  { additionalProperties: false },
);

const Webhook = Type.Object({
  notificationUrl: Type.String(),
  secret: Type.String({ description: 'HMAC-SHA256 key of the Webhook-Signature header' }),
  modified: Type.String({ format: 'date-time' }),
});

const DeliveryAttempt = Type.Object({
  eventId: Type.String({ description: 'The Webhook-Id: the same for every attempt of one event' }),
  eventType: Type.String(),
  subject: Type.String({ description: 'Live input (or video) uid whose events keep their order' }),
  attempt: Type.Integer(),
  outcome: Type.Enum(['delivered', 'retrying', 'failed', 'dropped']),
  responseCode: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Optional(Type.String()),
  durationMs: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  nextAttemptAt: Type.Optional(Type.String({ format: 'date-time' })),
});

const DeliveriesQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) },
  { additionalProperties: false },
);

const TAGS = ['Webhooks'];

/** `/webhook`: the notification URL and its signing secret; `/webhook/deliveries`: recent attempts. */
export async function webhookRoutes(fastify: FastifyInstance, opts: WebhookRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { store, guard } = opts;

  app.put(
    '/webhook',
    {
      schema: {
        summary: 'Set the notification URL; returns a new signing secret',
        tags: TAGS,
        body: WebhookPut,
        response: { 200: Envelope(Webhook), ...commonErrorResponses },
      },
    },
    async (request, reply) => {
      let url: URL;
      try {
        url = await guard.check(request.body.notificationUrl);
      } catch (error) {
        if (!(error instanceof TargetRefusedError)) throw error;
        const code = error.code === 'TARGET_PRIVATE' || error.code === 'TARGET_UNRESOLVABLE' ? 'WEBHOOK_TARGET_REFUSED' : 'WEBHOOK_URL_INVALID';
        throw new ApiError(code, `notificationUrl: ${error.message}`);
      }
      const settings = await store.set(url.href);
      reply.header('cache-control', 'no-store');
      return ok(settings);
    },
  );

  app.get(
    '/webhook',
    {
      schema: {
        summary: 'Get the notification URL and signing secret',
        tags: TAGS,
        response: { 200: Envelope(Webhook), ...commonErrorResponses, 404: ErrorEnvelope },
      },
    },
    async (_request, reply) => {
      const settings = await store.get();
      if (!settings) throw new ApiError('WEBHOOK_NOT_FOUND');
      reply.header('cache-control', 'no-store');
      return ok(settings);
    },
  );

  app.delete(
    '/webhook',
    {
      schema: {
        summary: 'Remove the webhook: no further events are sent (queued ones are dropped)',
        tags: TAGS,
        response: { 200: Envelope(Type.Null()), ...commonErrorResponses, 404: ErrorEnvelope },
      },
    },
    async () => {
      if (!(await store.delete())) throw new ApiError('WEBHOOK_NOT_FOUND');
      return ok(null);
    },
  );

  app.get(
    '/webhook/deliveries',
    {
      schema: {
        summary: 'Recent delivery attempts, newest first',
        tags: TAGS,
        querystring: DeliveriesQuery,
        response: { 200: Envelope(Type.Array(DeliveryAttempt)), ...commonErrorResponses },
      },
    },
    async (request) => ok(await store.deliveries(request.query.limit ?? 100)),
  );
}
