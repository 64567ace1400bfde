import { describe, expect, it } from 'vitest';
import { ReportedViewerAdmission } from '../../../src/state/reported-viewer-admission.ts';
import type { ViewerAdmission } from '../../../src/state/viewer-admission.ts';
import { Metrics } from '../../../src/observability/metrics.ts';

/** Admits the viewers it is given, refuses everyone else. */
function fixed(admitted: string[]): ViewerAdmission {
  return { retryAfterSeconds: 7, admit: async (_uid, viewer) => admitted.includes(viewer) };
}

function setup(logIntervalMs = 60_000) {
  let now = 1_000_000;
  const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
  const metrics = new Metrics();
  const admission = new ReportedViewerAdmission(fixed(['v1', 'v2']), {
    logger: { warn: (obj, msg) => lines.push({ obj, msg }) },
    maxViewers: 2,
    logIntervalMs,
    onRefused: (reason) => metrics.viewerRefused(reason),
    now: () => now,
  });
  return { admission, lines, metrics, advance: (ms: number) => (now += ms) };
}

const refusedSeries = async (m: Metrics) => /^tributary_viewers_refused_total\{reason="max_viewers_per_stream"\} (\d+)$/m.exec(await m.render())?.[1];

describe('ReportedViewerAdmission', () => {
  it('passes the decision and the retry delay through; admitted viewers are neither counted nor logged', async () => {
    const { admission, lines, metrics } = setup();
    expect(admission.retryAfterSeconds).toBe(7);
    expect(await admission.admit('input-a', 'v1')).toBe(true);
    expect(await admission.admit('input-a', 'v2')).toBe(true);
    expect(await admission.admit('input-a', 'v3')).toBe(false);
    expect(admission.refused).toBe(1);
    expect(lines).toHaveLength(1);
    // The counter exists at 0 before any refusal and counts each one.
    expect(await refusedSeries(metrics)).toBe('1');
  });

  it('counts every refusal but logs at most once per interval, with the refusals since the last line', async () => {
    const { admission, lines, metrics, advance } = setup(60_000);
    expect(await refusedSeries(metrics)).toBe('0');
    for (let i = 0; i < 50; i++) expect(await admission.admit('input-a', `bot-${i}`)).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.obj).toMatchObject({ count: 1, liveInput: 'input-a', maxViewersPerStream: 2, code: 'TOO_MANY_VIEWERS' });
    advance(59_999);
    await admission.admit('input-b', 'late');
    expect(lines).toHaveLength(1);
    advance(1);
    await admission.admit('input-b', 'later');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.obj).toMatchObject({ count: 51, liveInput: 'input-b' });
    expect(admission.refused).toBe(52);
    expect(await refusedSeries(metrics)).toBe('52');
  });

  it('never logs the viewer key (a playback session derived from the client)', async () => {
    const { admission, lines } = setup();
    await admission.admit('input-a', 'secret-session-key');
    expect(JSON.stringify(lines)).not.toContain('secret-session-key');
  });

  it('adds no label per live input to the metric', async () => {
    const { admission, metrics } = setup();
    for (let i = 0; i < 20; i++) await admission.admit(`input-${i}`, 'x');
    const series = (await metrics.render()).split('\n').filter((l) => l.startsWith('tributary_viewers_refused_total'));
    expect(series).toEqual(['tributary_viewers_refused_total{reason="max_viewers_per_stream"} 20']);
  });
});
