import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { parseMedia } from '../helpers/probe.ts';
import { childProcesses } from '../helpers/processes.ts';

// /metrics as Prometheus sees it: scraped over HTTP while a real FFmpeg publishes over RTMP,
// parsed by a Prometheus text-format parser, checked series by series.

const TOKEN = 'metrics-secret-0123456789';

interface Family {
  name: string;
  type: string;
  help: string;
  metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

async function scrapeText(url: string, token: string | undefined = TOKEN): Promise<string> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

async function scrape(url: string, token: string | undefined = TOKEN): Promise<Map<string, Family>> {
  const families = parsePrometheusTextFormat(await scrapeText(url, token)) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

function family(m: Map<string, Family>, name: string, type: string): Family {
  const f = m.get(name);
  if (!f) throw new Error(`series ${name} missing; have ${[...m.keys()].filter((k) => k.startsWith('tributary')).join(', ')}`);
  expect(f.type.toLowerCase()).toBe(type);
  expect(f.help.length).toBeGreaterThan(10);
  return f;
}

function value(m: Map<string, Family>, name: string, type: string, labels: Record<string, string> = {}): number | undefined {
  const sample = family(m, name, type).metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (!sample) return undefined;
  return Number(sample.value ?? sample.count);
}

describe('metrics end to end', () => {
  let server: TestServer;
  let publisher: TestPublisher | undefined;
  let metricsUrl: string;

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_METRICS_TOKEN: TOKEN } });
    metricsUrl = `${server.httpUrl}/metrics`;
  });

  afterAll(async () => {
    await publisher?.stop();
    await server?.stop();
    await server?.cleanup();
  });

  it('refuses scrapes without the token, with a wrong, malformed or huge one, and keeps serving', async () => {
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong-token' },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: TOKEN },
      { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` },
      { authorization: 'Bearer ' },
      { authorization: `Bearer ${'a'.repeat(6000)}` },
    ];
    for (const headers of attempts) {
      const res = await fetch(metricsUrl, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const body = (await res.json()) as { errors: Array<{ code: string }> };
      expect(body.errors[0]?.code).toBe('UNAUTHORIZED');
    }
    // The API key is not the metrics token.
    expect((await fetch(metricsUrl, { headers: { authorization: `Bearer ${server.apiKey}` } })).status).toBe(401);
    // Everyone else is still served.
    expect((await server.api('GET', '/v1/live_inputs')).status).toBe(200);
    const m = await scrape(metricsUrl);
    expect(value(m, 'tributary_live_sessions', 'gauge', { protocol: 'rtmp' })).toBe(0);
  });

  it('reports a live stream per input, and drops its series when the session ends', async () => {
    const input = await createLiveInput(server, { meta: { name: 'metrics' }, recording: { mode: 'automatic' } });
    const uid = input.uid;
    publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 320, height: 180, fps: 30, gop: 30 });
    const masterUrl = `${server.httpUrl}/${uid}/manifest/video.m3u8`;
    await waitForHttp200(masterUrl, 30_000);
    const mediaUrl = `${server.httpUrl}/${uid}/manifest/source/index.m3u8`;

    // Playback traffic: playlists, a refused token, an unknown asset, a path no route matches.
    expect((await fetch(masterUrl)).status).toBe(200);
    expect((await fetch(`${server.httpUrl}/not.a.token/manifest/video.m3u8`)).status).toBe(403);
    expect((await fetch(`${server.httpUrl}/${'0'.repeat(32)}/manifest/video.m3u8`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/a/b/c/d/e/f?x=${uid}`)).status).toBe(404);

    // A blocking reload two segments ahead is held; the gauge sees it while it waits.
    const media = parseMedia(await waitForHttp200(mediaUrl));
    const ahead = media.mediaSequence + media.segments.length + 1;
    const held = fetch(`${mediaUrl}?_HLS_msn=${ahead}`);
    let waiting = 0;
    for (let i = 0; i < 50 && waiting < 1; i++) {
      waiting = value(await scrape(metricsUrl), 'tributary_hls_blocking_requests_waiting', 'gauge') ?? 0;
    }
    expect(waiting).toBeGreaterThanOrEqual(1);
    expect((await held).status).toBe(200);

    // Let the rate window fill (5 s of arrivals), with a transcoder crash in between.
    const ffmpeg = childProcesses(server.process.pid!).filter((p) => p.comm === 'ffmpeg');
    expect(ffmpeg).toHaveLength(1);
    process.kill(ffmpeg[0]!.pid, 'SIGKILL');
    await server.waitForLog((l) => l.msg === 'transcoder restarted', 20_000);
    await waitForHttp200(masterUrl);
    await new Promise((r) => setTimeout(r, 3000));

    const m = await scrape(metricsUrl);
    expect(value(m, 'tributary_live_sessions', 'gauge', { protocol: 'rtmp' })).toBe(1);
    expect(value(m, 'tributary_live_sessions_started_total', 'counter', { protocol: 'rtmp' })).toBe(1);
    const bitrate = value(m, 'tributary_ingest_bitrate_bits_per_second', 'gauge', { live_input: uid });
    const fps = value(m, 'tributary_ingest_frames_per_second', 'gauge', { live_input: uid });
    const gop = value(m, 'tributary_ingest_keyframe_interval_seconds', 'gauge', { live_input: uid });
    // 320x180 at 30 fps with 64 kb/s audio: tens to hundreds of kb/s, a few dozen frames a second.
    expect(bitrate).toBeGreaterThan(64_000);
    expect(bitrate).toBeLessThan(10_000_000);
    expect(fps).toBeGreaterThan(5);
    expect(fps).toBeLessThan(61);
    expect(gop).toBeCloseTo(1, 1);
    expect(value(m, 'tributary_transcoder_restarts_total', 'counter')).toBe(1);
    expect(value(m, 'tributary_transcoder_failures_total', 'counter')).toBe(0);

    const delay = family(m, 'tributary_hls_part_publish_delay_seconds', 'histogram').metrics[0]!;
    expect(Number(delay.count)).toBeGreaterThan(10);
    const meanDelay = Number(delay.sum) / Number(delay.count);
    expect(meanDelay).toBeGreaterThan(0);
    expect(meanDelay).toBeLessThan(30);

    // HTTP by route pattern: never a raw path (no uid, no token) in a label.
    const requests = family(m, 'tributary_http_requests_total', 'counter').metrics;
    const routes = new Set(requests.map((s) => s.labels?.route));
    expect(routes).toContain('/:id/manifest/video.m3u8');
    expect(routes).toContain('/:id/manifest/:rendition/:file');
    expect(routes).toContain('/v1/live_inputs');
    expect(routes).toContain('unmatched');
    for (const r of routes) expect(r === 'unmatched' || (r?.startsWith('/') && !r.includes(uid) && !r.includes('not.a.token'))).toBe(true);
    expect(value(m, 'tributary_http_requests_total', 'counter', { method: 'GET', route: '/:id/manifest/video.m3u8', status: '403' })).toBe(1);
    expect(value(m, 'tributary_http_requests_total', 'counter', { method: 'POST', route: '/v1/live_inputs', status: '201' })).toBe(1);
    expect(value(m, 'tributary_http_requests_total', 'counter', { route: '/metrics', status: '200' })).toBeGreaterThanOrEqual(1);
    const latency = family(m, 'tributary_http_request_duration_seconds', 'histogram').metrics;
    expect(latency[0]?.buckets?.['+Inf']).toBeDefined();
    // The parser folds a labelled histogram into one (prom2json's shape): per-route counts come from the text.
    const text = await scrapeText(metricsUrl);
    const count = /^tributary_http_request_duration_seconds_count\{method="GET",route="\/:id\/manifest\/:rendition\/:file",status_class="2xx"\} (\d+)$/m.exec(text);
    expect(Number(count?.[1])).toBeGreaterThanOrEqual(2);

    // Access checks and refusals by reason.
    expect(value(m, 'tributary_playback_checks_total', 'counter', { result: 'allowed' })).toBeGreaterThan(2);
    expect(value(m, 'tributary_playback_checks_total', 'counter', { result: 'refused' })).toBe(2);
    expect(value(m, 'tributary_playback_refusals_total', 'counter', { reason: 'TOKEN_MALFORMED' })).toBe(1);
    expect(value(m, 'tributary_playback_refusals_total', 'counter', { reason: 'NOT_FOUND' })).toBe(1);

    // The recording goes through the spool.
    expect(value(m, 'tributary_spool_uploads_total', 'counter')).toBeGreaterThan(0);
    expect(value(m, 'tributary_spool_uploaded_bytes_total', 'counter')).toBeGreaterThan(0);
    expect(value(m, 'tributary_spool_files', 'gauge')).toBeGreaterThanOrEqual(0);
    expect(value(m, 'tributary_spool_bytes', 'gauge')).toBeGreaterThanOrEqual(0);
    expect(value(m, 'tributary_spool_upload_lag_seconds', 'gauge')).toBeGreaterThanOrEqual(0);
    expect(value(m, 'tributary_spool_upload_failures_total', 'counter')).toBe(0);

    // This test played the stream: it is one viewer (counted in Redis). No webhook is set, no WHIP.
    expect(value(m, 'tributary_viewers', 'gauge', { live_input: uid })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'tributary_webhook_deliveries_total', 'counter', { result: 'delivered' })).toBe(0);
    expect(value(m, 'tributary_webhook_deliveries_total', 'counter', { result: 'retrying' })).toBe(0);
    expect(value(m, 'tributary_whip_sessions', 'gauge')).toBe(0);

    // Node process metrics.
    expect(value(m, 'process_cpu_seconds_total', 'counter')).toBeGreaterThan(0);
    expect(value(m, 'process_resident_memory_bytes', 'gauge')).toBeGreaterThan(0);
    expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(m.has('nodejs_heap_size_used_bytes')).toBe(true);

    // The publisher leaves: the session ends, and its per-input series go with it.
    await publisher.stop();
    await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === uid, 15_000);
    // The session's 'ended' follows its log line once FFmpeg has flushed: wait for the count.
    const endedCount = (m: Awaited<ReturnType<typeof scrape>>) =>
      family(m, 'tributary_live_sessions_ended_total', 'counter').metrics.reduce((n, s) => n + Number(s.value), 0);
    await expect.poll(async () => endedCount(await scrape(metricsUrl)), { timeout: 15_000 }).toBe(1);
    const after = await scrape(metricsUrl);
    expect(value(after, 'tributary_live_sessions', 'gauge', { protocol: 'rtmp' })).toBe(0);
    for (const name of ['tributary_ingest_bitrate_bits_per_second', 'tributary_ingest_frames_per_second', 'tributary_ingest_keyframe_interval_seconds']) {
      expect(family(after, name, 'gauge').metrics).toEqual([]);
    }
    expect(endedCount(after)).toBe(1);
  });
});

