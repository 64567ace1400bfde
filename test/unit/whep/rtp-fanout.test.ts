import { describe, expect, it } from 'vitest';
import { RtpFanout, type FanoutViewer, type MediaKind } from '../../../src/whep/rtp-fanout.ts';

/** A viewer whose transport takes packets at once, never, or fails. */
class FakeViewer implements FanoutViewer<number> {
  readonly id: string;
  readonly got: Array<[MediaKind, number]> = [];
  readonly #mode: 'fast' | 'stuck' | 'failing' | 'throws';
  constructor(id: string, mode: 'fast' | 'stuck' | 'failing' | 'throws') {
    this.id = id;
    this.#mode = mode;
  }
  send(kind: MediaKind, packet: number): Promise<void> | void {
    if (this.#mode === 'throws') throw new Error('socket gone');
    this.got.push([kind, packet]);
    if (this.#mode === 'stuck') return new Promise<void>(() => {});
    if (this.#mode === 'failing') return Promise.reject(new Error('EPIPE'));
    return Promise.resolve();
  }
}

function setup(maxInFlight = 4) {
  const drops: Array<[string, string]> = [];
  const fanout = new RtpFanout<number, FakeViewer>({ maxInFlight, onDrop: (v, reason) => drops.push([v.id, reason]) });
  return { fanout, drops };
}

describe('RTP fan-out', () => {
  it('sends video from the next keyframe on, audio at once', () => {
    const { fanout } = setup(100);
    const v = new FakeViewer('a', 'fast');
    fanout.add(v);
    fanout.broadcast('video', [1, 2]);
    fanout.broadcast('audio', [3]);
    fanout.broadcast('video', [4, 5], true);
    fanout.broadcast('video', [6]);
    expect(v.got).toEqual([['audio', 3], ['video', 4], ['video', 5], ['video', 6]]);
    expect(fanout.waitingForKeyframe).toBe(0);
  });

  it('drops a viewer whose transport stops taking packets, and keeps serving the others', async () => {
    const { fanout, drops } = setup(4);
    const fast = new FakeViewer('fast', 'fast');
    const stuck = new FakeViewer('stuck', 'stuck');
    fanout.add(fast);
    fanout.add(stuck);
    for (let i = 0; i < 10; i++) {
      fanout.broadcast('video', [i], i === 0);
      await Promise.resolve();
    }
    expect(drops).toEqual([['stuck', 'slow']]);
    expect(stuck.got).toHaveLength(4);
    expect(fast.got).toHaveLength(10);
    expect(fanout.size).toBe(1);
  });

  it('drops a viewer whose send fails or throws, once', async () => {
    const { fanout, drops } = setup(100);
    fanout.add(new FakeViewer('failing', 'failing'));
    fanout.add(new FakeViewer('throws', 'throws'));
    fanout.broadcast('audio', [1, 2, 3]);
    await new Promise((r) => setTimeout(r, 0));
    expect(drops.sort()).toEqual([['failing', 'send_failed'], ['throws', 'send_failed']]);
    expect(fanout.size).toBe(0);
  });

  it('counts a removed viewer no more', () => {
    const { fanout, drops } = setup(1);
    const stuck = new FakeViewer('stuck', 'stuck');
    fanout.add(stuck);
    fanout.broadcast('audio', [1]);
    expect(fanout.inFlight(stuck)).toBe(1);
    expect(fanout.remove(stuck)).toBe(true);
    fanout.broadcast('audio', [2]);
    expect(drops).toEqual([]);
  });
});
