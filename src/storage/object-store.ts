import type { Readable } from 'node:stream';

/**
 * What `put` uploads. A string is deliberately not accepted (content or path?): text goes in as
 * `Buffer.from(text)`, a file as `{ filePath }`, which lets S3 stream big files as multipart.
 */
export type PutBody = Buffer | Uint8Array | Readable | { filePath: string };

export interface PutOptions {
  contentType?: string;
  /** Byte length, if known (a hint for S3; a stream without it is uploaded as multipart). */
  size?: number;
  /** Aborts the write; nothing is left behind under the key (the old object, if any, stays). */
  signal?: AbortSignal;
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`; `end` omitted means to the end. */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface ObjectInfo {
  /** Total size of the object in bytes. */
  size: number;
  contentType?: string;
}

export interface GetResult extends ObjectInfo {
  body: Readable;
  /** Bytes in `body`: `size` without a range, `end - start + 1` with one. */
  length: number;
  /** The range actually served (inclusive), when one was asked for. */
  range?: { start: number; end: number };
}

export interface ListEntry {
  key: string;
  size: number;
}

/**
 * Media storage: local directory or S3-compatible bucket. Keys are `[A-Za-z0-9._-]` segments
 * joined by `/` (see keys.ts); a bad key throws InvalidKeyError before any I/O. A put replaces
 * the whole object atomically: readers see the old or the new object, never a partial one.
 */
export interface ObjectStore {
  /** `disk` or `s3`, for logs and metrics labels. */
  readonly kind: string;
  put(key: string, body: PutBody, opts?: PutOptions): Promise<void>;
  /** Undefined when there is no such object. Throws StorageRangeError when `start >= size`. */
  get(key: string, range?: ByteRange): Promise<GetResult | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Deletes every object whose key starts with `prefix` (non-empty); returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** Every object whose key starts with `prefix` ('' for all), in no guaranteed order. */
  list(prefix: string): AsyncIterable<ListEntry>;
  /** Releases connections; idempotent. */
  close(): Promise<void>;
}

export function isFileBody(body: PutBody): body is { filePath: string } {
  return !(body instanceof Uint8Array) && typeof (body as { filePath?: unknown }).filePath === 'string';
}
