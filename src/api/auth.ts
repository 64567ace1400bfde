import type { FastifyRequest } from 'fastify';
import type { ApiKeyStore } from '../state/api-key-store.ts';
import { ApiError } from './errors.ts';

const CHALLENGE = { 'www-authenticate': 'Bearer realm="tributary"' };

/**
 * An onRequest hook that requires `Authorization: Bearer <API key>`. The key is only hashed and
 * compared; it is never logged (pino also redacts the header).
 */
export function bearerAuth(apiKeys: ApiKeyStore): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const header = request.headers.authorization;
    if (!header) throw new ApiError('UNAUTHORIZED', 'Missing Authorization header', { headers: CHALLENGE });
    const match = /^Bearer +([^\s]+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError('UNAUTHORIZED', 'Authorization must be "Bearer <API key>"', { headers: CHALLENGE });
    }
    if (!(await apiKeys.verify(match[1]))) {
      throw new ApiError('UNAUTHORIZED', 'Invalid API key', { headers: CHALLENGE });
    }
  };
}
