import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidCursorError } from '../state/recency-page.ts';
import { LiveInputInvalidError } from '../state/live-input-record.ts';
import { OutputInvalidError } from '../state/output-record.ts';

/** Every error the API can return: a stable code, its HTTP status and the default message. */
export const API_ERRORS = {
  VALIDATION_FAILED: { status: 400, message: 'The request is not valid' },
  INVALID_JSON: { status: 400, message: 'The request body is not valid JSON' },
  BAD_REQUEST: { status: 400, message: 'Bad request' },
  UNAUTHORIZED: { status: 401, message: 'A valid API key is required (Authorization: Bearer <key>)' },
  TOO_MANY_AUTH_FAILURES: { status: 429, message: 'Too many failed authentications from this address; retry later' },
  NOT_FOUND: { status: 404, message: 'No such route' },
  LIVE_INPUT_NOT_FOUND: { status: 404, message: 'Live input not found' },
  URI_TOO_LONG: { status: 414, message: 'A path segment is too long' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Content-Type must be application/json' },
  STATE_UNAVAILABLE: { status: 503, message: 'The state store is unavailable; retry shortly' },
  INTERNAL: { status: 500, message: 'Internal error' },
  SIGNING_KEY_NOT_FOUND: { status: 404, message: 'Signing key not found' },
  VIDEO_NOT_FOUND: { status: 404, message: 'Video not found' },
  ACCESS_RULES_INVALID: { status: 400, message: 'The access rules are not valid' },
  TOKEN_EXP_INVALID: { status: 400, message: 'The token expiry (exp / nbf) is not valid' },
  OUTPUT_NOT_FOUND: { status: 404, message: 'Output not found' },
  OUTPUT_LIMIT_REACHED: { status: 409, message: 'The live input has the maximum number of outputs' },
  VIDEO_RECORDING: { status: 409, message: 'The video is being recorded; it can be deleted once the broadcast has ended' },
  VIDEO_NOT_READY: { status: 409, message: 'The video is not ready yet' },
  DOWNLOAD_NOT_FOUND: { status: 404, message: 'The video has no download; create one with POST /v1/videos/{uid}/downloads' },
  WEBHOOK_NOT_FOUND: { status: 404, message: 'No webhook is configured' },
  WEBHOOK_URL_INVALID: { status: 400, message: 'The notification URL must be an absolute http(s) URL without credentials' },
  WEBHOOK_TARGET_REFUSED: { status: 400, message: 'The notification URL points at an address webhooks may not reach' },
  UPLOAD_FILE_MISSING: { status: 400, message: 'The upload must be multipart/form-data with the video in a field named "file"' },
  UPLOAD_NOT_A_VIDEO: { status: 415, message: 'The upload is not a video (ERR_NON_VIDEO)' },
  UPLOAD_MALFORMED: { status: 422, message: 'The video is incomplete, corrupt or unsupported (ERR_MALFORMED_VIDEO)' },
  UPLOAD_TOO_LONG: { status: 400, message: 'The video is longer than allowed (ERR_DURATION_EXCEED_CONSTRAINT)' },
  UPLOAD_TOO_SHORT: { status: 400, message: 'The video is too short (ERR_DURATION_TOO_SHORT)' },
  UPLOAD_URL_UNKNOWN: { status: 404, message: 'This upload URL is not known' },
  UPLOAD_URL_EXPIRED: { status: 410, message: 'This upload URL has expired' },
  UPLOAD_URL_USED: { status: 409, message: 'This upload URL has been used already; each one takes one upload' },
  VIDEO_NOT_PENDING: { status: 409, message: 'The video is not waiting for an upload' },
  // Ingest (WHIP): refusals of a publisher.
  WHIP_SDP_INVALID: { status: 400, message: 'The SDP offer is not valid' },
  WHIP_CODECS_UNSUPPORTED: { status: 406, message: 'No codec in the offer is supported' },
  STREAM_KEY_INVALID: { status: 401, message: 'The stream key is not valid for this live input' },
  LIVE_INPUT_DISABLED: { status: 403, message: 'The live input is disabled' },
  LIVE_INPUT_BUSY: { status: 409, message: 'The live input already has a publisher' },
  WHIP_TOO_MANY_PENDING: { status: 429, message: 'Too many sessions are still connecting' },
  WHIP_SESSION_NOT_FOUND: { status: 404, message: 'No such WHIP session' },
  WHIP_ETAG_MISMATCH: { status: 412, message: 'If-Match does not match the session' },
  WHIP_ICE_RESTART_UNSUPPORTED: { status: 422, message: 'ICE restarts are not supported' },
  // Playback (WHEP): refusals of a viewer.
  WHEP_SDP_INVALID: { status: 400, message: 'The SDP offer is not valid' },
  WHEP_CODECS_UNSUPPORTED: { status: 406, message: 'No codec in the offer can be sent (H264 packetization-mode=1 is required)' },
  LIVE_INPUT_NOT_LIVE: { status: 409, message: 'The live input is not live' },
  WHEP_SESSION_NOT_FOUND: { status: 404, message: 'No such WHEP session' },
  NODE_AT_CAPACITY: { status: 503, message: 'The server is at capacity' },
  TOO_MANY_VIEWERS: { status: 429, message: 'This live stream has as many viewers as it may have; retry later' },
  SHUTTING_DOWN: { status: 503, message: 'The server is shutting down' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export interface ErrorBody {
  result: null;
  success: false;
  errors: { code: ApiErrorCode; message: string }[];
  messages: string[];
}

/** Throw from a handler or hook; the error handler turns it into the envelope. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(code: ApiErrorCode, message?: string, opts: { headers?: Record<string, string> } = {}) {
    super(message ?? API_ERRORS[code].message);
    this.name = 'ApiError';
    this.code = code;
    this.status = API_ERRORS[code].status;
    this.headers = opts.headers ?? {};
  }
}

export function errorBody(code: ApiErrorCode, message: string = API_ERRORS[code].message): ErrorBody {
  return { result: null, success: false, errors: [{ code, message }], messages: [] };
}

/** Fastify's own errors, by code, that have a meaning of their own in our table. */
const FASTIFY_CODES: Record<string, ApiErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_REQ_FILE_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'UPLOAD_FILE_MISSING',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
};

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  params?: Record<string, unknown>;
  message?: string;
}

/** "body.recording.timeoutSeconds must be <= 3600; body has unknown field \"foo\"" */
export function formatValidation(context: string | undefined, issues: readonly ValidationIssue[]): string {
  const where = context ?? 'request';
  const parts: string[] = [];
  const seenPaths = new Set<string>();
  for (const issue of issues) {
    // TypeBox reports `additionalProperties: false` twice; the named one is clearer.
    if (issue.keyword === 'boolean') continue;
    const path = where + issue.instancePath.replaceAll('/', '.');
    if (issue.keyword === 'additionalProperties') {
      const extra = issue.params?.['additionalProperties'] ?? issue.params?.['additionalProperty'];
      const names = (Array.isArray(extra) ? extra : [extra]).map((n) => `"${String(n)}"`).join(', ');
      parts.push(`${path} has unknown field ${names}`);
    } else {
      // A union reports one issue per branch; the first per path is enough.
      if (seenPaths.has(path)) continue;
      parts.push(`${path} ${issue.message ?? 'is invalid'}`);
    }
    seenPaths.add(path);
    if (parts.length >= 5) break;
  }
  return parts.length ? parts.join('; ') : `${where} is not valid`;
}

function isTableCode(code: unknown): code is ApiErrorCode {
  return typeof code === 'string' && Object.hasOwn(API_ERRORS, code) && code !== 'INTERNAL';
}

function isStateUnavailable(err: Error): boolean {
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|ECONNREFUSED|ENOENT.*\.sock/.test(err.message)
  );
}

