import { describe, expect, it } from 'vitest';
import { resolveRange } from '../../../src/storage/disk-store.ts';
import { InvalidKeyError, StorageQuotaError, StorageRangeError, toStorageError } from '../../../src/storage/errors.ts';
import { assertValidKey, assertValidPrefix, isValidKey, MAX_KEY_LENGTH } from '../../../src/storage/keys.ts';

describe('object keys', () => {
  it.each([
    'a',
    'live/abc123/720p/seg-000001.m4s',
    'vod/x_y-z/index.m3u8',
    '.hidden',
    '..a',
    'a..b/c',
    'x'.repeat(200),
    `${'abcdefghi/'.repeat(102)}abc`, // 1023 chars
  ])('accepts %s', (key) => {
    expect(() => assertValidKey(key)).not.toThrow();
  });

  it.each([
    ['empty', ''],
    ['parent segment', '../x'],
    ['parent segment inside', 'a/../b'],
    ['dot segment', 'a/./b'],
    ['absolute', '/abs'],
    ['empty segment', 'a//b'],
    ['trailing slash', 'a/'],
    ['NUL byte', 'a\0b'],
    ['space', 'a b'],
    ['backslash', 'a\\b'],
    ['percent', '%2e%2e/x'],
    ['non-ASCII', 'vidéo'],
    ['newline', 'a\nb'],
    ['2000 characters', 'x/'.repeat(999) + 'xx'],
    ['segment too long', 'x'.repeat(201)],
    ['not a string', 42],
  ])('rejects %s', (_name, key) => {
    expect(() => assertValidKey(key)).toThrow(InvalidKeyError);
    expect(isValidKey(key)).toBe(false);
  });

  it('bounds the length at MAX_KEY_LENGTH', () => {
    const base = 'abcdefghi/'.repeat(102); // 1020 chars
    expect(isValidKey(base + 'x'.repeat(MAX_KEY_LENGTH - base.length))).toBe(true);
    expect(isValidKey(base + 'x'.repeat(MAX_KEY_LENGTH - base.length + 1))).toBe(false);
  });

  it('gives the error a stable code and keeps control characters out of the message', () => {
    try {
      assertValidKey('a\nFAKE LOG LINE/\u001b[31m');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidKeyError);
      expect((err as InvalidKeyError).code).toBe('ERR_STORAGE_INVALID_KEY');
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).not.toContain('\u001b');
    }
  });

  it('accepts prefixes with or without a trailing slash, and the empty prefix only where allowed', () => {
    expect(() => assertValidPrefix('vod/abc/', false)).not.toThrow();
    expect(() => assertValidPrefix('vod/ab', false)).not.toThrow();
    expect(() => assertValidPrefix('', true)).not.toThrow();
    expect(() => assertValidPrefix('', false)).toThrow(InvalidKeyError);
    expect(() => assertValidPrefix('/', true)).toThrow(InvalidKeyError);
    expect(() => assertValidPrefix('../', true)).toThrow(InvalidKeyError);
    expect(() => assertValidPrefix('a//', true)).toThrow(InvalidKeyError);
  });
});

describe('resolveRange', () => {
  it('clamps the end to the object and keeps it inclusive', () => {
    expect(resolveRange({ start: 0 }, 10)).toEqual({ start: 0, end: 9 });
    expect(resolveRange({ start: 2, end: 5 }, 10)).toEqual({ start: 2, end: 5 });
    expect(resolveRange({ start: 2, end: 500 }, 10)).toEqual({ start: 2, end: 9 });
    expect(resolveRange({ start: 9, end: 9 }, 10)).toEqual({ start: 9, end: 9 });
  });

  it.each([
    [{ start: 10 }, 10],
    [{ start: 0 }, 0],
    [{ start: -1 }, 10],
    [{ start: 5, end: 4 }, 10],
    [{ start: 1.5 }, 10],
  ])('rejects %j on a %i-byte object', (range, size) => {
    expect(() => resolveRange(range, size)).toThrow(StorageRangeError);
  });
});

describe('toStorageError', () => {
  it('turns ENOSPC and EDQUOT into StorageQuotaError and passes anything else through', () => {
    const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    const quota = toStorageError(enospc, 'writing x');
    expect(quota).toBeInstanceOf(StorageQuotaError);
    expect((quota as StorageQuotaError).code).toBe('ERR_STORAGE_QUOTA_EXHAUSTED');
    expect((quota as StorageQuotaError).cause).toBe(enospc);
    expect(toStorageError(Object.assign(new Error('q'), { code: 'EDQUOT' }), 'x')).toBeInstanceOf(StorageQuotaError);
    const eio = Object.assign(new Error('io'), { code: 'EIO' });
    expect(toStorageError(eio, 'x')).toBe(eio);
  });
});
