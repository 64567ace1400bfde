import { describe, it, expect } from 'vitest';
import { Metrics } from '../../../src/observability/metrics.ts';
import type { IngestStats } from '../../../src/live/session-registry.ts';

function stats(uid: string): IngestStats {
  return { liveInputUid: uid, protocol: 'rtmp', bitrateBitsPerSecond: 2e6, framesPerSecond: 30, keyframeIntervalSeconds: 2 };
}

describe('Metrics', () => {
  it('per-input series exist exactly while the session does', async () => {
    const m = new Metrics();
    let live = [stats('a'.repeat(32)), stats('b'.repeat(32))];
    m.observeLive({ ingestStats: () => live, waitingRequests: 3 });
    m.observeViewers(async (uid) => (uid === 'a'.repeat(32) ? 5 : 0));
    let whip = 2;
    m.observeWhip(() => whip);
    let text = await m.render();
    expect(text).toContain(`tributary_ingest_bitrate_bits_per_second{live_input="${'a'.repeat(32)}"} 2000000`);
    expect(text).toContain('tributary_live_sessions{protocol="rtmp"} 2');
    expect(text).toContain('tributary_hls_blocking_requests_waiting 3');
    expect(text).toContain(`tributary_viewers{live_input="${'a'.repeat(32)}"} 5`);
    expect(text).toContain(`tributary_viewers{live_input="${'b'.repeat(32)}"} 0`);
    expect(text).toContain('tributary_whip_sessions 2');
    whip = 0;

    live = [stats('b'.repeat(32))];
    m.sessionEnded('a'.repeat(32), 'client_disconnect');
    text = await m.render();
    expect(text).not.toContain('a'.repeat(32));
    expect(text).toContain('tributary_live_sessions_ended_total{reason="client_disconnect"} 1');
  });

  it('keeps labels bounded: unknown methods fold into OTHER; two instances never share series', async () => {
    const one = new Metrics();
    const two = new Metrics();
    one.httpRequest('PROPFIND', '/:id/iframe', 404, 0.002);
    one.playbackChecked({ ok: false, code: 'TOKEN_EXPIRED' });
    expect(await one.render()).toContain('tributary_http_requests_total{method="OTHER",route="/:id/iframe",status="404"} 1');
    expect(await one.render()).toContain('tributary_playback_refusals_total{reason="TOKEN_EXPIRED"} 1');
    expect(await two.render()).not.toContain('/:id/iframe');
    // Nonsense never reaches the histogram.
    one.partPublished(-1);
    one.partPublished(Number.NaN);
    expect(await one.render()).toContain('tributary_hls_part_publish_delay_seconds_count 0');
  });
});
