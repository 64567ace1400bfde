import { InvalidKeyError } from './errors.ts';

/** Longest key accepted (S3 allows 1024 bytes; our keys are ASCII, so bytes = chars). */
export const MAX_KEY_LENGTH = 1024;
/** Longest segment: a segment becomes a file or directory name in the disk store. */
export const MAX_SEGMENT_LENGTH = 200;

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Throws InvalidKeyError unless `key` is `[A-Za-z0-9._-]+` segments joined by single `/`,
 * with no `.` or `..` segment, no leading or trailing `/`, at most MAX_KEY_LENGTH chars.
 * The same rule makes a key a safe relative path on disk and a plain S3 key.
 */
export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError('object key must be a non-empty string');
  if (key.length > MAX_KEY_LENGTH) throw new InvalidKeyError(`object key longer than ${MAX_KEY_LENGTH} characters`);
  for (const segment of key.split('/')) {
    if (segment === '') throw new InvalidKeyError(`object key has an empty segment: ${describe(key)}`);
    if (segment === '.' || segment === '..') throw new InvalidKeyError(`object key has a "${segment}" segment: ${describe(key)}`);
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw new InvalidKeyError(`object key segment longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
    if (!SEGMENT.test(segment)) throw new InvalidKeyError(`object key has characters outside [A-Za-z0-9._-]: ${describe(key)}`);
  }
}

/**
 * A prefix for list/deletePrefix: a valid key, optionally followed by `/`. Matching is by string
 * prefix, as in S3 (`vod/ab` matches `vod/abc/x`). The empty prefix is allowed only if `allowEmpty`.
 */
export function assertValidPrefix(prefix: unknown, allowEmpty: boolean): asserts prefix is string {
  if (prefix === '' && allowEmpty) return;
  if (typeof prefix !== 'string' || prefix === '') throw new InvalidKeyError('prefix must be a non-empty string');
  assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

export function isValidKey(key: unknown): key is string {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

// Keys in messages are shortened and stripped of control characters so a hostile key cannot
// flood or forge log lines.
function describe(key: string): string {
  const clean = key.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 80 ? `${clean.slice(0, 80)}…` : clean);
}