/** Maps any error to the envelope; 5xx details go to the log, never to the client. */
export function handleError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let apiErr: ApiError;
  const fe = err as Partial<FastifyError>;
  if (err instanceof ApiError) {
    apiErr = err;
  } else if (fe.validation) {
    apiErr = new ApiError('VALIDATION_FAILED', formatValidation(fe.validationContext, fe.validation));
  } else if (err instanceof LiveInputInvalidError || err instanceof OutputInvalidError || err instanceof InvalidCursorError) {
    apiErr = new ApiError('VALIDATION_FAILED', err.message);
  } else if (isTableCode(fe.code)) {
    // Errors of other modules (ingest) carry a code of this table and say what went wrong.
    apiErr = new ApiError(fe.code, err.message);
  } else if (fe.code && FASTIFY_CODES[fe.code]) {
    apiErr = new ApiError(FASTIFY_CODES[fe.code] as ApiErrorCode);
  } else if (fe.statusCode === 404) {
    apiErr = new ApiError('NOT_FOUND');
  } else if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's remaining 4xx messages describe the request, not our internals.
    apiErr = new ApiError('BAD_REQUEST', err.message);
  } else if (isStateUnavailable(err)) {
    request.log.error({ err }, 'state store unavailable');
    apiErr = new ApiError('STATE_UNAVAILABLE', undefined, { headers: { 'retry-after': '5' } });
  } else {
    request.log.error({ err }, 'request failed');
    apiErr = new ApiError('INTERNAL');
  }
  if (apiErr.status < 500) request.log.debug({ code: apiErr.code, msg: apiErr.message }, 'request refused');
  return reply.code(apiErr.status).headers(apiErr.headers).send(errorBody(apiErr.code, apiErr.message));
}

/**
 * For the root's `Fastify({ frameworkErrors })` option: errors raised before routing (a path
 * segment over maxParamLength, malformed percent-encoding) never reach a plugin's error handler.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  handleError(err, request, reply);
}

/** Sets the error and not-found handlers on `app` (the root, or an encapsulated plugin). */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
    return reply.code(404).send(errorBody('NOT_FOUND', `No route for ${request.method} ${shown}`));
  });
}
