import { describe, it, expect } from 'vitest';
import { IngestClock } from '../../../src/live/ingest-clock.ts';

describe('IngestClock', () => {
  it('maps output media time to the arrival wall clock of that frame', () => {
    const c = new IngestClock();
    // Frames at FLV 5000, 5033, … arriving 2 ms of jitter apart from a steady clock.
    for (let i = 0; i < 90; i++) c.record(5000 + i * 33, 1_000_000 + i * 33 + (i % 2) * 2);
    expect(c.wallFor(0)).toBe(1_000_000);
    expect(c.wallFor(0.033)).toBe(1_000_035);
    expect(c.wallFor(1.0)).toBe(1_000_000 + 990 + 10); // between frames: the earlier frame plus the rest
  });

  it('is unknown before any frame and before the first frame', () => {
    const c = new IngestClock();
    expect(c.wallFor(0)).toBeUndefined();
    c.record(100, 5000);
    expect(c.wallFor(-1)).toBeUndefined();
  });

  it('starts a fresh base after reset (an FFmpeg restart) and after timestamps jump back', () => {
    const c = new IngestClock();
    c.record(1000, 10_000);
    c.record(1033, 10_033);
    c.reset();
    c.record(9000, 20_000);
    expect(c.wallFor(0)).toBe(20_000);
    c.record(100, 30_000); // a wrap or a publisher restart
    expect(c.wallFor(0)).toBe(30_000);
  });

  it('keeps a bounded history', () => {
    const c = new IngestClock(10);
    for (let i = 0; i < 100; i++) c.record(i * 10, i * 10);
    expect(c.wallFor(0)).toBeUndefined(); // forgotten
    expect(c.wallFor(0.95)).toBe(950);
  });
});
