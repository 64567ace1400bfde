import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { errorBody } from '../api/errors.ts';
import type { Metrics } from './metrics.ts';

/**
 * Counts every request a listener answers, by route pattern (`/:id/manifest/:rendition/:file`,
 * never the raw URL, so the label set stays bounded; `unmatched` for 404s without a route).
 * Register on the root instance: hooks there see every plugin's routes.
 */
export function instrumentHttp(http: FastifyInstance, metrics: Metrics): void {
  http.addHook('onResponse', async (request, reply) => {
    metrics.httpRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
}

export interface MetricsRouteOptions {
  metrics: Metrics;
  /** When set, scrapes must send `Authorization: Bearer <token>`. */
  token?: string | undefined;
}

const CHALLENGE = 'Bearer realm="metrics"';

/** `GET /metrics`: the Prometheus text exposition, optionally behind a bearer token. */
export function metricsRoute(http: FastifyInstance, opts: MetricsRouteOptions): void {
  const expected = opts.token ? digest(opts.token) : undefined;
  http.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (expected) {
      const match = /^Bearer +(\S+)\s*$/i.exec(request.headers.authorization ?? '');
      // Compared as digests: constant time, whatever the lengths.
      if (!match?.[1] || !timingSafeEqual(digest(match[1]), expected)) {
        return reply
          .code(401)
          .header('www-authenticate', CHALLENGE)
          .header('cache-control', 'no-store')
          .send(errorBody('UNAUTHORIZED', 'A valid metrics token is required (Authorization: Bearer <metrics.token>)'));
      }
    }
    const text = await opts.metrics.render();
    return reply.type(opts.metrics.contentType).header('cache-control', 'no-store').send(text);
  });
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
