import { describe, expect, it } from 'vitest';
import type { TributaryEvent } from '../../../src/events/event-bus.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import type { VideoRepository } from '../../../src/state/video-repo.ts';
import { StorageQuotaError } from '../../../src/storage/errors.ts';
import type { Spool } from '../../../src/storage/spool.ts';
import { Recorder } from '../../../src/vod/recorder.ts';

const INPUT = {
  uid: 'f'.repeat(32),
  meta: {},
  recording: { mode: 'automatic' as const, timeoutSeconds: 0, requireSignedURLs: false, allowedOrigins: [] },
  deleteRecordingAfterDays: null,
};

function segment(n: number) {
  return {
    rendition: 'source',
    name: `seg-x-${n}.m4s`,
    duration: 2,
    data: Buffer.alloc(10),
    init: { name: 'init-x.mp4', data: Buffer.alloc(10), codecs: ['avc1.64001f'] },
    discontinuity: false,
  };
}

describe('recorder events', () => {
  it('announces the recording once it exists, and a full disk once (ERR_STORAGE_QUOTA_EXHAUSTED)', async () => {
    const events: TributaryEvent[] = [];
    const issues: Array<{ uid: string; code: string | undefined }> = [];
    let spoolAdds = 0;
    // Stand-ins: a repository that accepts everything, a spool whose disk is full.
    const videos = { createLive: async () => ({}), appendManifest: async () => {}, update: async () => undefined } as unknown as VideoRepository;
    const spool = {
      add: async () => {
        spoolAdds++;
        throw new StorageQuotaError('no space left on disk while spooling');
      },
    } as unknown as Spool;
    const recorder = new Recorder({
      videos,
      spool,
      logger: silentLogger(),
      nodeId: 'n1',
      onEvent: (e) => events.push(e),
      // The composition root turns this into a health issue and a live_input.errored event.
      onStorageIssue: (uid, issue) => issues.push({ uid, code: issue?.code }),
    });
    const recording = recorder.start(INPUT);
    recording.beginSession('s1');
    for (let i = 0; i < 3; i++) recording.addSegment(segment(i));
    await recording.finalize();
    expect(spoolAdds).toBe(3);
    expect(events).toEqual([{ type: 'video.state', videoUid: recording.videoUid, state: 'live-inprogress', liveInputUid: INPUT.uid }]);
    // Raised once for the three refused segments, cleared when the recording ends.
    expect(issues).toEqual([
      { uid: INPUT.uid, code: 'ERR_STORAGE_QUOTA_EXHAUSTED' },
      { uid: INPUT.uid, code: undefined },
    ]);
  });

  it('says nothing about quota for other write errors', async () => {
    const events: TributaryEvent[] = [];
    const videos = { createLive: async () => ({}), appendManifest: async () => {}, update: async () => undefined } as unknown as VideoRepository;
    const spool = { add: async () => Promise.reject(new Error('EIO')) } as unknown as Spool;
    const issues: unknown[] = [];
    const recording = new Recorder({
      videos,
      spool,
      logger: silentLogger(),
      nodeId: 'n1',
      onEvent: (e) => events.push(e),
      onStorageIssue: (_uid, issue) => issues.push(issue),
    }).start(INPUT);
    recording.beginSession('s1');
    recording.addSegment(segment(0));
    await recording.finalize();
    expect(events.map((e) => e.type)).toEqual(['video.state']);
    expect(issues).toEqual([]);
  });
});