describe('metrics on a separate listener', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_METRICS_PORT: '0', TRIBUTARY_METRICS_HOST: '127.0.0.1' } });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('serves /metrics only there (no token configured), and nothing else there', async () => {
    const ready = await server.waitForLog((l) => l.msg === 'tributary ready');
    const port = Number(ready.metricsPort);
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(new URL(server.httpUrl).port);
    const m = await scrape(`http://127.0.0.1:${port}/metrics`, undefined);
    expect(m.has('tributary_live_sessions')).toBe(true);
    expect(m.has('process_cpu_seconds_total')).toBe(true);
    // Not on the public listener; and the metrics listener serves neither API nor playback.
    expect((await fetch(`${server.httpUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/v1/live_inputs`, { headers: { authorization: `Bearer ${server.apiKey}` } })).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(404);
    expect((await server.api('GET', '/v1/live_inputs')).status).toBe(200);
  });
});

describe('metrics configuration', () => {
  it('refuses a bad metrics port or flag at start-up, naming the key', async () => {
    for (const [key, bad] of [
      ['TRIBUTARY_METRICS_PORT', '70000'],
      ['TRIBUTARY_METRICS_ENABLED', 'maybe'],
    ] as const) {
      const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../src/main.ts')], {
        env: { PATH: process.env.PATH ?? '', [key]: bad, TRIBUTARY_DATA_DIR: '/nonexistent/never-created' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(78);
      expect(stderr).toMatch(/metrics[._](port|enabled)/i);
    }
  });
});
