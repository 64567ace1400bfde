import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

export interface OpenApiOptions {
  version?: string;
  /** Public base URL, listed as the server in the document. */
  serverUrl?: string;
}

/**
 * OpenAPI 3 at /docs/json and Swagger UI at /docs (assets served from the package, no CDN).
 * Register at the root BEFORE the routes: swagger collects them as they are added.
 */
export async function registerOpenApi(app: FastifyInstance, opts: OpenApiOptions = {}): Promise<void> {
  await app.register(swagger, {
    openapi: {
      // 3.1: TypeBox emits `const` and `type: 'null'`, which 3.0 lacks.
      openapi: '3.1.0',
      info: {
        title: 'Tributary API',
        description: 'Control plane for Tributary live video. Field names follow Cloudflare Stream live inputs.',
        version: opts.version ?? '0.1.0',
      },
      ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key: Authorization: Bearer <key>' },
        },
      },
      tags: [{ name: 'Live inputs', description: 'RTMP / WHIP ingest points' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
}
