import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  type DeleteObjectsCommandOutput,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { contentTypeForKey } from './content-type.ts';
import { StorageError, StorageRangeError } from './errors.ts';
import { resolveRange } from './disk-store.ts';
import { assertValidKey, assertValidPrefix } from './keys.ts';
import {
  isFileBody,
  type ByteRange,
  type GetResult,
  type ListEntry,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
} from './object-store.ts';

export interface S3StoreOptions {
  /** Omit for AWS; `https://<account>.r2.cloudflarestorage.com` for R2; the MinIO URL for MinIO. */
  endpoint?: string;
  /** AWS region; R2 uses `auto`. */
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `bucket` in the path instead of the host name: true for MinIO and most self-hosted stores. */
  forcePathStyle: boolean;
  /** Bodies larger than this go up as multipart (default 8 MiB, also the part size). */
  multipartThresholdBytes?: number;
  /** Per-request timeout in ms (default 60 s); a hung store must not hold an upload slot forever. */
  requestTimeoutMs?: number;
  /** SDK attempts per request (default 3). The spool retries on top of this. */
  maxAttempts?: number;
}

const DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024;
const DELETE_BATCH = 1000;

/**
 * Objects in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO). Small bodies are one
 * PutObject with Content-MD5 (the store verifies integrity); large bodies and streams of unknown
 * length use multipart upload. Credentials live only inside the SDK client and never in logs.
 */
export class S3Store implements ObjectStore {
  readonly kind = 's3';
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #threshold: number;
  readonly #description: string;
  #closed = false;
  #multipartUploads = 0;

  constructor(opts: S3StoreOptions) {
    this.#bucket = opts.bucket;
    this.#threshold = opts.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD;
    this.#description = `s3://${opts.bucket}${opts.endpoint ? ` at ${opts.endpoint}` : ` (${opts.region})`}`;
    this.#client = new S3Client({
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      maxAttempts: opts.maxAttempts ?? 3,
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000 },
      // The SDK's default streams checksummed bodies with aws-chunked encoding, which several
      // S3-compatible stores (s3rver, older MinIO, some gateways) store verbatim, corrupting the
      // object. Checksums are sent where S3 requires them; small puts carry Content-MD5.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Puts that went through lib-storage Upload: bodies over the threshold and streams (which it sends as one PutObject if they turn out small). */
  get multipartUploads(): number {
    return this.#multipartUploads;
  }

  /** Bucket and endpoint, never credentials: safe for logs. */
  toString(): string {
    return this.#description;
  }

