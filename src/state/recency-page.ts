import type { Redis } from 'ioredis';
import { isUid } from './live-input-record.ts';

/** An unreadable cursor is a caller error. */
export class InvalidCursorError extends Error {
  constructor() {
    super('querystring.cursor is not valid');
    this.name = 'InvalidCursorError';
  }
}

export interface RecencyPage<T> {
  items: T[];
  total: number;
  /** Opaque: pass back as `cursor` for the next page. */
  nextCursor?: string;
}

function encodeCursor(score: number, uid: string): string {
  return Buffer.from(`${score}:${uid}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { score: number; uid: string } {
  const [scoreText, uid] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  const score = Number(scoreText);
  if (!Number.isFinite(score) || uid === undefined || !isUid(uid)) throw new InvalidCursorError();
  return { score, uid };
}

/**
 * One page of records indexed by a sorted set (score = creation time), newest first, with a
 * cursor that stays right when records are added meanwhile. Records deleted between the index
 * read and the record read are skipped.
 */
export async function readRecencyPage<T>(
  redis: Redis,
  index: string,
  opts: { limit: number; cursor?: string | undefined },
  recordKey: (uid: string) => string,
  parse: (key: string, raw: string) => T,
): Promise<RecencyPage<T>> {
  const limit = Math.max(1, Math.min(1000, Math.floor(opts.limit)));
  const after = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor);
  let uids: string[];
  if (!after) {
    uids = await redis.zrevrange(index, 0, limit);
  } else {
    // Same-millisecond ties sort by uid (descending in reverse order); take those after the cursor's uid.
    const tied = (await redis.zrangebyscore(index, after.score, after.score))
      .filter((u) => u < after.uid)
      .sort()
      .reverse();
    const older = await redis.zrevrangebyscore(index, `(${after.score}`, '-inf', 'LIMIT', 0, limit + 1);
    uids = [...tied, ...older].slice(0, limit + 1);
  }
  const hasMore = uids.length > limit;
  const pageUids = uids.slice(0, limit);
  const [total, raws] = await Promise.all([
    redis.zcard(index),
    pageUids.length ? redis.mget(pageUids.map(recordKey)) : Promise.resolve([]),
  ]);
  const items: T[] = [];
  raws.forEach((raw, i) => {
    if (raw !== null) items.push(parse(recordKey(pageUids[i] ?? ''), raw));
  });
  const page: RecencyPage<T> = { items, total };
  const last = pageUids.at(-1);
  if (hasMore && last !== undefined) {
    const score = await redis.zscore(index, last);
    if (score !== null) page.nextCursor = encodeCursor(Number(score), last);
  }
  return page;
}
