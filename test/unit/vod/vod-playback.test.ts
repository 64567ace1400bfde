import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiskStore } from '../../../src/storage/disk-store.ts';
import { VodPlayback } from '../../../src/vod/vod-playback.ts';

const UID = 'a'.repeat(32);

describe('VodPlayback', () => {
  let dir: string;
  let store: DiskStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'trib-vod-'));
    store = new DiskStore({ dir, fsync: false });
    await store.put(`videos/${UID}/master.m3u8`, Buffer.from('#EXTM3U\nsource/index.m3u8\n'));
    await store.put(`videos/${UID}/source/index.m3u8`, Buffer.from('#EXTM3U\n#EXT-X-ENDLIST\n'));
    await store.put(`videos/${UID}/source/seg-abcd1234-0.m4s`, Buffer.from('segment'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves playlists and segments by the live URL shapes, caching playlists until forgotten', async () => {
    const vod = new VodPlayback({ store });
    expect(await vod.masterPlaylist(UID)).toBe('#EXTM3U\nsource/index.m3u8\n');
    expect(await vod.mediaPlaylist(UID, 'source')).toContain('#EXT-X-ENDLIST');
    const seg = await vod.resource(UID, 'source', 'seg-abcd1234-0.m4s');
    expect(seg).toMatchObject({ contentType: 'video/iso.segment', size: 7 });
    await store.deletePrefix(`videos/${UID}/`);
    expect(await vod.masterPlaylist(UID)).toBeDefined(); // cached
    vod.forget(UID);
    expect(await vod.masterPlaylist(UID)).toBeUndefined();
    expect(await vod.resource(UID, 'source', 'seg-abcd1234-0.m4s')).toBeUndefined();
  });

  it('refuses names outside the formats before any lookup', async () => {
    const vod = new VodPlayback({ store });
    expect(await vod.masterPlaylist('../x')).toBeUndefined();
    expect(await vod.mediaPlaylist(UID, '..')).toBeUndefined();
    expect(await vod.resource(UID, 'source', 'index.m3u8')).toBeUndefined();
    expect(await vod.resource(UID, 'source', '../master.m3u8')).toBeUndefined();
    expect(await vod.resource(UID, 'source', 'seg-abcd1234-00.m4s')).toBeUndefined();
  });
});
