import { describe, expect, it } from 'vitest';
import { chooseLadder, DEFAULT_LADDER, type RenditionSpec } from '../../../src/transcode/ladder.ts';

type Row = {
  name: string;
  source: { width?: number; height?: number };
  includeSource?: boolean;
  maxRenditions?: number;
  expected: Array<Pick<RenditionSpec, 'name' | 'copy' | 'width' | 'height'>>;
};

const rows: Row[] = [
  {
    name: '1080p source gets copy + every lower rung',
    source: { width: 1920, height: 1080 },
    expected: [
      { name: 'source', copy: true, width: 1920, height: 1080 },
      { name: '720p', copy: false, width: 1280, height: 720 },
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: 'a rung equal to the source height is not repeated',
    source: { width: 1280, height: 720 },
    expected: [
      { name: 'source', copy: true, width: 1280, height: 720 },
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: '4:3 source keeps its aspect, widths even',
    source: { width: 1440, height: 1080 },
    expected: [
      { name: 'source', copy: true, width: 1440, height: 1080 },
      { name: '720p', copy: false, width: 960, height: 720 },
      { name: '480p', copy: false, width: 640, height: 480 },
      { name: '360p', copy: false, width: 480, height: 360 },
    ],
  },
  {
    name: 'portrait source (phone): rung height is the short side, stays portrait',
    source: { width: 720, height: 1280 },
    expected: [
      { name: 'source', copy: true, width: 720, height: 1280 },
      { name: '480p', copy: false, width: 480, height: 854 },
      { name: '360p', copy: false, width: 360, height: 640 },
    ],
  },
  {
    name: 'source at or below the lowest rung: copy only',
    source: { width: 640, height: 360 },
    expected: [{ name: 'source', copy: true, width: 640, height: 360 }],
  },
  {
    name: 'unknown size: rungs up to 720p at 16:9, copy without a size',
    source: {},
    expected: [
      { name: 'source', copy: true },
      { name: '720p', copy: false, width: 1280, height: 720 },
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: 'height only: 16:9 assumed',
    source: { height: 600 },
    expected: [
      { name: 'source', copy: true },
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: 'nonsense size is treated as unknown',
    source: { width: 0, height: Number.NaN },
    expected: [
      { name: 'source', copy: true },
      { name: '720p', copy: false, width: 1280, height: 720 },
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: 'without the source',
    source: { width: 1280, height: 720 },
    includeSource: false,
    expected: [
      { name: '480p', copy: false, width: 854, height: 480 },
      { name: '360p', copy: false, width: 640, height: 360 },
    ],
  },
  {
    name: 'maxRenditions keeps the highest',
    source: { width: 1920, height: 1080 },
    maxRenditions: 2,
    expected: [
      { name: 'source', copy: true, width: 1920, height: 1080 },
      { name: '720p', copy: false, width: 1280, height: 720 },
    ],
  },
];

describe('chooseLadder', () => {
  it.each(rows)('$name', ({ source, includeSource = true, maxRenditions, expected }) => {
    const ladder = chooseLadder(source, DEFAULT_LADDER, {
      includeSource,
      ...(maxRenditions !== undefined && { maxRenditions }),
    });
    expect(ladder.map(({ name, copy, width, height }) => ({ name, copy, width, height }))).toEqual(
      expected.map((e) => ({ width: undefined, height: undefined, ...e })),
    );
  });

  it('carries bitrates for transcoded rungs, none for the copy', () => {
    const [copy, r720] = chooseLadder({ width: 1920, height: 1080 }, DEFAULT_LADDER, { includeSource: true });
    expect(copy?.videoBitrateKbps).toBeUndefined();
    expect(r720).toMatchObject({ videoBitrateKbps: 2500, maxrateKbps: 2750, audioBitrateKbps: 128 });
  });

  it('sorts rungs given in any order, highest first', () => {
    const rungs = [...DEFAULT_LADDER].reverse();
    const names = chooseLadder({ width: 1920, height: 1080 }, rungs, { includeSource: false }).map((r) => r.name);
    expect(names).toEqual(['720p', '480p', '360p']);
  });
});
