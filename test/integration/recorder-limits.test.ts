import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deferred } from '../../src/lib/deferred.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { VideoRepository } from '../../src/state/video-repo.ts';
import { DiskStore } from '../../src/storage/disk-store.ts';
import { Spool } from '../../src/storage/spool.ts';
import { Recorder, type StorageIssue } from '../../src/vod/recorder.ts';
import { parseManifestEntries } from '../../src/vod/vod-playlist.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

// The recording when the disk stalls: a real spool and a real Redis, the spool's writes held back
// by a gate (what a hung disk looks like from above). Memory stays capped, what is dropped is
// said once and marked in the recording, and recording resumes when the disk does.
let redis: TestRedis;
let dir: string;

beforeAll(async () => {
  redis = await startTestRedis();
  dir = await mkdtemp(join(tmpdir(), 'trib-recorder-'));
});

afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Recorder on a stalled disk', () => {
  it('holds at most maxBufferedBytes, drops the rest with ERR_STORAGE_QUOTA_EXHAUSTED once, and resumes with a discontinuity', async () => {
    const spool = new Spool({ dir: join(dir, 'spool'), store: new DiskStore({ dir: join(dir, 'media') }), logger: silentLogger(), fsync: false });
    await spool.start();
    let gate = deferred<void>();
    const stalled = Object.create(spool) as Spool;
    stalled.add = async (...args: Parameters<Spool['add']>) => {
      await gate.promise;
      return spool.add(...args);
    };
    stalled.flush = (prefix?: string) => spool.flush(prefix);
    const videos = new VideoRepository({ redis: redis.redis, keys: createRedisKeys('rl:') });
    const issues: Array<StorageIssue | undefined> = [];
    const max = 1024 * 1024;
    const recorder = new Recorder({
      videos,
      spool: stalled,
      logger: silentLogger(),
      nodeId: 'node-a',
      maxBufferedBytes: max,
      quotaClearAfterMs: 50,
      onStorageIssue: (uid, issue) => {
        expect(uid).toBe('a'.repeat(32));
        issues.push(issue);
      },
    });
    const recording = recorder.start({
      uid: 'a'.repeat(32),
      meta: {},
      recording: { mode: 'automatic', timeoutSeconds: 0, requireSignedURLs: false, allowedOrigins: [] },
      deleteRecordingAfterDays: null,
    });
    recording.beginSession('s1');
    const init = { name: 'init-abcd.mp4', data: Buffer.alloc(1000, 1), codecs: ['avc1.64001f'] };
    const segment = (n: number) => ({ rendition: 'source', name: `seg-abcd-${n}.m4s`, duration: 1, data: Buffer.alloc(200 * 1024, n), init, discontinuity: false });

    // 40 segments (8 MiB) while the disk does not answer: at most 1 MiB of them held.
    for (let n = 0; n < 40; n++) {
      recording.addSegment(segment(n));
      expect(recorder.bufferedBytes).toBeLessThanOrEqual(max);
    }
    const held = Math.floor(max / (200 * 1024 + 1000));
    expect(recorder.bufferedBytes).toBe(held * (200 * 1024 + 1000));
    await new Promise((r) => setTimeout(r, 20));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ code: 'ERR_STORAGE_QUOTA_EXHAUSTED', message: expect.stringMatching(/recording buffer full/) });

    // The disk answers again.
    gate.resolve();
    await new Promise((r) => setTimeout(r, 200));
    expect(recorder.bufferedBytes).toBe(0);
    gate = deferred<void>();
    gate.resolve();
    for (let n = 40; n < 43; n++) recording.addSegment(segment(n));
    await recording.finalize();
    expect(issues.at(-1)).toBeUndefined();
    expect(issues).toHaveLength(2);

    const entries = parseManifestEntries(await videos.readManifest(recording.videoUid)).filter((e) => e.t === 'seg');
    const names = entries.map((e) => e.f);
    expect(names).toEqual([...Array.from({ length: held }, (_, n) => `seg-abcd-${n}.m4s`), 'seg-abcd-40.m4s', 'seg-abcd-41.m4s', 'seg-abcd-42.m4s']);
    // The first segment after the gap says so; no other does.
    expect(entries.filter((e) => 'disc' in e && e.disc).map((e) => e.f)).toEqual(['seg-abcd-40.m4s']);
    expect((await videos.get(recording.videoUid))?.status.state).toBe('ready');
    await spool.close();
  });
});
