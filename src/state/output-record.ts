import { randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { parseStoredRecord, UID_PATTERN } from './live-input-record.ts';

/**
 * A simulcast output of a live input (Cloudflare Stream's "outputs"): where to restream the
 * source while the input is live. The pure part: schema, URL rules, building and patching.
 */

export const OUTPUT_URL_MAX = 1024;
export const OUTPUT_STREAM_KEY_MAX = 512;
export const OUTPUT_SCHEMES = ['rtmp:', 'rtmps:', 'srt:'] as const;
export type OutputScheme = (typeof OUTPUT_SCHEMES)[number];

// Printable ASCII without spaces: nothing that could split an FFmpeg argument, a log line or a URL.
const PRINTABLE = /^[\x21-\x7e]*$/;

const OutputRecordSchema = Type.Object({
  uid: Type.String({ pattern: UID_PATTERN }),
  liveInput: Type.String({ pattern: UID_PATTERN }),
  url: Type.String({ maxLength: OUTPUT_URL_MAX }),
  streamKey: Type.String({ maxLength: OUTPUT_STREAM_KEY_MAX }),
  enabled: Type.Boolean(),
  created: Type.String(),
  modified: Type.String(),
});
export type OutputRecord = Static<typeof OutputRecordSchema>;

export interface OutputChanges {
  url?: string;
  streamKey?: string;
  enabled?: boolean;
}

const checkRecord = Compile(OutputRecordSchema);

/** An output that breaks a rule (bad scheme, credentials in the URL…): the caller's fault. */
export class OutputInvalidError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'OutputInvalidError';
    this.field = field;
  }
}

/** The URL's problem in words, or undefined when it is an acceptable restream target. */
export function outputUrlProblem(url: string): string | undefined {
  if (url.length === 0) return 'url is required';
  if (url.length > OUTPUT_URL_MAX) return `url must be at most ${OUTPUT_URL_MAX} characters`;
  if (!PRINTABLE.test(url)) return 'url must not contain spaces or control characters';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'url is not a valid URL';
  }
  if (!(OUTPUT_SCHEMES as readonly string[]).includes(parsed.protocol)) {
    return `url scheme must be rtmp://, rtmps:// or srt:// (got ${JSON.stringify(parsed.protocol.slice(0, 20))})`;
  }
  if (!parsed.hostname) return 'url must name a host';
  if (parsed.username || parsed.password) return 'url must not carry credentials; put the secret in streamKey';
  if (parsed.hash) return 'url must not have a #fragment';
  if (parsed.protocol === 'srt:' && !parsed.port) return 'an srt:// url must name a port';
  if (parsed.protocol !== 'srt:' && parsed.search) return 'an rtmp(s):// url must not have a query; put it in streamKey';
  return undefined;
}

export function outputStreamKeyProblem(streamKey: string): string | undefined {
  if (streamKey.length > OUTPUT_STREAM_KEY_MAX) return `streamKey must be at most ${OUTPUT_STREAM_KEY_MAX} characters`;
  if (!PRINTABLE.test(streamKey)) return 'streamKey must not contain spaces or control characters';
  return undefined;
}

export function newOutputUid(): string {
  return randomBytes(16).toString('hex');
}

export function buildOutput(liveInput: string, changes: Required<Pick<OutputChanges, 'url'>> & OutputChanges, now: Date): OutputRecord {
  const at = now.toISOString();
  const record: OutputRecord = {
    uid: newOutputUid(),
    liveInput,
    url: changes.url,
    streamKey: changes.streamKey ?? '',
    enabled: changes.enabled ?? true,
    created: at,
    modified: at,
  };
  assertValidOutput(record);
  return record;
}

export function applyOutputChanges(record: OutputRecord, changes: OutputChanges, now: Date): OutputRecord {
  const next: OutputRecord = {
    ...record,
    ...(changes.url !== undefined ? { url: changes.url } : {}),
    ...(changes.streamKey !== undefined ? { streamKey: changes.streamKey } : {}),
    ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
    modified: now.toISOString(),
  };
  assertValidOutput(next);
  return next;
}

function assertValidOutput(record: OutputRecord): void {
  const urlProblem = outputUrlProblem(record.url);
  if (urlProblem) throw new OutputInvalidError('url', urlProblem);
  const keyProblem = outputStreamKeyProblem(record.streamKey);
  if (keyProblem) throw new OutputInvalidError('streamKey', keyProblem);
}

/** Parses a stored record; a corrupt one is a CorruptRecordError naming the key. */
export function parseOutput(key: string, raw: string): OutputRecord {
  return parseStoredRecord<OutputRecord>(key, raw, checkRecord);
}
