import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobQueues } from '../../src/jobs/job-queues.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { DownloadRepository, type DownloadRecord } from '../../src/state/download-repo.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { newUid } from '../../src/state/live-input-record.ts';
import { VideoRepository } from '../../src/state/video-repo.ts';
import { DeletionSweep } from '../../src/vod/deletion-sweep.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

const keys = createRedisKeys('vodstate:');
const DAY_MS = 86_400_000;

// The Redis side of derived files and scheduled deletion, against a real redis-server: the
// deletion index moves with every record write, the sweep trusts the record, and a download
// build is started once.
describe('scheduled deletion index and sweep', () => {
  let t: TestRedis;
  let videos: VideoRepository;
  let now = Date.parse('2026-01-01T00:00:00Z');
  const removed: string[] = [];
  let sweep: DeletionSweep;
  let failNext = false;

  beforeAll(async () => {
    t = await startTestRedis();
    videos = new VideoRepository({ redis: t.redis, keys, now: () => new Date(now) });
    sweep = new DeletionSweep({
      videos,
      // Constructed only for its type: sweep() is called directly here, never start().
      jobs: new JobQueues({ connect: () => t.redis, prefix: 'vodstate:bull', logger: silentLogger() }),
      logger: silentLogger(),
      intervalMs: 1000,
      now: () => now,
      remove: async (uid) => {
        if (failNext) {
          failNext = false;
          throw new Error('store unreachable');
        }
        removed.push(uid);
        await videos.delete(uid);
      },
    });
  });
  afterAll(async () => {
    await t.stop();
  });

  const create = (days: number | null) =>
    videos.createLive(
      { liveInput: newUid(), meta: {}, requireSignedURLs: false, allowedOrigins: [], deleteRecordingAfterDays: days, sessions: 1 },
      'node1',
    );
  const finish = (uid: string) => videos.update(uid, (r) => ({ ...r, status: { state: 'ready' } }), { nodeId: 'node1', done: true });

  it('indexes deleteRecordingAfterDays at creation and follows every change of scheduledDeletion', async () => {
    const kept = await create(null);
    const a = await create(1);
    const b = await create(3);
    expect(a.scheduledDeletion).toBe(new Date(now + DAY_MS).toISOString());
    expect(await videos.dueForDeletion(now + 2 * DAY_MS, 10)).toEqual([a.uid]);
    expect(await videos.dueForDeletion(now + 10 * DAY_MS, 10)).toEqual([a.uid, b.uid]);

    await videos.update(b.uid, (r) => ({ ...r, scheduledDeletion: new Date(now - 1000).toISOString() }));
    await videos.update(a.uid, (r) => ({ ...r, scheduledDeletion: null }));
    await videos.update(kept.uid, (r) => ({ ...r, meta: { name: 'unchanged schedule' } }));
    expect(await videos.dueForDeletion(now + 10 * DAY_MS, 10)).toEqual([b.uid]);
    await videos.delete(b.uid);
    expect(await videos.dueForDeletion(now + 10 * DAY_MS, 10)).toEqual([]);
    await videos.delete(a.uid);
    await videos.delete(kept.uid);
  });

  it('deletes what is due, skips a recording in progress, and retries a failed deletion at the next sweep', async () => {
    const due = await create(1);
    await finish(due.uid);
    const recording = await create(1); // still live-inprogress
    const later = await create(5);
    await finish(later.uid);
    const flaky = await create(1);
    await finish(flaky.uid);

    now += 2 * DAY_MS;
    failNext = true;
    const first = await sweep.sweep();
    expect(first).toBe(1);
    // Which of the two due videos hit the failure depends on their order in the index.
    const firstRemoved = removed.at(-1)!;
    expect([due.uid, flaky.uid]).toContain(firstRemoved);
    expect(await videos.get(recording.uid)).toBeDefined();
    expect(await videos.get(later.uid)).toBeDefined();

    expect(await sweep.sweep()).toBe(1);
    expect(new Set(removed.slice(-2))).toEqual(new Set([due.uid, flaky.uid]));
    expect(await sweep.sweep()).toBe(0); // idempotent: nothing left that is due

    await finish(recording.uid);
    expect(await sweep.sweep()).toBe(1);
    expect(removed.at(-1)).toBe(recording.uid);

    // A stale index entry (a record whose schedule moved without it) is corrected, not obeyed.
    await t.redis.zadd(keys.videoDeletions(), now - 1000, later.uid);
    expect(await sweep.sweep()).toBe(0);
    expect(await videos.get(later.uid)).toBeDefined();
    expect(await videos.dueForDeletion(now, 10)).toEqual([]);
    // An index entry whose record is gone is dropped.
    const ghost = newUid();
    await t.redis.zadd(keys.videoDeletions(), now - 1000, ghost);
    expect(await sweep.sweep()).toBe(0);
    expect(await t.redis.zscore(keys.videoDeletions(), ghost)).toBeNull();
  });
});

describe('DownloadRepository', () => {
  let t: TestRedis;
  let repo: DownloadRepository;
  beforeAll(async () => {
    t = await startTestRedis();
    repo = new DownloadRepository({ redis: t.redis, keys });
  });
  afterAll(async () => {
    await t.stop();
  });
  const rec = (build: string, status: DownloadRecord['status'] = 'inprogress'): DownloadRecord => ({
    status,
    percentComplete: 0,
    build,
    created: new Date().toISOString(),
  });

  it('starts one build however often it is asked, replaces a failed one, and ignores stale builds', async () => {
    const uid = newUid();
    expect(await repo.create(uid, rec('b1'))).toMatchObject({ created: true });
    const again = await repo.create(uid, rec('b2'));
    expect(again).toMatchObject({ created: false, record: { build: 'b1' } });
    expect(await repo.update(uid, 'b2', rec('b2', 'ready'))).toBe(false);
    expect(await repo.update(uid, 'b1', { ...rec('b1'), percentComplete: 50 })).toBe(true);
    expect((await repo.get(uid))?.percentComplete).toBe(50);
    expect(await repo.update(uid, 'b1', rec('b1', 'error'))).toBe(true);
    expect(await repo.create(uid, rec('b3'))).toMatchObject({ created: true });
    expect(await repo.delete(uid)).toBe(true);
    expect(await repo.update(uid, 'b3', rec('b3', 'ready'))).toBe(false);
    expect(await repo.get(uid)).toBeUndefined();
    expect(await repo.get('../etc')).toBeUndefined();
    // A corrupt record is replaced rather than blocking the download forever.
    await t.redis.set(keys.videoDownload(uid), '{not json');
    expect(await repo.create(uid, rec('b4'))).toMatchObject({ created: true });
  });
});