  async put(key: string, body: PutBody, opts: PutOptions = {}): Promise<void> {
    assertValidKey(key);
    this.#assertOpen();
    opts.signal?.throwIfAborted();
    // As on disk: without an explicit type, the extension decides (S3 would say binary/octet-stream).
    const contentType = opts.contentType ?? contentTypeForKey(key);
    const ct = contentType === undefined ? {} : { ContentType: contentType };
    let data: Buffer | Readable;
    if (body instanceof Uint8Array) {
      data = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    } else if (isFileBody(body)) {
      const size = (await stat(body.filePath)).size;
      data = size <= this.#threshold ? await readFile(body.filePath) : createReadStream(body.filePath);
    } else {
      data = body;
    }
    if (Buffer.isBuffer(data) && data.length <= this.#threshold) {
      const md5 = createHash('md5').update(data).digest('base64');
      await this.#send(
        new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: data, ContentMD5: md5, ContentLength: data.length, ...ct }),
        opts.signal,
      );
      return;
    }
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key: key, Body: data, ...ct },
      partSize: Math.max(this.#threshold, 5 * 1024 * 1024),
      queueSize: 4,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await upload.done();
      this.#multipartUploads++;
    } catch (err) {
      throw this.#wrap(err, 'put', key);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | undefined> {
    assertValidKey(key);
    this.#assertOpen();
    if (range) resolveRange(range, Number.MAX_SAFE_INTEGER); // validates the numbers only
    const header = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    let res;
    try {
      res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key, ...(header ? { Range: header } : {}) }));
    } catch (err) {
      if (status(err) === 404) return undefined;
      if (status(err) === 416) {
        const info = await this.head(key);
        if (!info) return undefined;
        throw new StorageRangeError(info.size, `range starts at ${range?.start}, object has ${info.size} bytes`);
      }
      throw this.#wrap(err, 'get', key);
    }
    const body = res.Body as Readable | undefined;
    if (!body) throw new StorageError('ERR_STORAGE_BACKEND', `S3 returned no body for ${key}`);
    const length = res.ContentLength ?? 0;
    const ct = res.ContentType === undefined ? {} : { contentType: res.ContentType };
    if (!range) return { body, size: length, length, ...ct };
    // Content-Range: bytes 0-99/1234
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange ?? '');
    if (!m) {
      body.destroy();
      throw new StorageError('ERR_STORAGE_BACKEND', `${this.#description} ignored the Range header for ${key}`);
    }
    const start = Number(m[1]);
    const end = Number(m[2]);
    return { body, size: Number(m[3]), length: end - start + 1, range: { start, end }, ...ct };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    this.#assertOpen();
    try {
      const res = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      const size = res.ContentLength ?? 0;
      return res.ContentType === undefined ? { size } : { size, contentType: res.ContentType };
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw this.#wrap(err, 'head', key);
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.#assertOpen();
    await this.#send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
  }

  async deletePrefix(prefix: string): Promise<number> {
    assertValidPrefix(prefix, false);
    this.#assertOpen();
    let count = 0;
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const res = await this.#send<DeleteObjectsCommandOutput>(
        new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0];
        throw new StorageError(
          'ERR_STORAGE_BACKEND',
          `${this.#description}: could not delete ${failed.length} object(s) under ${prefix} (first: ${first?.Key}: ${first?.Code})`,
        );
      }
      count += batch.length;
      batch = [];
    };
    // Collect first, then delete: deleting while paginating can skip keys on some stores.
    for await (const { key } of this.list(prefix)) {
      batch.push(key);
      if (batch.length === DELETE_BATCH) await flush();
    }
    await flush();
    return count;
  }

  list(prefix: string): AsyncIterable<ListEntry> {
    assertValidPrefix(prefix, true);
    this.#assertOpen();
    return this.#list(prefix);
  }

  async *#list(prefix: string): AsyncGenerator<ListEntry> {
    let token: string | undefined;
    do {
      const res = await this.#send<ListObjectsV2CommandOutput>(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          ...(prefix ? { Prefix: prefix } : {}),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0 };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  // One generic helper keeps the SDK's overloads out of every call site.
  async #send<T>(command: { input: unknown } & object, signal?: AbortSignal): Promise<T> {
    try {
      const send = this.#client.send.bind(this.#client) as (c: unknown, o?: { abortSignal?: AbortSignal }) => Promise<T>;
      return await send(command, signal ? { abortSignal: signal } : undefined);
    } catch (err) {
      throw this.#wrap(err, command.constructor.name, undefined);
    }
  }

  #wrap(err: unknown, op: string, key: string | undefined): unknown {
    if (err instanceof S3ServiceException) {
      const where = key === undefined ? '' : ` ${key}`;
      return new StorageError(
        'ERR_STORAGE_BACKEND',
        `${this.#description}: ${op}${where} failed: ${err.name} (HTTP ${err.$metadata.httpStatusCode ?? '?'})`,
        { cause: err },
      );
    }
    return err;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StorageError('ERR_STORAGE_CLOSED', `${this.#description} is closed`);
  }
}

function status(err: unknown): number | undefined {
  const e = err as { $metadata?: { httpStatusCode?: number }; name?: string } | undefined;
  if (e?.name === 'NoSuchKey' || e?.name === 'NotFound') return 404;
  return e?.$metadata?.httpStatusCode;
}
