import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

/**
 * The web console at `/console/`: three static files read once at startup. It is a plain client
 * of the public REST API (the user's API key stays in the browser's sessionStorage), and plays
 * previews with the hls.js the origin serves under `/assets/`.
 */

const FILES = {
  '': { file: 'index.html', type: 'text/html; charset=utf-8' },
  'console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  'console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
} as const;

// Only this origin; MSE media arrives as blob:. No framing: the page holds an API key.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "media-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export async function consolePlugin(app: FastifyInstance): Promise<void> {
  const dir = import.meta.dirname;
  const bodies = new Map<string, { body: Buffer; type: string }>();
  for (const [name, { file, type }] of Object.entries(FILES)) bodies.set(name, { body: readFileSync(path.join(dir, file)), type });

  // Relative URLs in the page (console.js, ../v1, ../assets) need the trailing slash.
  app.get('/console', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/', 301));
  app.get<{ Params: { file: string } }>('/console/:file', { schema: { hide: true } }, async (req, reply) => {
    const entry = bodies.get(req.params.file);
    if (!entry) {
      return reply.code(404).send({ result: null, success: false, errors: [{ code: 'NOT_FOUND', message: 'No such console file' }], messages: [] });
    }
    return reply
      .type(entry.type)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'same-origin')
      .send(entry.body);
  });
  app.get('/console/', { schema: { hide: true } }, async (_req, reply) => {
    const entry = bodies.get('')!;
    return reply
      .type(entry.type)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'same-origin')
      .header('x-frame-options', 'DENY')
      .send(entry.body);
  });
}
