import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { beforeEach, describe, expect, it } from 'vitest';

/**
 * The embed player's latency keeper (src/origin/embed/latency-keeper.js) against a stand-in for
 * hls.js and the <video> element: pure decisions (when to seek, how far, which playback rate).
 */

interface Keeper {
  hlsConfig: Record<string, unknown>;
  keep(hls: FakeHls, video: FakeVideo, options?: Record<string, number>): { skips(): number; stop(): void };
}

class FakeHls {
  latency = 0;
  targetLatency: number | null = 0.63;
  latestLevelDetails: { live: boolean } | null = { live: true };
}

class FakeVideo {
  paused = false;
  seeking = false;
  readyState = 4;
  playbackRate = 1;
  currentTime = 10;
  ranges: Array<[number, number]> = [[9, 11]];
  private listeners = new Map<string, Array<() => void>>();
  get buffered() {
    const r = this.ranges;
    return { length: r.length, start: (i: number) => r[i]![0], end: (i: number) => r[i]![1] };
  }
  addEventListener(type: string, f: () => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), f]);
  }
  removeEventListener(type: string, f: () => void) {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((g) => g !== f));
  }
  timeupdate() {
    for (const f of this.listeners.get('timeupdate') ?? []) f();
  }
}

function loadKeeper(): Keeper {
  const code = readFileSync(path.join(import.meta.dirname, '../../../src/origin/embed/latency-keeper.js'), 'utf8');
  const window: { TributaryLatencyKeeper?: Keeper } = {};
  vm.runInNewContext(code, { window });
  return window.TributaryLatencyKeeper!;
}

describe('latency keeper', () => {
  let keeper: Keeper;
  let hls: FakeHls;
  let video: FakeVideo;
  beforeEach(() => {
    keeper = loadKeeper();
    hls = new FakeHls();
    video = new FakeVideo();
  });

  it('runs hls.js in low-latency mode with hls.js\'s own catch-up off (the keeper does it)', () => {
    expect(keeper.hlsConfig).toMatchObject({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1, enableWorker: false });
  });

  it('skips the start-up delay once playback runs, inside the buffer', () => {
    const k = keeper.keep(hls, video);
    hls.latency = 1.2; // 0.57 s later than PART-HOLD-BACK
    video.paused = true;
    video.timeupdate();
    expect(video.currentTime).toBe(10); // not before playback runs
    video.paused = false;
    video.timeupdate();
    expect(video.currentTime).toBeCloseTo(10.57, 5);
    expect(k.skips()).toBe(1);
  });

  it('never skips closer than 0.3 s to the buffered end', () => {
    keeper.keep(hls, video);
    hls.latency = 1.2;
    video.ranges = [[9, 10.5]];
    video.timeupdate();
    expect(video.currentTime).toBeCloseTo(10.2, 5);
  });

  it('does not skip when within the band, nor without enough buffer', () => {
    keeper.keep(hls, video);
    hls.latency = 0.7;
    video.timeupdate();
    expect(video.currentTime).toBe(10);

    const v2 = new FakeVideo();
    keeper.keep(hls, v2);
    hls.latency = 1.2;
    v2.ranges = [[9, 10.3]];
    v2.timeupdate();
    expect(v2.currentTime).toBe(10);
  });

  it('after the start, plays at 1.1x while behind the target with buffer to spare, back to 1x near it', () => {
    keeper.keep(hls, video);
    hls.latency = 0.63;
    video.timeupdate(); // start: nothing to skip
    hls.latency = 0.9;
    video.timeupdate();
    expect(video.playbackRate).toBe(1.1);
    expect(video.currentTime).toBe(10); // small drift: no seek
    hls.latency = 0.7; // inside the hysteresis band: keep catching up
    video.timeupdate();
    expect(video.playbackRate).toBe(1.1);
    hls.latency = 0.66;
    video.timeupdate();
    expect(video.playbackRate).toBe(1);
  });

  it('stops catching up when the buffer runs low', () => {
    keeper.keep(hls, video);
    hls.latency = 0.63;
    video.timeupdate();
    hls.latency = 0.9;
    video.timeupdate();
    expect(video.playbackRate).toBe(1.1);
    video.ranges = [[9, 10.25]];
    video.timeupdate();
    expect(video.playbackRate).toBe(1);
  });

  it('seeks again only when far behind (after a long stall), and follows hls.js\'s raised target', () => {
    const k = keeper.keep(hls, video);
    hls.latency = 0.63;
    video.timeupdate();
    video.ranges = [[9, 13]];
    hls.latency = 2.0;
    video.timeupdate();
    expect(video.currentTime).toBeCloseTo(11.37, 5);
    expect(k.skips()).toBe(1);
    // hls.js raised its target after stalls: 1.63 s is now on target.
    hls.targetLatency = 1.63;
    hls.latency = 1.63;
    video.timeupdate();
    expect(video.currentTime).toBeCloseTo(11.37, 5);
    expect(video.playbackRate).toBe(1);
  });

  it('ignores updates while seeking, before enough data, or before hls.js knows its latency', () => {
    const k = keeper.keep(hls, video);
    hls.latency = 1.5;
    video.seeking = true;
    video.timeupdate();
    video.seeking = false;
    video.readyState = 2;
    video.timeupdate();
    video.readyState = 4;
    hls.targetLatency = null;
    video.timeupdate();
    expect(k.skips()).toBe(0);
    expect(video.currentTime).toBe(10);
  });

  it('leaves VOD and ended streams alone (hls.js reports a latency for them too)', () => {
    const k = keeper.keep(hls, video);
    hls.latestLevelDetails = { live: false };
    hls.latency = 5;
    video.timeupdate();
    expect(video.currentTime).toBe(10);
    expect(k.skips()).toBe(0);
    // Live, catching up; then the broadcast ends (EXT-X-ENDLIST): back to 1x, no seek.
    hls.latestLevelDetails = { live: true };
    hls.latency = 0.63;
    video.timeupdate();
    hls.latency = 0.9;
    video.timeupdate();
    expect(video.playbackRate).toBe(1.1);
    hls.latestLevelDetails = { live: false };
    hls.latency = 3;
    video.timeupdate();
    expect(video.playbackRate).toBe(1);
    expect(video.currentTime).toBe(10);
    hls.latestLevelDetails = null;
    video.timeupdate();
    expect(k.skips()).toBe(0);
  });

  it('stop() restores the playback rate and stops reacting', () => {
    const k = keeper.keep(hls, video);
    hls.latency = 0.63;
    video.timeupdate();
    hls.latency = 0.9;
    video.timeupdate();
    expect(video.playbackRate).toBe(1.1);
    k.stop();
    expect(video.playbackRate).toBe(1);
    hls.latency = 3;
    video.timeupdate();
    expect(video.currentTime).toBe(10);
  });
});
