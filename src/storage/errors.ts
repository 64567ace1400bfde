/** Storage errors: each has a stable `code` that callers (API, origin, live) map to their own answers. */
export class StorageError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A key or prefix that is not `[A-Za-z0-9._-]` segments joined by `/` (or is too long). */
export class InvalidKeyError extends StorageError {
  constructor(message: string) {
    super('ERR_STORAGE_INVALID_KEY', message);
  }
}

/** The local disk (spool or disk store) is full: ENOSPC or EDQUOT. Nothing was written. */
export class StorageQuotaError extends StorageError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_STORAGE_QUOTA_EXHAUSTED', message, options);
  }
}

/** A range that starts at or beyond the end of the object (HTTP 416). */
export class StorageRangeError extends StorageError {
  readonly size: number;
  constructor(size: number, message: string) {
    super('ERR_STORAGE_RANGE_NOT_SATISFIABLE', message);
    this.size = size;
  }
}

/** The spool (or store) was closed; what was not uploaded stays on disk for the next start. */
export class StorageClosedError extends StorageError {
  constructor(message = 'storage is closed') {
    super('ERR_STORAGE_CLOSED', message);
  }
}

/** Maps a full-disk errno to StorageQuotaError; returns anything else unchanged. */
export function toStorageError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StorageQuotaError(`no space left on disk while ${what}`, { cause: err });
  }
  return err;
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && codes.includes(code);
}
