import type { FastifyRequest } from 'fastify';
import type { ApiKeyStore } from '../state/api-key-store.ts';
import type { AuthFailureLimiter } from '../access/auth-failure-limiter.ts';
import { ApiError } from './errors.ts';

const CHALLENGE = { 'www-authenticate': 'Bearer realm="tributary"' };

/**
 * An onRequest hook that requires `Authorization: Bearer <API key>`. The key is only hashed and
 * compared; it is never logged (pino also redacts the header).
 */
export interface BearerAuthLimits {
  limiter: AuthFailureLimiter;
  /** The client's address (behind trusted proxies: from X-Forwarded-For). */
  clientIp: (request: FastifyRequest) => string;
}

export function bearerAuth(apiKeys: ApiKeyStore, limits?: BearerAuthLimits): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const ip = limits?.clientIp(request) ?? '';
    const retryAfter = limits?.limiter.retryAfterSeconds(ip) ?? 0;
    if (retryAfter > 0) {
      throw new ApiError('TOO_MANY_AUTH_FAILURES', undefined, { headers: { 'retry-after': String(retryAfter) } });
    }
    try {
      await check(request);
    } catch (error) {
      const refused = error instanceof ApiError && error.code === 'UNAUTHORIZED';
      if (refused && limits?.limiter.fail(ip)) request.log.warn({ client: ip }, 'API client blocked after repeated authentication failures');
      throw error;
    }
  };

  async function check(request: FastifyRequest): Promise<void> {
    const header = request.headers.authorization;
    if (!header) throw new ApiError('UNAUTHORIZED', 'Missing Authorization header', { headers: CHALLENGE });
    const match = /^Bearer +([^\s]+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError('UNAUTHORIZED', 'Authorization must be "Bearer <API key>"', { headers: CHALLENGE });
    }
    if (!(await apiKeys.verify(match[1]))) {
      throw new ApiError('UNAUTHORIZED', 'Invalid API key', { headers: CHALLENGE });
    }
  }
}
