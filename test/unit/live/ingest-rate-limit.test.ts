import { describe, expect, it } from 'vitest';
import { IngestRateLimit } from '../../../src/live/ingest-rate-limit.ts';

function clock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('IngestRateLimit', () => {
  it('passes a stream under the limit and a one-second burst, trips on a sustained excess', () => {
    const c = clock();
    const limit = new IngestRateLimit({ maxKbps: 1000, windowSeconds: 10, now: c.now });
    // 15 s at 800 kbit/s (100 kB/s in 10 tags per second), with one 2 Mbit burst second.
    for (let s = 0; s < 15; s++) {
      for (let i = 0; i < 10; i++) {
        expect(limit.add(s === 5 ? 25_000 : 10_000)).toBe(false);
        c.advance(100);
      }
    }
    expect(limit.averageBitsPerSecond).toBeGreaterThan(700_000);
    expect(limit.averageBitsPerSecond).toBeLessThan(1_000_000);
    // Then 1.5 Mbit/s: the 10 s average crosses 1 Mbit/s within the window.
    let tripped = -1;
    for (let t = 0; t < 100 && tripped < 0; t++) {
      if (limit.add(18_750)) tripped = t;
      c.advance(100);
    }
    expect(tripped).toBeGreaterThan(0);
    expect(limit.over()).toBe(true);
  });

  it('does not judge before a whole window has passed, and forgets silent seconds', () => {
    const c = clock();
    const limit = new IngestRateLimit({ maxKbps: 100, windowSeconds: 5, now: c.now });
    for (let s = 0; s < 5; s++) {
      expect(limit.add(100_000)).toBe(false); // 800 kbit/s, but no whole window yet
      c.advance(1_000);
    }
    expect(limit.add(100_000)).toBe(true); // the window (the last 5 s) is full and over the limit
    c.advance(60_000); // a minute of silence clears every bucket
    expect(limit.add(1)).toBe(false);
    expect(limit.averageBitsPerSecond).toBeLessThan(100);
  });

  it('never trips when the limit is 0 (off)', () => {
    const c = clock();
    const limit = new IngestRateLimit({ maxKbps: 0, now: c.now });
    for (let i = 0; i < 200; i++) {
      expect(limit.add(1_000_000)).toBe(false);
      c.advance(100);
    }
  });
});
